"""The DANCE select gate (paper Sec. 2.2 and appendix A).

One ``SelectGate`` decides which channels of one channel group survive. Per batch it

1. combines the batch embedding D_t (from ``BatchRepr``) with statistics of the layer's own
   features F_l (``Combine``) and maps them through a two-layer MLP to logits g_l;
2. draws the soft select gate g~ = Gumbel-softmax over {keep, drop} per channel with temperature
   tau, i.e. g~ = sigmoid((g_l + eps_1 - eps_2) / tau), eps ~ Gumbel(0, 1) (no noise when
   deterministic);
3. scores every channel: Score = l1 * static + l2 * dynamic + l3 * feature + l4 * corr, with
   static = sigmoid(theta_c), dynamic = EMA of sigmoid(fusion(f_t) + theta_c + noise * eps),
   feature = EMA of softmax(E_B[FeatureNet(x)]) and corr = 1 - lambda_c * mean |corrcoef|;
4. p = softmax(g~ * Score) over the channels, and keeps exactly C_l channels by sampling without
   replacement from p (Gumbel-top-k: the paper's "BernoulliSample with exactly C_l ones"), or the
   top C_l of p when deterministic;
5. returns the hard 0/1 mask with a straight-through gradient (C_l * p in the backward pass), so
   the task loss reaches the MLP, theta, the fusion, the FeatureNet and the batch representation.

Two readings of the paper are deliberate. The Gumbel-softmax is taken per channel over the two
outcomes keep/drop (a binary concrete gate, as appendix A's dynamic term also does with a sigmoid)
rather than across the channels of a layer: a softmax across channels sums to one, so with a
temperature below one it puts nearly all mass on a single channel and p = softmax(g~ * Score)
becomes uniform over every other channel; measured on TinyShapes, selecting C_l of C channels
from it was no better than random selection. And the feature term, a softmax over C channels, is
multiplied by C so that its mean is 1 like the other three terms. EMAs update only in training
mode and are kept as buffers, so they travel in checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from nasir.dance.errors import DanceError
from nasir.dance.insert import resolve_keep

MODES = ("off", "sample", "deterministic", "fixed")


def gumbel_like(t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    u = torch.rand(t.shape, generator=generator, device=t.device, dtype=torch.float32)
    return -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))


def sample_exact(p: torch.Tensor, keep: int, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 0/1 vector with exactly ``keep`` ones, sampled without replacement proportionally to ``p``
    (Gumbel-top-k) or the top ``keep`` entries of ``p``; a straight-through estimator passes the
    gradient of the mask to ``keep * p``."""
    logp = torch.log(p.clamp_min(1e-30)).detach()
    if stochastic:
        logp = logp + gumbel_like(logp, generator)
    idx = torch.topk(logp, keep).indices
    hard = torch.zeros_like(p).scatter(0, idx, 1.0)
    soft = keep * p
    return hard + (soft - soft.detach())  # exactly 0/1 in the forward pass, d mask / d p = keep


