"""IR JSON, architecture files and pictures from untrusted input (issue 16): every problem is a
located ``NasirError`` before anything is allocated, and no user text reaches Graphviz unescaped."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from nasir.api import load_graph
from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string
from nasir.ir.arch import parse_arch, read_arch, resolve_arch
from nasir.ir.dot import render, to_dot
from nasir.ir.graph import Graph
from nasir.lowering import lower

SPACE = """
choice edge(C) = one_of {
    skip: identity
    conv: conv(C, 3)
}
network tiny(C = 4) {
    input x: [3, 8, 8]
    s = conv(C, 1)(x)
    a = edge(C)(s)
    b = edge(C)(s)
    h = input_choice(1, [a, b])
    output h
}
"""


@pytest.fixture
def tiny() -> Graph:
    return parse_string(SPACE, filename="tiny.nas")


def _first(region: dict, kind: str) -> dict:
    for node in region["nodes"]:
        if node["kind"] == kind:
            return node
    raise LookupError(kind)


def _tampered(tmp_path, graph: Graph, change) -> str:
    data = json.loads(graph.to_json())
    change(data)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: _first(d["body"], "choice").update(candidates=[], covers=[]),
     "candidates (node 'a'): List should have at least 1"),
    (lambda d: d["input_groups"][0].update(n_chosen=10**10), "n_chosen 10000000000 exceeds the 2 members"),
    (lambda d: d["input_groups"][0].update(n_chosen=-3), "n_chosen: Input should be greater than or equal to 1"),
    (lambda d: d["input_groups"][0].update(members=["nope", "nope2"]), "'nope' is no architecture parameter"),
    # found by the long fuzz profile: a negative input channel count reached torch's Conv2d
    (lambda d: _first(d["body"], "input").update(shape=[-1, 8, 8]), "shape [-1, 8, 8] has a dimension below 1"),
    (lambda d: _first(d["body"], "input").update(shape=[3, 0, 8]), "shape [3, 0, 8] has a dimension below 1"),
    (lambda d: _first(_first(d["body"], "choice")["candidates"][0]["body"], "input").update(index=-3),
     "input.index (node 'x'): Input should be greater than or equal to 0"),
])
def test_tampered_ir_is_a_located_error(tmp_path, tiny, change, message):
    path = _tampered(tmp_path, tiny, change)
    with pytest.raises(NasirError, match=re.escape(message)) as err:
        load_graph(path).search_space_size(input_rule=True)
    assert path in err.value.message or any(path in note for note in err.value.context)


def test_ir_nested_100000_deep_is_an_error_not_a_recursion(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(NasirError, match="nests deeper"):
        load_graph(path)


def test_a_huge_kernel_is_refused_before_lowering_allocates(tmp_path, tiny):
    def huge(d):
        _first(d["body"], "op")["attrs"]["kernel"] = 99_999  # 1x1 -> 99,999 x 99,999: 160 GB of weights

    graph = load_graph(_tampered(tmp_path, tiny, huge))
    with pytest.raises(NasirError, match="more than nasir's limit") as err:
        lower(graph, "supernet")
    assert err.value.loc is not None and err.value.loc.file == "tiny.nas"


@pytest.mark.parametrize("text, message", [
    ('{"arch": [1, 2]}', "invalid architecture at arch: a candidate is a name or an integer index, not a JSON array"),
    ('{"arch": 3}', "architecture names unknown parameter 'arch'"),  # a bare mapping: 'arch' may be a parameter
    ('{"edge": true}', "at edge: a candidate is a name or an integer index, not a JSON boolean"),
    ('{"arch": {"edge": 1.0}}', "at arch.edge: a candidate is a name or an integer index, not a JSON number"),
    ('{"arch": {"edge": 0}, "score": 1}', "at score: Extra inputs are not permitted"),
    ("[0, 1]", "not a JSON array"),
    ("null", "not a JSON null"),
])
def test_malformed_architecture_files_are_clear_errors(tmp_path, tiny, text, message):
    path = tmp_path / "arch.json"
    path.write_text(text)
    with pytest.raises(NasirError, match=re.escape(message)):
        resolve_arch(tiny, read_arch(path))
    from nasir.passmanager import PassManager

    with pytest.raises(NasirError, match=re.escape(message)):
        PassManager.parse(f"fix-arch{{arch={path}}}").run(tiny)


def test_both_architecture_forms_resolve(tiny):
    names = sorted(tiny.arch)
    bare = {names[0]: "conv", names[1]: 0}
    assert parse_arch({"arch": bare}) == parse_arch(bare) == bare
    assert resolve_arch(tiny, bare) == {names[0]: 1, names[1]: 0}
    with pytest.raises(NasirError, match="not a JSON boolean"):
        resolve_arch(tiny, {names[0]: True, names[1]: 0})  # Python callers get the same check


EVIL = '<<table><tr><td href="javascript:alert(1)">x\\</td></tr></table>>'


def _evil(tiny: Graph) -> Graph:
    data = json.loads(tiny.to_json())
    data["name"] = EVIL
    choice = _first(data["body"], "choice")
    choice["candidates"][0]["name"] = EVIL
    old = choice["name"]
    for node in data["body"]["nodes"]:
        node["name"] = EVIL + '"] [URL="javascript:x' if node["name"] == old else node["name"]
        node["inputs"] = [EVIL + '"] [URL="javascript:x' if i == old else i for i in node["inputs"]]
    return Graph.model_validate(data)


def test_user_text_cannot_inject_html_or_attributes_into_graphviz(tiny, tmp_path):
    source = to_dot(_evil(tiny))
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', source).replace("->", "")
    assert "javascript" in source and not re.search(r"javascript|URL|href|<|>", outside_strings)
    if shutil.which("dot"):
        svg = tmp_path / "evil.svg"
        render(_evil(tiny), str(svg))
        assert "href" not in svg.read_text().replace("href=&quot;", "")  # no link element, only escaped text


def test_summary_counts_beyond_float_range():
    """Found by the long fuzz profile: a tampered linear with 10^400 outputs overflowed the FLOP figure."""
    from nasir.summary import _si

    assert _si(10**400) == "1.00e400"
    assert _si(-(3 * 10**20 + 10**19)) == "-3.10e20"
    assert _si(2_500_000_000) == "2.50G" and _si(999) == "999"
