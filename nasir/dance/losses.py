"""The stage-2 loss of DANCE (appendix C): classification + sparsity + diversity + correlation + stability.

The appendix names the terms but not their formulas; these are the forms used here and why:

* **classification**: cross-entropy of the sampled architecture's logits.
* **sparsity (dynamic weight)**: exact-C_l sampling already fixes how many channels a mask keeps,
  so the term acts on the gate's *independent* keep probabilities sigmoid(g_l): their mean should
  equal the budget C_l / C. That gives the MLP logits a calibrated meaning, which the score-only
  baseline lacks. The weight ramps up linearly over ``warmup`` steps (the MLP first follows the
  task loss) and grows with the relative deviation from the budget (a dynamic weight).
* **diversity**: within one batch the T architecture samples should explore different channels:
  the overlap of a mask with the masks sampled before it in the same batch, |m_t . m_s| / C_l.
* **correlation**: kept channels should not be redundant: the mean redundancy (mean |corrcoef|
  with the other channels) of the kept channels.
* **stability**: the selection distribution p should move smoothly between steps: the total
  variation distance 0.5 * |p - EMA(p)|_1, in [0, 1] whatever the layer width.

Every term except classification is averaged over gate groups. Gradients reach the gates through
the straight-through masks and through p.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from nasir.dance.gated import GatedNetwork


@dataclass
class LossWeights:
    sparsity: float = 0.5
    diversity: float = 0.05
    correlation: float = 0.1
    stability: float = 1.0
    warmup: int = 20

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def gate_terms(net: GatedNetwork, previous: dict[str, list[torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """The four regularizers (unweighted) from the gates' last forward, averaged over groups."""
    sparsity, diversity, correlation, stability = [], [], [], []
    for group in net.groups:
        gate = net.gate(group)
        last = gate.last
        if "mask" not in last:
            continue
        mask, p = last["mask"], last["probs"]
        target = gate.keep / gate.channels
        density = torch.sigmoid(last["logits"]).mean()
        sparsity.append((density - target) ** 2)
        if previous and previous.get(group):
            overlaps = [(mask * prev).sum() / gate.keep for prev in previous[group]]
            diversity.append(torch.stack(overlaps).mean())
        correlation.append((mask * last["redundancy"]).sum() / gate.keep)
        if "prob_prev" in last:
            stability.append(0.5 * (p - last["prob_prev"]).abs().sum())
    zero = next(net.parameters()).new_zeros(())
    mean = lambda xs: torch.stack(xs).mean() if xs else zero  # noqa: E731
    return {"sparsity": mean(sparsity), "diversity": mean(diversity), "correlation": mean(correlation),
            "stability": mean(stability)}


def sparsity_weight(base: float, step: int, warmup: int, deviation: float) -> float:
    """Dynamic sparsity weight: linear ramp over ``warmup`` steps, larger the further from budget."""
    ramp = min(1.0, (step + 1) / max(1, warmup))
    return base * ramp * (1.0 + deviation)


def dance_loss(logits: torch.Tensor, labels: torch.Tensor, net: GatedNetwork, weights: LossWeights, step: int,
               previous: dict[str, list[torch.Tensor]] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total stage-2 loss of one sampled architecture and its parts (floats, for logging)."""
    ce = F.cross_entropy(logits.float(), labels)
    terms = gate_terms(net, previous)
    deviation = float(terms["sparsity"].detach().sqrt()) / 0.5
    w_sparse = sparsity_weight(weights.sparsity, step, weights.warmup, deviation)
    total = (ce + w_sparse * terms["sparsity"] + weights.diversity * terms["diversity"]
             + weights.correlation * terms["correlation"] + weights.stability * terms["stability"])
    parts = {"ce": float(ce.detach()), **{k: float(v.detach()) for k, v in terms.items()}, "sparsity_weight": w_sparse}
    return total, parts
