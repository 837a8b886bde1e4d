"""DARTS genotype text and NAS-Bench-201 strings <-> architectures of std/darts.nas and std/nb201.nas."""

from __future__ import annotations

import random
import re

import pytest

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.arch import load_architecture
from nasir.ir.genotype import DARTS_V1, DARTS_V2, from_genotype, from_nb201, to_genotype, to_nb201
from nasir.ir.graph import Graph

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def darts() -> Graph:
    return parse_file(std_path("darts"), C=4, layers=3)


@pytest.fixture(scope="module")
def nb201() -> Graph:
    return parse_file(std_path("nb201"), C=4, N=1)


def test_darts_v2_converts_with_the_papers_names(darts):
    arch = from_genotype(DARTS_V2, darts)
    assert arch.network == "darts" and len(arch.arch) == len(darts.arch)
    assert (arch.arch["normal.n2_1"], arch.arch["normal.n2_0"], arch.arch["normal.n2_2"]) == \
        ("sep_conv_3x3", "skip_connect", "none")
    assert arch.arch["reduce.n1_2"] == "skip_connect" and arch.arch["reduce.n3_1"] == "max_pool_3x3"
    assert sum(pick != "none" for pick in arch.arch.values()) == 16  # 2 edges x 4 nodes x 2 cell types


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2])
def test_published_genotypes_lower_to_fixed_networks(darts, genotype):
    import torch

    from nasir.lowering import lower

    fixed = lower(darts, "fixed", arch=genotype).eval()
    with torch.no_grad():
        assert fixed(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_genotype_round_trips(darts):
    arch = from_genotype(DARTS_V2, darts)
    text = to_genotype(arch, darts)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ") and \
        "normal_concat=range(2, 6)" in text and text.endswith("reduce_concat=range(2, 6))")
    assert from_genotype(text, darts) == arch and to_genotype(from_genotype(text, darts), darts) == text
    rng = random.Random(0)
    for _ in range(20):  # random genotypes: text -> architecture -> text is the identity
        edges = {kind: [(rng.choice(["max_pool_3x3", "sep_conv_5x5", "dil_conv_3x3", "skip_connect"]), j)
                        for i in range(4) for j in sorted(rng.sample(range(i + 2), 2))] for kind in ("normal", "reduce")}
        text = (f"Genotype(normal={edges['normal']}, normal_concat=range(2, 6), reduce={edges['reduce']}, "
                "reduce_concat=range(2, 6))")
        assert to_genotype(from_genotype(text, darts), darts) == text


def test_nb201_round_trips(nb201):
    arch = from_nb201(NB201, nb201)
    assert arch.arch == {"cell.n1_0": "nor_conv_3x3", "cell.n2_0": "nor_conv_3x3", "cell.n2_1": "avg_pool_3x3",
                         "cell.n3_0": "skip_connect", "cell.n3_1": "nor_conv_3x3", "cell.n3_2": "skip_connect"}
    assert to_nb201(arch, nb201) == NB201
    rng = random.Random(0)
    ops = nb201.arch["cell.n1_0"].candidates
    for _ in range(20):
        text = "|" + "|+|".join("|".join(f"{rng.choice(ops)}~{j}" for j in range(i)) for i in (1, 2, 3)) + "|"
        assert to_nb201(from_nb201(text, nb201), nb201) == text


def test_text_is_read_wherever_an_architecture_is(darts, nb201, tmp_path, monkeypatch):
    path = tmp_path / "v2.txt"
    path.write_text(DARTS_V2 + "\n")
    assert load_architecture(path, darts) == load_architecture(DARTS_V2, darts) == from_genotype(DARTS_V2, darts)
    assert load_architecture(f"  {NB201}\n", nb201) == from_nb201(NB201, nb201)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Genotype.json").write_text(from_nb201(NB201, nb201).to_json())
    assert load_architecture("Genotype.json", nb201) == from_nb201(NB201, nb201)  # a path, however it is named


@pytest.mark.parametrize("text, message", [
    (DARTS_V2[:-1], "the text ends where ')' was expected"),
    (DARTS_V2.replace("Genotype(", "Genotype(__import__('os'), "), "expected '=', found '('"),
    (DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 5)", 1), "normal_concat is [2, 3, 4]; this space concatenates "
                                                         "states [2, 3, 4, 5]"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "node normal.n3 reads state 5; it may read "
                                                                     "states 0..4"),
    (DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 2), ('dil_conv_3x3', 2)"),
     "node normal.n3 lists input 2 twice"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('conv_7x1_1x7', 2)"), "normal.n3_2: no candidate 'conv_7x1_1x7'"),
    (DARTS_V2.replace(", ('dil_conv_3x3', 2)", ""), "normal lists 7 edges; this space's normal cell has 4 nodes "
                                                    "keeping 8 edges"),
    (DARTS_V2.replace("reduce=", "reduction="), "unknown field 'reduction'"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5], ", ""), "the genotype has no 'normal_concat'"),
    (DARTS_V2 + " + 1", "unexpected '+ 1'"),
    ("Genotype(normal=[('a', 0), 2])", "a list mixes edges and integers"),
    ("Genotype(normal=[], normal=[])", "field 'normal' given twice"),
    (NB201, "network 'darts' is not an NB201-like space"),
])
def test_bad_genotypes_are_clear_errors(darts, text, message):
    with pytest.raises(NasirError, match=re.escape(message)):
        load_architecture(text, darts)


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "the string has 2 node(s); this space's cell has 3"),
    (NB201.replace("avg_pool_3x3~1", "avg_pool_3x3~2"), "node 2 reads node 2; it may read nodes 0..1"),
    (NB201.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "node 2 lists input 0 twice"),
    (NB201.replace("|avg_pool_3x3~1", ""), "node 2 has no edge from node 1"),
    (NB201.replace("avg_pool_3x3~1", "avg_pool_3x3"), "node 2: 'avg_pool_3x3' is not op~input"),
    (NB201.replace("avg_pool_3x3", "avg_pool_5x5"), "cell.n2_1: no candidate 'avg_pool_5x5'"),
    (NB201.replace("|+|", "+", 1), "node 1 is '|nor_conv_3x3~0', not |op~j|...|"),
    (DARTS_V2, "network 'nb201' is not a DARTS-like space"),
])
def test_bad_nb201_strings_are_clear_errors(nb201, text, message):
    with pytest.raises(NasirError, match=re.escape(message)):
        load_architecture(text, nb201)


def test_an_architecture_that_is_no_genotype_is_refused(darts, nb201):
    every_edge = dict.fromkeys(darts.arch, "skip_connect")
    with pytest.raises(NasirError, match=re.escape("node normal.n1 keeps 3 edges; a DARTS genotype keeps exactly 2")):
        to_genotype(every_edge, darts)
    with pytest.raises(NasirError, match="not an NB201-like space"):
        to_nb201(every_edge, darts)
