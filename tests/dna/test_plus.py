import json

import torch

from nasir.dna.distill import DistillConfig
from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec, SpaceSpec, arch_to_spec, scale_spec, student_space
from nasir.dna.plus import PlusConfig, dna_plus
from nasir.dna.teacher import TeacherBlocks

SPACE = SpaceSpec(cells=[[(1, 8)], [(1, 8), (2, 8)]], strides=[1, 2], kernels=[3, 5], expansions=[1, 2], stem=8)
TEACHER = NetSpec([BlockSpec([(3, 2)], 8, 16, 1), BlockSpec([(3, 2), (3, 2)], 16, 24, 2)], stem=8, classes=3)


def test_student_space_and_spec_agree():
    space = student_space(SPACE, [16, 24])
    assert SPACE.size() == space.size == 4 * (4 + 16)
    arch = [(0, (0, 3, 0)), (1, (1, 2, 0))]
    spec = arch_to_spec(SPACE, [16, 24], arch, classes=3)
    assert [len(b.ops) for b in spec.blocks] == [1, 2]
    assert spec.blocks[1].ops == [(3, 2), (5, 1)]
    net = ChainNet(spec)
    head = sum(p.numel() for p in net.head.parameters())
    x = torch.randn(1, 3, 16, 16)
    path_params = sum(b.path_costs(x if k == 0 else torch.randn(1, 16, 16, 16))[b.path_index(p)].params
                      for k, (b, p) in enumerate(zip(space.blocks, arch)))
    assert sum(p.numel() for p in net.parameters()) - head == path_params


def test_scaling():
    big = scale_spec(TEACHER, depth=1.5, width=2.0)
    assert [len(b.ops) for b in big.blocks] == [2, 3]
    assert [b.width for b in big.blocks] == [32, 48] and big.stem == 16


def test_teacher_cut_matches_chain_net():
    net = ChainNet(TEACHER).eval()
    tb = TeacherBlocks(net, net.boundaries)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(tb(x), net(x))
        assert [f.shape[1] for f in tb.features(x)[1:]] == [16, 24]


def test_dna_plus_two_generations(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.randn(32, 3, 16, 16), torch.arange(32) % 3
    teacher = ChainNet(TEACHER)
    config = PlusConfig(generations=2, depth=1.5, width=1.5, resolution=1.5, base_resolution=16, teacher_steps=3,
                        batch_size=8, rate_samples=16, distill=DistillConfig(steps=3, batch_size=8))
    lines = []
    gens = dna_plus(teacher, teacher.boundaries, SPACE, images, labels, config, tmp_path, log=lines.append)
    assert [g.index for g in gens] == [1, 2] and len(lines) == 3
    assert gens[0].teacher is None and gens[1].teacher is not None
    # generation 2's teacher is generation 1's student, scaled
    assert gens[1].teacher == scale_spec(gens[0].student, 1.5, 1.5)
    # the student's projections follow the current teacher's widths
    assert [b.width for b in gens[1].student.blocks] == [b.width for b in gens[1].teacher.blocks]
    doc = json.loads((tmp_path / "generations.json").read_text())
    assert len(doc) == 2 and (tmp_path / "gen2" / "ratings.json").is_file()


def test_dna_plus_reuses_saved_teachers_and_rates_ssl_students(tmp_path):
    """A second run of the loop reuses generation 2's saved teacher instead of retraining it, and
    DNA++ (loss='ssl') students are rated through their projection heads."""
    torch.manual_seed(0)
    images, labels = torch.randn(32, 3, 16, 16), torch.arange(32) % 3
    teacher = ChainNet(TEACHER)
    config = PlusConfig(generations=2, depth=1.5, width=1.5, base_resolution=16, teacher_steps=3, batch_size=8,
                        rate_samples=16, distill=DistillConfig(steps=2, batch_size=8, loss="ssl", ssl_dim=8))
    first, second = [], []
    gens = dna_plus(teacher, teacher.boundaries, SPACE, images, labels, config, tmp_path, log=first.append)
    saved = tmp_path / "gen2" / "teacher.safetensors"
    assert saved.is_file() and not any("reused" in line for line in first)
    again = dna_plus(teacher, teacher.boundaries, SPACE, images, labels, config, tmp_path, log=second.append)
    assert any("reused" in line for line in second)
    assert [g.choice.indices for g in again] == [g.choice.indices for g in gens]
    assert again[1].ratings[0].scores == gens[1].ratings[0].scores
