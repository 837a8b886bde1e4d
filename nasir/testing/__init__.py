"""What a pass author needs to test a pass: public, used by nasir's own tests.

* ``filecheck`` / ``edge_text``: FileCheck-style matching of printed IR (``nasir.testing.filecheck``);
* ``carry_weights``: copy weights and BatchNorm statistics from a graph's lowering into the
  lowering of its rewritten form (``nasir.testing.weights``);
* ``assert_exact``, ``assert_equivalent``, ``compare``, ``run_pipeline``, ``one_hot_alpha``: float64 comparisons of
  a graph before and after passes (``nasir.testing.equivalence``);
* ``random_space``, ``random_spaces``, ``GeneratedSpace``, ``brute_force_size``: seeded random search
  spaces for property tests, and the enumeration that checks search-space sizes (``nasir.testing.spaces``);
* ``assert_resumes_after_sigkill``: a resumable command killed with SIGKILL mid-run resumes bit for
  bit (``nasir.testing.resume``).
"""

from nasir.testing.equivalence import AlphaFn, assert_equivalent, assert_exact, compare, one_hot_alpha, run_pipeline
from nasir.testing.filecheck import edge_text, filecheck
from nasir.testing.resume import assert_resumes_after_sigkill
from nasir.testing.spaces import GeneratedSpace, brute_force_size, random_space, random_spaces
from nasir.testing.weights import carry_weights

__all__ = ["AlphaFn", "GeneratedSpace", "assert_equivalent", "assert_exact", "assert_resumes_after_sigkill",
           "brute_force_size", "carry_weights", "compare", "edge_text", "filecheck", "one_hot_alpha", "random_space",
           "random_spaces", "run_pipeline"]
