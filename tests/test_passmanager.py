"""The pass manager: lazy, torch-free registry, plugins, the exactness contract, failure context,
instruments (the TopoNAS per-edge statistics of ``--stats`` among them)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from importlib import metadata

import pytest

import nasir.passes
from nasir.cli import main
from nasir.dance.errors import DanceError
from nasir.diagnostics import NasirError, SourceLoc
from nasir.passes import BUILTIN
from nasir.passes._topo_stats import EdgeCountInstrument, edge_summary
from nasir.passmanager import (
    ENTRY_POINT_GROUP,
    PASSES,
    Pass,
    PassInstrument,
    PassManager,
    PassResult,
    get_pass,
    load_passes,
    parse_pipeline,
    register,
)


def _python(code: str, path: str | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``path`` prepended to its sys.path)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


# -- a registry that imports nothing heavy ---------------------------------------------------------
@pytest.mark.parametrize("argv", [["passes"], ["count", "std/darts.nas"]], ids=["passes", "count"])
def test_listing_and_counting_do_not_import_torch(argv):
    code = f"""
import sys
from nasir.cli import main
rc = main({argv!r})
print("torch modules:", sorted(m for m in sys.modules if m.split(".")[0] == "torch")[:3])
sys.exit(rc)
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "torch modules: []"


