import pytest
import torch

from nasir.dna.losses import SelfSupervisedBlockLoss, covariance, off_diagonal, sdr_loss, ssl_loss


def test_off_diagonal_and_covariance():
    m = torch.arange(9.0).view(3, 3)
    assert off_diagonal(m).tolist() == [1, 2, 3, 5, 6, 7]
    z = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(covariance(z), torch.cov(z.T))


def test_ssl_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    zh = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    # distance term: (1 + 0 + 1) / M=3; covariances: off-diagonal of cov(z) is -1/6 (twice), of cov(zh) 1/6... computed:
    cz, czh = covariance(z), covariance(zh)
    reg = (cz[0, 1] ** 2 * 2 + czh[0, 1] ** 2 * 2) / 2  # / C = 2
    expected = 2.0 * (2 / 3) + 3.0 * float(reg)
    assert float(ssl_loss(z, zh, lambda1=2.0, lambda2=3.0)) == pytest.approx(expected)
    # K blocks average
    assert float(ssl_loss([z, z], [zh, zh], 2.0, 3.0)) == pytest.approx(expected)


def test_sdr_hinge():
    spread = torch.randn(1000, 3) * 5
    assert float(sdr_loss(spread, gamma=1.0)) == 0.0  # std well above gamma
    collapsed = torch.ones(10, 3)
    assert float(sdr_loss(collapsed, gamma=1.0, eps=1e-4, lambda3=2.0)) == pytest.approx(2 * (1 - 1e-2))


def test_block_loss_trains_across_widths():
    torch.manual_seed(0)
    loss = SelfSupervisedBlockLoss(teacher_channels=16, student_channels=8, dim=8, hidden=16)
    student = torch.randn(6, 8, 4, 4, requires_grad=True)
    value = loss(student, torch.randn(6, 16, 4, 4))
    value.backward()
    assert value.dim() == 0 and student.grad is not None and torch.isfinite(student.grad).all()
