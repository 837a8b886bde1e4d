"""canonicalize: fold trivial structure (exact).

* identity ops are removed and their users read the identity's input;
* a sum or concat of a single value is that value;
* inputs of a sum produced by a zero op are dropped (they add nothing; the sum keeps one
  input so its shape stays defined);
* a choice with a single candidate carrying its whole domain has weight exactly 1 and is inlined
  (its nodes keep the candidate's path as prefix, so weights keep their state-dict names).
"""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.ir.nodes import ChoiceNode, ConcatNode, OpNode, Region, SumNode
from nasir.ir.rewrite import all_regions, inline_region, remove, replace_uses, run_to_fixpoint
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class Canonicalize(Pass):
    name = "canonicalize"
    summary = "remove identities and single-input sums, inline single-candidate choices"

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        run_to_fixpoint(lambda: sum(_canonicalize_region(region, result) for region in list(all_regions(graph.body))))
        return result


def _zero_inputs(region: Region, node: SumNode) -> set[str]:
    return {i for i in node.inputs
            if isinstance(region[i], OpNode) and region[i].attrs.op == "zero"}


def _canonicalize_region(region: Region, result: PassResult) -> int:
    done = 0
    for node in list(region.nodes):
        if isinstance(node, OpNode) and node.attrs.op == "identity":
            replace_uses(region, node.name, node.inputs[0])
            remove(region, node.name)
            result.count("identities-removed")
            done += 1
        elif isinstance(node, (SumNode, ConcatNode)) and len(node.inputs) == 1:
            replace_uses(region, node.name, node.inputs[0])
            remove(region, node.name)
            result.count("trivial-joins-removed")
            done += 1
        elif isinstance(node, SumNode) and len(node.inputs) > 1 and _zero_inputs(region, node):
            zeros = _zero_inputs(region, node)
            kept = [i for i in node.inputs if i not in zeros] or node.inputs[:1]
            result.count("zero-terms-removed", len(node.inputs) - len(kept))
            node.inputs = kept
            done += 1
        elif (isinstance(node, ChoiceNode) and len(node.candidates) == 1
              and sorted(node.covers[0]) == sorted(node.domain)):
            cand = node.candidates[0]
            inline_region(region, node.name, cand.body, f"{node.name}.{cand.name}.")
            result.count("choices-inlined")
            done += 1
    return done
