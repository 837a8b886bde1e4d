"""The teacher built for a space has the student's block boundaries at any resolution (issue 15:
the README's `nasir dna train std/mbconv.nas -D resolution=32` failed, 8 vs 16, on the stem's stride)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasir.cli import main
from nasir.dna.blocks import block_infos
from nasir.dna.mbconv import ChainNet, NetSpec
from nasir.dna.pipeline import TeacherCheckpoint, teacher_spec_for
from nasir.dna.teacher import TeacherBlocks
from nasir.frontends.elaborate import parse_file, std_path
from nasir.passmanager import PassManager

SPACE = Path(__file__).with_name("tiny_dna.nas")


def _partitioned(path: Path, **overrides):
    return PassManager.parse("dna-partition").run(parse_file(path, **overrides))


def _teacher_and_student_shapes(graph):
    teacher = ChainNet(teacher_spec_for(graph)).eval()
    resolution = graph.body.inputs[0].shape[1:]
    with torch.no_grad():
        feats = TeacherBlocks(teacher, teacher.boundaries).features(torch.randn(1, 3, *resolution))
    return [list(f.shape[1:]) for f in feats[1:]], [info.output_shape for info in block_infos(graph)]


@pytest.mark.parametrize(("stem_stride", "resolution"), [(1, 16), (2, 16), (2, 17), (2, 15), (3, 20)])
def test_teacher_blocks_end_where_the_student_blocks_do(stem_stride, resolution):
    graph = _partitioned(SPACE, stem_stride=stem_stride, resolution=resolution)
    teacher, student = _teacher_and_student_shapes(graph)
    assert teacher == student
    assert teacher_spec_for(graph).stem_stride == stem_stride


@pytest.mark.parametrize("resolution", [32, 30])
def test_std_mbconv_teacher_matches_its_stride_2_stem(resolution):
    teacher, student = _teacher_and_student_shapes(_partitioned(std_path("mbconv"), resolution=resolution))
    assert teacher == student


def test_old_specs_load_with_a_stride_1_stem():
    old = {"kind": "dna-teacher", "spec": {"blocks": [{"ops": [[3, 4]], "channels": 8, "width": 8, "stride": 2}], "stem": 8}}
    spec = TeacherCheckpoint.model_validate_json(json.dumps(old)).spec  # as load_checkpoint_as reads it
    assert isinstance(spec, NetSpec)
    assert spec.stem_stride == 1 and ChainNet(spec).stem[0].stride == (1, 1)


def test_dna_train_with_a_stride_2_stem(tmp_path, capsys):
    args = ["dna", "train", str(SPACE), "-D", "stem_stride=2", "-D", "resolution=17", "--teacher-steps", "1",
            "--steps", "1", "--batch-size", "8", "--images", "8"]
    assert main([*args, "--workdir", str(tmp_path / "w")]) == 0, capsys.readouterr().err
    # a teacher made for another stem stride is refused, not trained against
    assert main(["dna", "train", str(SPACE), "--teacher-steps", "1", "--steps", "1", "--batch-size", "8",
                 "--images", "8", "--workdir", str(tmp_path / "w")]) == 2
    assert "do not match" in capsys.readouterr().err
