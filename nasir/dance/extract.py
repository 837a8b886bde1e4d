"""Extraction, weight part: slice a gated network's weights for the physically smaller graph.

The IR part (``nasir.dance.extract_plan.extract_graph``) shrinks the layers and says which channels
every weighted op keeps; ``extract_state_dict`` slices the state dict of the gated network lowered
by ``nasir.lower`` into the state dict of the extracted one, keys unchanged. ``extract`` does both
and also takes masks as tensors (the DANCE driver's gates hold them so).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nasir.dance.extract_plan import ExtractPlan, Mask, extract_graph
from nasir.ir.graph import Graph

MaskLike = torch.Tensor | Mask


def extract_state_dict(plan: ExtractPlan, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Slice a gated network's state dict (lowered by ``nasir.lower``) for the extracted graph."""
    gate_prefixes = tuple(f"{g}." for g in plan.gates)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(gate_prefixes):
            continue
        owner, _, leaf = key.rpartition(".")
        if owner in plan.slices and value.dim() > 0:
            keep_in, keep_out = plan.slices[owner]
            kind = plan.kinds[owner]
            rows = torch.as_tensor(keep_out, dtype=torch.long, device=value.device)
            value = value.index_select(0, rows)
            if kind in ("conv", "linear") and leaf == "weight":
                value = value.index_select(1, torch.as_tensor(keep_in, dtype=torch.long, device=value.device))
        out[key] = value.clone()
    return out


def extract(graph: Graph, masks: Mapping[str, MaskLike],
            state: Mapping[str, torch.Tensor] | None = None) -> tuple[Graph, dict[str, torch.Tensor] | None]:
    """Graph and (optionally) weights of the pruned network in one call."""
    flat = {group: torch.as_tensor(mask).detach().flatten().cpu().tolist() for group, mask in masks.items()}
    small, plan = extract_graph(graph, flat)
    return small, (extract_state_dict(plan, state) if state is not None else None)
