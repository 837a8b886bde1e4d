"""The architecture format (issue 18): one versioned model with a committed schema, names in what is
written, the legacy forms still read, every source (object, mapping, path, text) through one loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string
from nasir.ir.arch import Architecture, derive_architecture, load_architecture, parse_arch, resolve_arch
from nasir.ir.graph import Graph

SCHEMA = Path(__file__).resolve().parents[2] / "nasir" / "schema" / "arch.schema.json"

# a choice between two cells, each holding its own nested choice (the shape of a DNA block)
NESTED = """
network nested(C = 4) {
    input x: [3, 8, 8]
    h = one_of {
        small: conv(C, 1) -> one_of { k3: conv(C, 3)  k5: conv(C, 5) }
        big: conv(C, 3) -> one_of { k3: conv(C, 3)  k5: conv(C, 5) }
    }(x)
    output h
}
"""


TOP, SMALL, BIG = "h", "h.small.choice", "h.big.choice"  # the parameters the elaborator names


@pytest.fixture(scope="module")
def nested() -> Graph:
    graph = parse_string(NESTED, filename="nested.nas")
    assert sorted(graph.arch) == sorted([TOP, SMALL, BIG])
    return graph


def test_committed_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == Architecture.json_schema(), "run `python -m nasir.schema` to refresh"


def test_written_form_and_every_source_load_the_same(nested, tmp_path):
    arch = Architecture(network="nested", method="test", arch={TOP: "small", SMALL: "k5"}, metrics={"score": 0.5})
    path = tmp_path / "arch.json"
    arch.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "nasir-arch" and doc["version"] == 1 and doc["arch"] == {TOP: "small", SMALL: "k5"}
    assert "options" not in doc  # unset provenance is left out
    for source in (arch, doc, path, str(path)):
        assert load_architecture(source, nested) == arch
    assert resolve_arch(nested, path) == {TOP: 0, SMALL: 1}


def test_legacy_forms_and_indices_load_as_names(nested, tmp_path):
    for doc in ({TOP: 0, SMALL: "k5"}, {"arch": {TOP: "small", SMALL: 1}}):
        path = tmp_path / "legacy.json"
        path.write_text(json.dumps(doc))
        loaded = load_architecture(path, nested)
        assert loaded.network == "nested" and loaded.arch == {TOP: "small", SMALL: "k5"}
        assert parse_arch(doc) == (doc.get("arch") or doc)


def test_only_the_picked_cells_choices_are_needed(nested):
    assert resolve_arch(nested, {TOP: "big", BIG: "k3"}) == {TOP: 1, BIG: 0}
    with pytest.raises(NasirError, match=re.escape(f"does not choose 1 parameter(s), e.g. {BIG!r}")):
        resolve_arch(nested, {TOP: "big", SMALL: "k3"})


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(network="darts"), "the architecture is for network 'darts', not 'nested'"),
    (lambda d: d.update(version=2), "format version 2 is not supported (this nasir reads version 1)"),
    (lambda d: d.update(format="onnx"), "not a nasir architecture (format 'onnx', expected 'nasir-arch')"),
    (lambda d: d["arch"].update(x=0), "at arch.x: a candidate is named in format 'nasir-arch', not a JSON number"),
    (lambda d: d.update(metrics={"loss": "low"}), "at metrics.loss: a metric is a number, not a JSON string"),
    (lambda d: d.update(options={"steps": [1]}), "at options.steps: an option is a string, a number, a boolean"),
    (lambda d: d.update(score=1), "at score: Extra inputs are not permitted"),
    (lambda d: d.pop("network"), "at network: Field required"),
    (lambda d: d["arch"].update(nope="k3"), "unknown parameter 'nope'"),
])
def test_bad_files_of_the_current_form_are_clear_errors(nested, tmp_path, change, message):
    doc = Architecture(network="nested", arch={TOP: "small", SMALL: "k3"}).model_dump(exclude_none=True)
    change(doc)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(NasirError, match=re.escape(message)):
        load_architecture(path, nested)


def test_a_source_that_is_no_architecture_is_an_error(nested, tmp_path):
    old_dna = {"score": 1.2, "cost": 99, "arch": [{"block": "block1", "cell": 1, "ops": [0, 3]}]}
    with pytest.raises(NasirError, match="a DNA search result of an older nasir"):
        load_architecture(old_dna, nested)
    with pytest.raises(NasirError, match="cannot read architecture"):
        load_architecture(tmp_path / "missing.json", nested)
    with pytest.raises(NasirError, match="not list"):
        load_architecture([("a", 1)], nested)


def _group_space() -> Graph:
    return parse_string("""
network g() {
    input x: [3, 8, 8]
    s = conv(4, 1)(x)
    h = input_choice(1, [one_of { none: zero  a: conv(4, 3)  b: conv(4, 5) }(s),
                         one_of { none: zero  a: conv(4, 3)  b: conv(4, 5) }(s)])
    output h
}
""", filename="g.nas")


def test_derive_keeps_the_strongest_edges_of_each_group():
    graph = _group_space()
    first, second = graph.input_groups[0].members
    # 'none' is the heaviest candidate of the first edge, but edges rank by their best other candidate
    arch = derive_architecture(graph, {first: [0.9, 0.04, 0.06], second: [0.2, 0.5, 0.3]})
    assert arch.network == "g" and arch.arch == {first: "none", second: "a"}
    # equal strength: the earlier edge stays (DARTS' stable sort); equal weights: the first candidate
    assert derive_architecture(graph, {first: [0.2, 0.4, 0.4], second: [0.2, 0.4, 0.4]}).arch == \
        {first: "a", second: "none"}


def test_width_choices_always_need_a_pick():
    graph = parse_string("""
network w() {
    input x: [3, 8, 8]
    h = one_of { a: conv(4, 1)  b: conv(one_of [8, 16], 3) -> conv(4, 1) }(x)
    output h
}
""", filename="w.nas")
    with pytest.raises(NasirError, match=re.escape("does not choose 1 parameter(s), e.g. 'h.b.conv'")):
        resolve_arch(graph, {"h": "a"})
    assert load_architecture({"h": "a", "h.b.conv": 1}, graph).arch == {"h": "a", "h.b.conv": "w16"}
