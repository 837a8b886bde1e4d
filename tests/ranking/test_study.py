"""Training to a plateau, the built-in predictors and a whole study on a tiny space and tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasir.data.images import ImageSet
from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string
from nasir.ranking.predictors import (
    PredictorFile,
    arch_label,
    cost_scores,
    dna_scores,
    file_scores,
    sample_architectures,
    spos_scores,
)
from nasir.ranking.study import Study, run_ground_truth
from nasir.ranking.train import Budget, holdout_split, train_to_plateau

SPACE = """network tiny(classes = 3) {
  input x: [3, 8, 8]
  y = one_of { k3: conv(4, 3)  k1: conv(4, 1) }(x)
  z = (bn -> relu -> one_of { conv: (conv(4, 3) -> relu)  skip: identity } -> global_avg_pool -> linear(classes))(y)
  output z
}
"""
SCHEMA = Path(__file__).resolve().parents[2] / "nasir" / "schema" / "predictor.schema.json"


def _data(n: int, seed: int) -> ImageSet:
    """Three classes told apart by the mean of one colour channel."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[torch.arange(n), labels] += 1.0
    return ImageSet(x, labels)


@pytest.fixture
def graph():
    return parse_string(SPACE, filename="tiny.nas")


def test_training_stops_on_a_plateau_and_repeats_itself(graph):
    from nasir.lowering import lower

    train, test = _data(96, 0), _data(30, 1)
    budget = Budget(max_epochs=12, patience=1, drops=1, batch_size=16, lr=0.1)
    arch = sample_architectures(graph, 1, seed=0)[0]

    def build(seed):
        return lower(graph, mode="fixed", arch=arch, seed=seed)

    first = train_to_plateau(build, train, test, seed=3, budget=budget)
    again = train_to_plateau(build, train, test, seed=3, budget=budget)
    assert (first.test_accuracy, first.val_accuracy, first.epochs) == (again.test_accuracy, again.val_accuracy, again.epochs)
    assert first.epochs < 12 and 1 <= first.best_epoch <= first.epochs
    assert first.test_accuracy > 0.6  # learnable: far above a third
    fit, held = holdout_split(train, 0.1)
    assert len(fit) == 86 and len(held) == 10 and len(holdout_split(train, 0.1, images=20)[0]) == 20
    with pytest.raises(NasirError, match="holdout"):
        train_to_plateau(build, train, test, seed=0, budget=Budget(holdout=1.5))


def test_sampled_architectures_are_distinct_and_costed(graph):
    archs = sample_architectures(graph, 10, seed=0)
    assert len(archs) == 4 and len({arch_label(graph, a) for a in archs}) == 4  # the whole space
    assert archs == sample_architectures(graph, 10, seed=0)
    costs = cost_scores(graph, archs)
    params = {arch_label(graph, a).replace("=", ""): p for a, p in zip(archs, costs["params"])}
    flops = {arch_label(graph, a).replace("=", ""): f for a, f in zip(archs, costs["flops"])}
    names = sorted(params)
    k1_skip = next(n for n in names if n.endswith("skip") and "k1" in n)
    k3_skip = next(n for n in names if n.endswith("skip") and "k3" in n)
    assert params[k3_skip] - params[k1_skip] == 4 * 3 * 8  # 3x3 against 1x1 kernels, 3 -> 4 channels
    assert flops[k3_skip] > flops[k1_skip] > 0


def test_predictor_files_are_validated(graph, tmp_path):
    archs = sample_architectures(graph, 4, seed=1)
    scores = {arch_label(graph, a): float(i) for i, a in enumerate(archs)}
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": "nasir-predictor-1", "name": "dance", "scores": scores}))
    assert file_scores(graph, archs, path) == ("dance", [0.0, 1.0, 2.0, 3.0])
    path.write_text(json.dumps({"format": "nasir-predictor-1", "name": "x", "scores": dict(list(scores.items())[:2])}))
    with pytest.raises(NasirError, match="no score for 2 architecture"):
        file_scores(graph, archs, path)
    path.write_text(json.dumps({"name": "x", "scores": scores, "extra": 1}))
    with pytest.raises(NasirError, match="not a predictor file"):
        file_scores(graph, archs, path)


def test_committed_predictor_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == PredictorFile.json_schema()


def test_a_whole_study_on_the_tiny_space(graph):
    archs = sample_architectures(graph, 4, seed=0)
    train, test = _data(96, 2), _data(30, 3)
    budget = Budget(max_epochs=3, patience=1, drops=0, batch_size=16, lr=0.1)
    runs = run_ground_truth(graph, archs, train, test, [0, 1], budget)
    assert [len(row) for row in runs] == [2, 2, 2, 2]
    spos = spos_scores(graph, archs, train, holdout_split(train, 0.25)[1], steps=4, seed=0, batch_size=16)
    assert all(0 <= s <= 1 for s in spos)
    study = Study([arch_label(graph, a) for a in archs], [[r.test_accuracy for r in row] for row in runs],
                  {**cost_scores(graph, archs), "spos": spos})
    lines = study.report(resamples=50)
    assert "4 architectures x 2 seeds" in lines[0] and "split-half rho" in lines[1]
    assert any(line.strip().startswith("spos: Kendall tau") for line in lines)
    doc = study.to_json(resamples=50)
    assert set(doc["predictors"]) == {"params", "flops", "spos"} and doc["reliability"]["splits"] == 1
    with pytest.raises(NasirError, match="3 scores for 4 architectures"):
        Study(study.labels, study.truth, {"bad": [1.0, 2.0, 3.0]})



def test_dna_scores_sum_the_rated_paths_an_architecture_takes(graph, tmp_path):
    from nasir.dna.blocks import CellNames, LayerNames, PathNames
    from nasir.dna.rating import BlockRating, save_ratings

    names = PathNames(network="tiny", cells=[CellNames(layers=[LayerNames(param="y", picks=["k3", "k1"])])])
    second = PathNames(network="tiny", cells=[CellNames(layers=[LayerNames(param="z.choice", picks=["conv", "skip"])])])
    save_ratings(tmp_path / "r.json", [BlockRating("b1", [(0, (0,)), (0, (1,))], [0.5, 0.25], names=names),
                                       BlockRating("b2", [(0, (0,)), (0, (1,))], [0.125, 1.0], names=second)])
    archs = sample_architectures(graph, 4, seed=0)
    scores = dict(zip([arch_label(graph, a) for a in archs], dna_scores(graph, archs, tmp_path / "r.json")))
    assert scores == {"y=k3,z.choice=conv": -0.625, "y=k3,z.choice=skip": -1.5,
                      "y=k1,z.choice=conv": -0.375, "y=k1,z.choice=skip": -1.25}
    save_ratings(tmp_path / "other.json", [BlockRating("b1", [(0, (0,))], [0.5], names=names)])
    with pytest.raises(NasirError, match="0 paths matching"):
        dna_scores(graph, [a for a in archs if a["y"] == 1], tmp_path / "other.json")
