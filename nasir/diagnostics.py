"""Source locations and user-facing errors.

Every IR node remembers where in a ``.nas`` file it came from, so that an error found late (by the
verifier, a pass or lowering) still points at the DSL text the user wrote. ``NasirError`` renders in
the compiler style ``file:line:col: error: message`` followed by the source line and a caret.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Source texts registered by the parser: the only texts errors quote.
_SOURCES: dict[str, str] = {}


def register_source(filename: str, text: str) -> None:
    """Remember the text of a parsed source so diagnostics can quote it later."""
    _SOURCES[filename] = text


def source_line(filename: str, line: int) -> str | None:
    """Line ``line`` of a DSL source this process parsed, if it is quotable.

    Only ``.nas`` files and texts given as strings (``<string>``) are quoted, and only once parsed:
    never a file a location merely names (a ``loc.file`` in IR JSON could name any file), nor a
    non-DSL file read by mistake or malice (``import "/proc/self/environ"`` must not print secrets).
    """
    if not (filename.endswith(".nas") or filename.startswith("<")):
        return None
    text = _SOURCES.get(filename)
    if text is None:
        return None
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


class SourceLoc(BaseModel):
    """A position in a DSL source file (1-based line and column)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class NasirError(Exception):
    """An error in the user's input (DSL text, IR file, options) with an optional location.

    The CLI prints ``render()`` and exits with status 2; it never shows a traceback for these.
    """

    def __init__(self, message: str, loc: SourceLoc | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint
        #: where the error surfaced on its way up, innermost first (e.g. the pass that raised it);
        #: rendered as ``note:`` lines, so the location and message stay the user's first read
        self.context: list[str] = []

    def add_context(self, text: str) -> NasirError:
        """Record one more enclosing step (a pass, a pipeline); returns the error, to ``raise`` it."""
        self.context.append(text)
        return self

    def render(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        parts = [head]
        if self.loc is not None:
            text = source_line(self.loc.file, self.loc.line)
            if text is not None:
                parts.append(text)
                caret_col = max(self.loc.col - 1, 0)
                prefix = "".join(ch if ch == "\t" else " " for ch in text[:caret_col])
                parts.append(prefix + "^")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        parts.extend(f"note: {c}" for c in self.context)
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class NasirWarning(UserWarning):
    """Input that compiles but probably not as meant (a template that replaces another)."""


class VerificationError(NasirError):
    """The IR broke an invariant (shape mismatch, dangling edge, bad architecture reference)."""
