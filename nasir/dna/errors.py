"""The one error type of the DNA driver.

``DNAError`` is both a ``NasirError`` (so ``nasir`` prints it without a traceback and exits with
status 2) and a ``ValueError`` (so Python callers can catch bad input the ordinary way).
"""

from __future__ import annotations

from nasir.diagnostics import NasirError


class DNAError(NasirError, ValueError):
    """Bad user input to the DNA tools: a corrupt checkpoint or cache, a mismatched table, an
    impossible constraint, a space whose candidates disagree on shapes."""