def corrcoef_penalty(acts: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean absolute correlation with the other channels over the batch ([B, C] -> [C]).

    Channels with no variance in the batch count as uncorrelated (their corrcoef is undefined)."""
    b, c = acts.shape
    if b < 2 or c < 2:
        return acts.new_zeros(c)
    x = acts - acts.mean(0, keepdim=True)
    std = x.pow(2).mean(0).sqrt()
    z = x / std.clamp_min(1e-6)
    r = (z.T @ z) / b
    r = torch.where((std > 1e-6).unsqueeze(0) & (std > 1e-6).unsqueeze(1), r, torch.zeros_like(r))
    off = r.abs().sum(1) - r.diagonal().abs()
    return off / (c - 1)


class BatchRepr(nn.Module):
    """Batch-level distribution features D_t: a small encoder of the input batch, averaged over it.

    The mean and the spread of the per-sample codes together describe the batch, so two batches of
    the same images in a different order give the same embedding."""

    def __init__(self, input_shape: list[int], dim: int = 32):
        super().__init__()
        self.dim = dim
        half = max(1, dim // 2)
        if len(input_shape) == 3:
            c = input_shape[0]
            self.encoder = nn.Sequential(
                nn.Conv2d(c, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(16, half, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
        else:
            self.encoder = nn.Sequential(nn.Linear(input_shape[0], 64), nn.ReLU(), nn.Linear(64, half), nn.ReLU())
        self.out = nn.Linear(2 * half, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = self.encoder(x.float())
        spread = codes.std(0, unbiased=False) if codes.shape[0] > 1 else torch.zeros_like(codes[0])
        return self.out(torch.cat([codes.mean(0), spread]))


class SelectGate(nn.Module):
    """Data-aware channel selection for one channel group; see the module docstring."""

    def __init__(self, channels: int, embed_dim: int = 32, hidden: int = 64, spatial: bool = True,
                 budget: float | int = 0.5, tau: float = 1.0, lambdas: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 alpha: float = 0.1, noise: float = 1.0, corr_weight: float = 1.0):
        super().__init__()
        self.channels = channels
        self.spatial = spatial
        self.tau = tau
        self.lambdas = tuple(float(v) for v in lambdas)
        self.alpha = alpha
        self.noise = noise
        self.corr_weight = corr_weight
        self.keep = resolve_keep(budget, channels)
        self.theta = nn.Parameter(0.1 * torch.randn(channels))  # theta_c ~ N(0, 0.01)
        # two-layer MLP over FeatureComb = [batch embedding D_t, layer statistics of F_l]
        self.mlp = nn.Sequential(nn.Linear(embed_dim + 2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        if spatial:  # FeatureNet: a depthwise 3x3 conv (appendix C: kernel size 3)
            self.feature_net = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        else:
            self.feature_net = nn.Conv1d(channels, channels, 1, groups=channels)
        self.fusion_w = nn.Parameter(torch.ones(channels))
        self.fusion_b = nn.Parameter(torch.zeros(channels))
        self.register_buffer("dynamic_ema", torch.full((channels,), 0.5))
        self.register_buffer("feature_ema", torch.full((channels,), 1.0 / channels))
        self.register_buffer("prob_ema", torch.full((channels,), 1.0 / channels))
        self.register_buffer("redundancy_ema", torch.zeros(channels))
        #: Tensors of the last forward that the losses of appendix C read (empty before any).
        self.last: dict[str, torch.Tensor] = {}

    def set_budget(self, budget: float | int) -> None:
        """A new C_l; takes effect at the next forward, no retraining (the paper's O(1) adaptation)."""
        self.keep = resolve_keep(budget, self.channels)

    # -- the pieces of the score -----------------------------------------------------------------
    def _activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample channel activations [B, C] and per-sample FeatureNet responses [B, C]."""
        x = x.float()
        if self.spatial:
            return x.mean((2, 3)), self.feature_net(x).mean((2, 3))
        return x, self.feature_net(x.unsqueeze(-1)).squeeze(-1)

    def score(self, acts: torch.Tensor, feats: torch.Tensor, stochastic: bool) -> torch.Tensor:
        l1, l2, l3, l4 = self.lambdas
        static = torch.sigmoid(self.theta)
        fbar = feats.mean(0)
        eps = gumbel_like(fbar) * self.noise if stochastic else torch.zeros_like(fbar)
        g_t = torch.sigmoid(self.fusion_w * fbar + self.fusion_b + self.theta + eps)
        dynamic = (1 - self.alpha) * self.dynamic_ema + self.alpha * g_t
        feature = (1 - self.alpha) * self.feature_ema + self.alpha * torch.softmax(fbar, 0)
        redundancy = corrcoef_penalty(acts.detach())
        corr = 1.0 - self.corr_weight * redundancy
        if self.training:
            self.dynamic_ema.copy_(dynamic.detach())
            self.feature_ema.copy_(feature.detach())
            self.redundancy_ema.mul_(1 - self.alpha).add_(self.alpha * redundancy)
        self.last["redundancy"] = redundancy
        return l1 * static + l2 * dynamic + l3 * self.channels * feature + l4 * corr

    def logits(self, acts: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Combine(D_t, F_l) -> MLP -> g_l (one logit per channel, for the whole batch)."""
        layer = torch.cat([acts.mean(0), acts.std(0, unbiased=False) if acts.shape[0] > 1 else torch.zeros_like(acts[0])])
        layer = torch.sign(layer) * torch.log1p(layer.abs())  # activations vary by orders of magnitude
        return self.mlp(torch.cat([embedding.float(), layer]))

    def probabilities(self, x: torch.Tensor, embedding: torch.Tensor, stochastic: bool) -> torch.Tensor:
        acts, feats = self._activations(x)
        g = self.logits(acts, embedding)
        eps = gumbel_like(g) - gumbel_like(g) if stochastic else torch.zeros_like(g)  # logistic noise
        g_soft = torch.sigmoid((g + eps) / self.tau)
        score = self.score(acts, feats, stochastic)
        p = torch.softmax(g_soft * score, 0)
        self.last.update(acts=acts, logits=g, score=score, probs=p)
        if self.training:
            self.last["prob_prev"] = self.prob_ema.clone()
            self.prob_ema.mul_(1 - self.alpha).add_(self.alpha * p.detach())
        return p

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, stochastic: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The channel mask [C] for this batch: exactly ``keep`` ones, straight-through gradient."""
        if x.shape[1] != self.channels:
            raise DanceError(f"select gate over {self.channels} channels got a tensor with {x.shape[1]}")
        p = self.probabilities(x, embedding, stochastic)
        mask = sample_exact(p, self.keep, stochastic, generator)
        self.last["mask"] = mask
        return mask

    def static_score(self) -> torch.Tensor:
        """Score without the current batch: static term and the EMAs of the other three.

        The score-only pruning baseline ranks channels by this (the paper's Score-based Pruning)."""
        l1, l2, l3, l4 = self.lambdas
        corr = 1.0 - self.corr_weight * self.redundancy_ema
        return (l1 * torch.sigmoid(self.theta) + l2 * self.dynamic_ema + l3 * self.channels * self.feature_ema
                + l4 * corr).detach()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, keep={self.keep}, tau={self.tau}, spatial={self.spatial}"
