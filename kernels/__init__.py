"""Merged (TopoNAS) convolution: torch reference, Triton kernels and the ``nasir::merged_conv`` op.

``merged_conv(x, kernels, dilations, weights, ...)`` computes sum_i w_i conv(x, k_i, d_i) as one
convolution with the merged kernel; ``merge_kernels`` returns that kernel.  Importing this package
needs only torch: Triton is imported the first time a CUDA tensor (or ``TRITON_INTERPRET=1``)
takes the Triton path.
"""

from nasir.kernels.ops import merge_kernels, merged_conv, use_backend
from nasir.kernels.reference import (
    embed,
    extract,
    footprint,
    merge_kernels_reference,
    merged_conv_reference,
    naive_mixed_conv,
    standardize,
)

__all__ = [
    "embed",
    "extract",
    "footprint",
    "merge_kernels",
    "merge_kernels_reference",
    "merged_conv",
    "merged_conv_reference",
    "naive_mixed_conv",
    "standardize",
    "use_backend",
]
