"""The one error type of the DANCE driver.

It is both a ``NasirError`` (so the ``nasir`` CLI prints it compiler-style and exits with status 2)
and a ``ValueError`` (so Python callers that validate input the usual way catch it too).
"""

from __future__ import annotations

from nasir.diagnostics import NasirError


class DanceError(NasirError, ValueError):
    """Bad input to DANCE: an unknown gate group, a budget out of range, a corrupt checkpoint."""