def test_a_pipeline_imports_only_the_passes_it_names():
    done = _python("""
import sys
from nasir.passmanager import parse_pipeline
parse_pipeline("canonicalize")
print(sorted(m for m in sys.modules if m.startswith("nasir.passes.")))
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['nasir.passes.canonicalize']"


def test_the_builtin_table_names_every_pass_module():
    modules = {f"nasir.passes.{m.name}" for m in pkgutil.iter_modules(nasir.passes.__path__) if not m.name.startswith("_")}
    assert set(BUILTIN.values()) == modules
    for name, module in BUILTIN.items():
        cls = get_pass(name)
        assert cls.name == name and cls.__module__ == module


def test_unknown_pass_suggests_a_close_name():
    with pytest.raises(NasirError, match="unknown pass 'canonicalise'") as info:
        parse_pipeline("canonicalise")
    assert "canonicalize" in info.value.hint


# -- passes from outside the tree --------------------------------------------------------------------
PLUGIN = '''
from dataclasses import dataclass

from nasir.passmanager import Pass, PassResult, register


@dataclass
class CountNodes(Pass):
    """Named in the entry point: registered by the manager."""

    name = "count-nodes"
    summary = "a pass from outside the tree"

    def exactness(self):
        return "exact"

    def run(self, graph):
        result = PassResult()
        result.stats["nodes"] = sum(1 for _ in graph.walk())
        return result


@register
class Mark(Pass):
    """Registered by its module, which the entry point names."""

    name = "mark"
    summary = "another pass from outside the tree"

    def exactness(self):
        return "approximate"

    def run(self, graph):
        return PassResult(notes=["marked"])
'''


@pytest.fixture
def plugin_dir(tmp_path):
    """A distribution installed the way pip leaves it: a module and a ``.dist-info`` folder."""
    (tmp_path / "nasir_plugin_demo.py").write_text(PLUGIN)
    info = tmp_path / "nasir_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nasir-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ncount-nodes = nasir_plugin_demo:CountNodes\nmark = nasir_plugin_demo\n")
    return tmp_path


def test_plugin_passes_show_in_the_list_and_run(plugin_dir):
    listed = _python("from nasir.cli import main; main(['passes'])", str(plugin_dir))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert f"{'count-nodes':<16} [exact] a pass from outside the tree" in lines
    assert f"{'mark':<16} [approximate] another pass from outside the tree" in lines
    assert any(line.startswith("canonicalize ") for line in lines)
    ran = _python("""
from nasir.frontends.elaborate import parse_file, std_path
from nasir.passmanager import PassManager
pm = PassManager.parse("canonicalize,count-nodes,mark", stats=False)
pm.run(parse_file(std_path("nb201"), N=1))
print(pm.records[2].result.stats["nodes"] > 0, pm.records[3].result.notes, pm.exact)
""", str(plugin_dir))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "True ['marked'] False"


def _fake_entry_points(monkeypatch, **values: str) -> None:
    eps = [metadata.EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in values.items()]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps if group == ENTRY_POINT_GROUP else [])


def test_a_broken_plugin_is_a_located_user_error(monkeypatch):
    _fake_entry_points(monkeypatch, **{"broken-pass": "nasir_no_such_module_xyz:Pass"})
    with pytest.raises(NasirError, match="'broken-pass' .* failed to load: ModuleNotFoundError"):
        parse_pipeline("canonicalize,broken-pass")


def test_a_plugin_pass_without_exactness_is_a_user_error(monkeypatch, tmp_path):
    (tmp_path / "nasir_vague_plugin.py").write_text(
        "from nasir.passmanager import Pass\n\nclass Vague(Pass):\n    name = 'vague'\n    summary = 'no contract'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, vague="nasir_vague_plugin:Vague")
    with pytest.raises(NasirError, match="'vague' .* failed to load: TypeError: pass 'vague' must define exactness"):
        parse_pipeline("vague")


def test_a_plugin_that_registers_nothing_says_so(monkeypatch):
    _fake_entry_points(monkeypatch, **{"not-a-pass": "nasir.passes.canonicalize:Canonicalize"})
    with pytest.raises(NasirError, match="does not register a pass named 'not-a-pass'"):
        parse_pipeline("not-a-pass")


def test_a_plugin_cannot_take_a_builtin_name(monkeypatch):
    _fake_entry_points(monkeypatch, canonicalize="nasir.passes.dead_code:DeadCode")
    with pytest.raises(NasirError, match="takes the name of the built-in pass 'canonicalize'"):
        load_passes()


# -- the exactness contract ------------------------------------------------------------------------
def test_exactness_is_a_method_that_options_may_decide():
    pipeline = "canonicalize,pms,pms{approximate=false},topo-simplify{approximate=false},reparam,reparam{kernel_norm=true}"
    assert [p.exactness() for p in parse_pipeline(pipeline)] == [
        "exact", "approximate", "exact", "exact", "exact", "approximate"]
    assert PassManager.parse("canonicalize,pms{approximate=false},reparam").exact
    assert not PassManager.parse("canonicalize,fms").exact


def test_every_pass_declares_its_exactness():
    for cls in load_passes().values():
        assert cls.exactness is not Pass.exactness
        assert cls().exactness() in ("exact", "approximate")


def test_the_record_keeps_the_exactness_of_the_configured_pass(tiny_darts):
    pm = PassManager.parse("pms{approximate=false},pms", stats=False)
    pm.run(tiny_darts)
    assert [r.exactness for r in pm.records] == ["exact", "exact", "approximate"]


def test_register_rejects_a_pass_without_exactness():
    class Vague(Pass):
        name = "vague-pass"
        summary = "says nothing about the function it computes"

        def run(self, graph):
            return PassResult()

    with pytest.raises(TypeError, match="must define exactness"):
        register(Vague)
    assert "vague-pass" not in PASSES


# -- failures name the pass and the pipeline -------------------------------------------------------
class _Raise(Pass):
    """Raises the given exception (a plain class: no options, so its spec is its name)."""

    name = "raise"
    summary = "fails on purpose"

    def __init__(self, error: Exception):
        self.error = error

    def exactness(self):
        return "exact"

    def run(self, graph):
        raise self.error


class _Dangle(Pass):
    name = "dangle"
    summary = "leaves the IR invalid"

    def exactness(self):
        return "exact"

    def run(self, graph):
        graph.body.outputs[0].inputs = ["nowhere"]
        return PassResult(changed=True)


def test_any_exception_becomes_a_nasir_error_with_the_pass_and_pipeline(tiny_darts):
    pm = PassManager(parse_pipeline("canonicalize") + [_Raise(KeyError("x"))], stats=False)
    with pytest.raises(NasirError) as info:
        pm.run(tiny_darts)
    err = info.value
    assert err.message == "pass 'raise' failed: KeyError: 'x'"
    assert err.context == ["in pass 'raise' (pipeline: canonicalize,raise)"]
    assert isinstance(err.__cause__, KeyError)
    assert err.render().splitlines()[-1] == "note: in pass 'raise' (pipeline: canonicalize,raise)"


def test_a_nasir_error_keeps_its_type_location_and_hint(tiny_darts):
    loc = SourceLoc(file="space.nas", line=3, col=5)
    raised = DanceError("no channel to prune", loc, hint="widen the layer")
    pm = PassManager([*parse_pipeline("dead-code,pms{approximate=false}"), _Raise(raised)], stats=False)
    with pytest.raises(DanceError) as info:
        pm.run(tiny_darts)
    assert info.value is raised and raised.loc == loc and raised.message == "no channel to prune"
    assert raised.render().splitlines() == [
        "space.nas:3:5: error: no channel to prune",
        "hint: widen the layer",
        "note: in pass 'raise' (pipeline: dead-code,pms{approximate=false},raise)",
    ]


def test_an_invalid_ir_after_a_pass_names_the_pass_and_pipeline(tiny_darts):
    with pytest.raises(NasirError, match="IR invalid after pass 'dangle'") as info:
        PassManager([*parse_pipeline("canonicalize"), _Dangle()], stats=False).run(tiny_darts)
    assert info.value.context == ["in pass 'dangle' (pipeline: canonicalize,dangle)"]


def test_the_cli_prints_the_pass_context(capsys):
    code = main(["compile", "std/nb201.nas", "-D", "N=1", "--passes", "canonicalize,fix-arch"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == ["error: fix-arch needs an architecture file: fix-arch{arch=path/to/arch.json}",
                                "note: in pass 'fix-arch' (pipeline: canonicalize,fix-arch{arch=})"]


# -- instruments ---------------------------------------------------------------------------------
class _Trace(PassInstrument):
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def before_pipeline(self, graph, record):
        self.calls.append(("before", record.name))
        record.report_lines.append("traced the input")

    def after_pass(self, pass_, graph, record):
        self.calls.append((pass_.name, record.name))


def test_instruments_see_the_input_and_every_pass(tiny_darts):
    trace = _Trace()
    pm = PassManager.parse("canonicalize,dead-code", instruments=[trace])
    pm.run(tiny_darts)
    assert trace.calls == [("before", "input"), ("canonicalize", "canonicalize"), ("dead-code", "dead-code")]
    lines = pm.report().splitlines()
    assert lines[2].startswith("input") and lines[3] == " " * 28 + "traced the input"
    assert lines[4].startswith("canonicalize")


def test_edge_counts_follow_every_row_once(tiny_darts):
    pm = PassManager.parse("canonicalize,pms", instruments=[EdgeCountInstrument()])
    out = pm.run(tiny_darts)
    lines = [line.strip() for line in pm.report().splitlines()]
    assert lines[3] == lines[5] == edge_summary(tiny_darts)
    assert lines[6].startswith("pms{approximate=true}") and lines[7] == edge_summary(out)
    assert sum("modules per edge" in line for line in lines) == 3  # pms' own note is not repeated


def test_no_edge_counts_for_a_graph_without_choices(parse):
    graph = parse("network n() {\n input x: [3, 8, 8]\n y = conv(4, 3)(x)\n output y\n}\n")
    pm = PassManager.parse("canonicalize", instruments=[EdgeCountInstrument()])
    pm.run(graph)
    assert all(r.report_lines == [] for r in pm.records)


#: ``nasir compile --stats`` on a small DARTS space before the edge counts became an instrument
#: (ms column masked: it is the only one that varies from run to run; fms shows its
#: ``approximate`` option since it became a SharingPass)
STATS_TODAY = """\
pass                           exact       ms  modules   conv      params         FLOPs  changes
------------------------------------------------------------------------------------------------
input                          exact      0.0      448    196      26,958     6,601,024  -
                            modules per edge (conv+non-conv=total x edges): 7+16=23 x8, 6+16=22 x7
canonicalize                   exact       MS      448    196      26,958     6,601,024  -
                            modules per edge (conv+non-conv=total x edges): 7+16=23 x8, 6+16=22 x7
pms{approximate=true}          appro       MS      328    196      26,958     6,601,024  pms-groups=30, modules-shared=120
                            modules per edge (conv+non-conv=total x edges): 7+8=15 x8, 6+8=14 x7
                            note: approximate: trailing bn(affine=false) shared after a weighted sum \
(it is not linear, so the mixture of its outputs is not its output on the mixture) (30 choices)
fms{approximate=true}          appro       MS      298    196      26,958     6,601,024  fms-groups=15, modules-shared=30
                            modules per edge (conv+non-conv=total x edges): 7+6=13 x8, 6+6=12 x7
                            note: approximate: floating bn(affine=false) -> relu shared between two series choices \
(the second choice sees the mixture of the first) (15 choices)
reparam{kernel_norm=false}     exact       MS      163     61      26,958    33,665,344  merged-convs=45, merged-factorized=90
                            modules per edge (conv+non-conv=total x edges): 4+6=10 x8, 3+6=9 x7
dead-code                      exact       MS      163     61      26,958    33,665,344  -
                            modules per edge (conv+non-conv=total x edges): 4+6=10 x8, 3+6=9 x7
"""


def _mask_ms(line: str) -> str:
    if line.startswith((" ", "-", "pass ", "input ")):
        return line
    return line[:36] + f"{'MS':>9}" + line[45:]


def test_compile_stats_prints_the_table_ii_counts_as_before(capsys, tmp_path):
    code = main(["compile", "std/darts.nas", "-D", "C=4", "-D", "layers=3", "-D", "steps=2", "-D", "multiplier=2",
                 "--passes", "canonicalize,pms,fms,reparam,dead-code", "--stats", "-o", str(tmp_path / "out.txt")])
    err = capsys.readouterr().err
    assert code == 0
    assert "".join(_mask_ms(line) + "\n" for line in err.splitlines()) == STATS_TODAY



def test_pass_manager_reports_statistics(tiny_darts):
    pm = PassManager.parse("canonicalize,dead-code")
    pm.run(tiny_darts)
    report = pm.report()
    assert report.splitlines()[0].split()[:3] == ["pass", "exact", "ms"]
    assert [r.name for r in pm.records] == ["input", "canonicalize", "dead-code"]
    assert pm.records[-1].stats.params == pm.records[0].stats.params


def test_pass_manager_without_statistics_gives_the_same_graph(tiny_darts):
    """``stats=False`` (a plain ``nasir compile``) skips the measuring, not the work."""
    quiet = PassManager.parse("canonicalize,dead-code", stats=False)
    out = quiet.run(tiny_darts)
    assert out.to_json() == PassManager.parse("canonicalize,dead-code").run(tiny_darts).to_json()
    assert all(r.stats is None and r.report_lines == [] for r in quiet.records)
    assert quiet.report().splitlines()[2].split()[3:7] == ["-", "-", "-", "-"]


def test_pass_manager_copies_its_input_unless_told_not_to(tiny_darts):
    before = tiny_darts.to_json()
    out = PassManager.parse("dead-code,canonicalize").run(tiny_darts)
    assert tiny_darts.to_json() == before and out is not tiny_darts
    assert PassManager.parse("canonicalize", copy_input=False).run(tiny_darts) is tiny_darts
