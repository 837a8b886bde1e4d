"""File output that never leaves a half-written file behind.

Everything nasir writes for a user (IR JSON, dot, generated code, checkpoints) goes through a
temporary file in the same directory and an atomic rename, so an error or a kill mid-write keeps
whatever was there before.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result over ``path`` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def read_json(path: str | Path, what: str = "file", error: type[Exception] | None = None):
    """Load a user-given JSON file; a missing or malformed file raises a located ``NasirError``
    (or the subclass ``error``), never a traceback."""
    import json

    from nasir.diagnostics import NasirError

    cls = error or NasirError
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise cls(f"cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise cls(f"{path}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise cls(f"{path}:{e.lineno}:{e.colno}: {what} is not valid JSON: {e.msg}") from None
