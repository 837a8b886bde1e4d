"""The built-in passes, one module each, registered lazily.

``BUILTIN`` maps every pass name to the module that defines it. The pass manager imports a
module only when a pipeline names its pass (or ``nasir passes`` lists them all), so importing this
package, parsing ``canonicalize`` or listing the passes pulls in no pass it does not need. Pass
modules import only the IR (never torch). A pass written outside this tree registers through the
``nasir.passes`` entry point group instead (see ``nasir.passmanager``).
"""

BUILTIN: dict[str, str] = {
    "canonicalize": "nasir.passes.canonicalize",
    "dance-extract": "nasir.passes.dance_extract",
    "dance-gates": "nasir.passes.dance_gates",
    "dead-code": "nasir.passes.dead_code",
    "dna-partition": "nasir.passes.dna_partition",
    "fix-arch": "nasir.passes.fix_arch",
    "fms": "nasir.passes.fms",
    "kernel-norm": "nasir.passes.kernel_norm",
    "partial-channel": "nasir.passes.partial_channel",
    "pms": "nasir.passes.pms",
    "reparam": "nasir.passes.reparam",
    "select-merge-form": "nasir.passes.select_merge_form",
    "topo-simplify": "nasir.passes.topo_simplify",
}
