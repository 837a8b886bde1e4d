"""select-merge-form: record the form each merged convolution is computed in. Exact.

``reparam`` merges a choice of linear convolutions into one ``merged_conv``; that node can be
computed exactly as one dense merged kernel, as a grouped depthwise convolution followed by one
pointwise convolution (depthwise -> pointwise candidates), or as the candidates' own convolutions
(``nasir.ir.merge_forms`` defines the three and their costs). ``form=auto`` (the default) gives each
node the form the cost model says is cheapest on ``device`` (``cpu`` or ``cuda``) for a step of
``batch`` samples; ``form=dense|grouped|separate`` forces one (``grouped`` only where the candidates
are depthwise -> pointwise pairs: other nodes keep the cheaper of dense and separate, with a note).
Without this pass the supernet and sampled lowerings pick per device kind when the module runs.

Statistics: ``form-dense``, ``form-grouped``, ``form-separate`` count the nodes given each form.
"""

from __future__ import annotations

from collections import Counter

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.merge_forms import DEVICE_KINDS, FORMS, available_forms, choose_form
from nasir.ir.nodes import MergedConvNode
from nasir.ir.verify import infer_shapes
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class SelectMergeForm(Pass):
    name = "select-merge-form"
    summary = "pick the form (dense / grouped / separate) of each merged conv by the cost model"

    #: "auto" (cheapest by the cost model), or a form every node that has it is given.
    form: str = "auto"
    #: The device kind the cost model prices the forms for: "cpu" or "cuda".
    device: str = "cpu"
    #: Samples per step: building the kernels costs per step, convolving per sample.
    batch: int = 64

    def __post_init__(self) -> None:
        if self.form not in ("auto", *FORMS):
            raise NasirError(f"select-merge-form: unknown form {self.form!r}", hint=f"choose auto, {', '.join(FORMS)}")
        if self.device not in DEVICE_KINDS:
            raise NasirError(f"select-merge-form: unknown device {self.device!r}", hint=f"choose {', '.join(DEVICE_KINDS)}")
        if self.batch < 1:
            raise NasirError(f"select-merge-form: batch must be at least 1, got {self.batch}")

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        infer_shapes(graph)
        picked: Counter = Counter()
        kept_auto = 0
        for _, node, region in graph.walk():
            if not isinstance(node, MergedConvNode):
                continue
            c_in, h, w = region[node.inputs[0]].shape
            auto = choose_form(node, c_in, (h, w), self.device, self.batch)  # type: ignore[arg-type]
            form = self.form if self.form in available_forms(node) else auto
            kept_auto += self.form not in ("auto", form)
            picked[form] += 1
            if node.form != form:
                node.form = form
                result.changed = True
        for form in FORMS:
            result.stats[f"form-{form}"] = picked[form]
        if not picked:
            result.notes.append("no merged_conv nodes: run reparam first")
        elif kept_auto:
            result.notes.append(f"{kept_auto} merged conv(s) have no {self.form} form (their candidates are not "
                                f"depthwise -> pointwise pairs) and got the cheaper of the others")
        return result
