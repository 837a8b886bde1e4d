"""Block losses: DNA's feature MSE (Eq. 5-6) and DNA++'s self-supervised losses (Eq. 10-11).

DNA matches a student block's output to the teacher's, which requires equal shapes and biases the
rating towards students resembling the teacher. DNA++ instead projects both sides with small MLPs
to embeddings Z (teacher side) and Z_hat (student side) and uses

* Eq. 10, L_SSL = lambda1/(K M) sum_k sum_j ||Z_k^j - Z_hat_k^j||^2
                + lambda2/(K C) sum_k (||offdiag Cov(Z_k)||^2 + ||offdiag Cov(Z_hat_k)||^2)
* Eq. 11, L_SDR = lambda3/(C K) sum_k sum_c max(0, gamma - sqrt(Var(Z_{k,c}) + eps))

so teacher and student may differ in family and width (a CNN teacher for a ViT student) and no
extra non-learnable supernet is needed: the hinge on per-channel std keeps embeddings from
collapsing to a constant. As in VICReg, which Eq. 11 follows, the hinge is applied to both
branches by default (``sdr_on="both"``); ``"student"`` restricts it to the learnable student side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def block_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Eq. 5/6: (1/K) ||Y - Y_hat||_2^2, K the number of elements."""
    return F.mse_loss(student, teacher)


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Cov(Z) = 1/(M-1) sum_j (z_j - mean)(z_j - mean)^T over a batch of M embeddings [M, C]."""
    zc = z - z.mean(dim=0)
    return zc.T @ zc / (z.shape[0] - 1)


def _as_list(z: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [z] if isinstance(z, torch.Tensor) else list(z)


def ssl_loss(z: torch.Tensor | Sequence[torch.Tensor], z_hat: torch.Tensor | Sequence[torch.Tensor],
             lambda1: float = 1.0, lambda2: float = 1.0) -> torch.Tensor:
    """Eq. 10 over K blocks (pass one [M, C] tensor per block, or a single tensor for K = 1)."""
    zs, zhs = _as_list(z), _as_list(z_hat)
    if len(zs) != len(zhs):
        raise ValueError("ssl_loss needs as many student as teacher embeddings")
    k = len(zs)
    dist = torch.zeros(())
    reg = torch.zeros(())
    for a, b in zip(zs, zhs):
        if a.shape != b.shape or a.dim() != 2 or a.shape[0] < 2:
            raise ValueError(f"embeddings must be [M >= 2, C] and equal in shape, got {list(a.shape)} and {list(b.shape)}")
        m, c = a.shape
        dist = dist + (a - b).pow(2).sum() / m
        reg = reg + (off_diagonal(covariance(a)).pow(2).sum() + off_diagonal(covariance(b)).pow(2).sum()) / c
    return lambda1 * dist / k + lambda2 * reg / k


def sdr_loss(z: torch.Tensor | Sequence[torch.Tensor], gamma: float = 1.0, eps: float = 1e-4,
             lambda3: float = 1.0) -> torch.Tensor:
    """Eq. 11: hinge on the per-channel standard deviation over the batch, averaged over C and K."""
    zs = _as_list(z)
    total = torch.zeros(())
    for a in zs:
        std = torch.sqrt(a.var(dim=0) + eps)
        total = total + F.relu(gamma - std).mean()
    return lambda3 * total / len(zs)


class Projector(nn.Module):
    """Global average pool, then a 2-layer MLP to an embedding of ``dim`` (one per block side)."""

    def __init__(self, channels: int, dim: int = 64, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(2).mean(-1)
        return self.mlp(x)


class SelfSupervisedBlockLoss(nn.Module):
    """DNA++ loss of one block: L_SSL + L_SDR on projected teacher and student features."""

    def __init__(self, teacher_channels: int, student_channels: int, dim: int = 64, hidden: int = 128,
                 lambda1: float = 25.0, lambda2: float = 1.0, lambda3: float = 25.0, gamma: float = 1.0,
                 eps: float = 1e-4, sdr_on: str = "both"):
        super().__init__()
        if sdr_on not in ("both", "student"):
            raise ValueError("sdr_on is 'both' or 'student'")
        self.teacher_proj = Projector(teacher_channels, dim, hidden)
        self.student_proj = Projector(student_channels, dim, hidden)
        self.lambdas = (lambda1, lambda2, lambda3)
        self.gamma, self.eps, self.sdr_on = gamma, eps, sdr_on

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        z = self.teacher_proj(teacher)
        z_hat = self.student_proj(student)
        l1, l2, l3 = self.lambdas
        loss = ssl_loss(z, z_hat, l1, l2)
        loss = loss + sdr_loss(z_hat, self.gamma, self.eps, l3)
        if self.sdr_on == "both":
            loss = loss + sdr_loss(z, self.gamma, self.eps, l3)
        return loss
