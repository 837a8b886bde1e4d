"""dance-extract: replace gates by physically smaller layers, given one mask per gate group (exact).

Exact with respect to the gated network under those masks: the extracted graph computes the same
function (``tests/dance`` checks it numerically). The pass changes the IR only; the Python API
``nasir.dance.extract.extract(graph, masks, state_dict)`` and ``nasir dance extract`` also slice
the weights.

Option ``masks``: a JSON file ``{"masks": {group: [0/1, ...]}}`` (or the bare mapping), as written
by ``nasir dance train --masks-out`` or ``nasir dance extract --masks-out``.
"""

from __future__ import annotations

from pathlib import Path

from nasir.dance.errors import DanceError
from nasir.dance.extract_plan import extract_graph
from nasir.diagnostics import NasirError
from nasir.io import read_json
from nasir.ir.graph import Graph
from nasir.passmanager import Exactness, Pass, PassResult, register


def read_masks(path: str | Path) -> dict[str, list[int]]:
    """Masks from JSON, with a clear error for a missing, malformed or mistyped file."""
    data = read_json(path, "masks", DanceError)
    masks = data.get("masks", data) if isinstance(data, dict) else None
    if not isinstance(masks, dict) or not all(isinstance(v, list) for v in masks.values()):
        raise DanceError(f"{path}: expected {{\"masks\": {{group: [0/1, ...]}}}}")
    return masks


@register
class DanceExtract(Pass):
    name = "dance-extract"
    summary = "turn gate masks into a plain graph whose layers are physically smaller"

    masks: str = ""

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        if not self.masks:
            raise NasirError("dance-extract needs masks", hint="dance-extract{masks=masks.json}")
        try:
            small, plan = extract_graph(graph, read_masks(self.masks))
        except DanceError as e:
            raise NasirError(f"dance-extract: {e.message}", e.loc, e.hint) from None
        graph.body = small.body
        result.count("gates-removed", len(plan.gates))
        result.count("layers-shrunk", sum(1 for k in plan.kinds.values() if k in ("conv", "linear")))
        return result
