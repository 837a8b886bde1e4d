"""File input and output that never trusts a file and never leaves a half-written one behind.

Output: everything nasir writes for a user (IR JSON, dot, generated code, checkpoints) goes
through a temporary file next to the target and an atomic rename, so an error or a kill mid-write
keeps whatever was there before. A symbolic link is written through (the file it names is
replaced, the link stays); anything but a regular file (a directory, ``/dev/full``, a FIFO) is
refused rather than replaced. A new file gets the mode the umask allows, a replaced one keeps its
mode. Temporary files are named ``.NAME.nasir-tmp.PID-N``; one left behind by a killed process
is removed by the next write of ``NAME``. ``check_output`` runs the same checks before any work
starts, so a bad ``-o`` fails at once instead of after an hour of training.

Input: ``parse_json`` bounds the size and nesting depth of JSON before decoding it, so a file
nested 100,000 deep is a located error rather than a ``RecursionError``.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasir.diagnostics import NasirError, SourceLoc

#: Largest JSON document read (bytes of text); the biggest standard IR is a few MB.
MAX_JSON_BYTES = 64 * 2**20
#: Deepest nesting of arrays and objects accepted; standard IRs nest about 15 levels.
MAX_JSON_DEPTH = 200

_TMP_MARK = ".nasir-tmp."
_tmp_counter = itertools.count()
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}

Writer = Callable[[str], None]


# -- output --------------------------------------------------------------------------------------
def check_output(path: str | Path, what: str = "output") -> Path:
    """The regular file that writing ``path`` will replace (symbolic links followed), after
    checking that it can be written: an existing target must be a regular file, and the nearest
    existing folder above it must be a writable folder. Raises a ``NasirError`` otherwise."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode if target.exists() or target.is_symlink() else None
    except OSError as e:
        raise NasirError(f"{what} {path}: {e.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise NasirError(f"{what} {path} is a directory", hint="give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise NasirError(f"{what} {path} is not a regular file; nasir only replaces regular files")
    _check_writable_folder(target.parent, path, what)
    return target


def check_output_dir(path: str | Path, what: str = "directory") -> Path:
    """Like ``check_output`` for a directory that nasir fills (a work directory)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NasirError(f"{what} {path} exists and is not a directory")
    _check_writable_folder(path, path, what)
    return path


def _check_writable_folder(folder: Path, path: Path, what: str) -> None:
    """The nearest existing folder at or above ``folder`` must be a folder nasir may write in."""
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NasirError(f"{what} {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NasirError(f"{what} {path}: no permission to write in {folder}")


def atomic_write(path: str | Path, write: Writer) -> None:
    """Call ``write(tmp_path)`` and move the result over ``path`` only if it succeeded."""
    atomic_write_all([(path, write)])


def atomic_write_all(outputs: Sequence[tuple[str | Path, Writer]]) -> None:
    """Write several files all or nothing: every ``write(tmp_path)`` runs first, and only when all
    of them succeeded are the files moved into place (one rename each), so a failure in any of
    them leaves none of the outputs behind."""
    targets = [check_output(path) for path, _ in outputs]
    temps: list[Path] = []
    current = targets[0] if targets else None
    try:
        for target, (_, write) in zip(targets, outputs):
            current = target
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(target)
            tmp = _new_temp(target)
            temps.append(tmp)
            mode = stat.S_IMODE((target if target.exists() else tmp).stat().st_mode)
            write(str(tmp))
            os.chmod(tmp, mode)
        for tmp, target in zip(temps, targets):
            current = target
            os.replace(tmp, target)
    except OSError as e:
        raise NasirError(f"cannot write {current}: {e.strerror or e}") from None
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def _new_temp(target: Path) -> Path:
    """Create an empty temporary file next to ``target`` (mode from the umask, as a new file gets)."""
    while True:
        tmp = target.parent / f".{target.name[:200]}{_TMP_MARK}{os.getpid()}-{next(_tmp_counter)}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete the temporary files of ``target`` left by writers that no longer run; returns them."""
    prefix = f".{target.name[:200]}{_TMP_MARK}"
    removed = []
    for entry in target.parent.glob(f"{glob.escape(prefix)}*"):
        pid = entry.name[len(prefix):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def text_writer(text: str) -> Writer:
    """A writer (for ``atomic_write``/``atomic_write_all``) of UTF-8 ``text``."""
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, text_writer(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


# -- input ---------------------------------------------------------------------------------------
def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text`` (strings skipped), in linear time."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def parse_json(text: str, source: str, what: str = "file", error: type[NasirError] = NasirError) -> Any:
    """Decode JSON from a file or a checkpoint header, refusing (with ``error``) text over
    ``MAX_JSON_BYTES``, nested deeper than ``MAX_JSON_DEPTH``, or malformed, before Python
    objects for it are built."""
    if len(text) > MAX_JSON_BYTES:
        raise error(f"{source}: {what} is larger than {MAX_JSON_BYTES // 2**20} MiB")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise error(f"{source}: {what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what} is not valid JSON: {e.msg}", SourceLoc(file=source, line=e.lineno, col=e.colno)) from None
    except (ValueError, RecursionError) as e:  # e.g. an integer over Python's 4,300-digit limit
        raise error(f"{source}: {what} is not usable JSON ({str(e).splitlines()[0][:200]})") from None


def read_text(path: str | Path, what: str = "file", error: type[NasirError] = NasirError,
              limit: int = MAX_JSON_BYTES) -> str:
    """A user-given text file (at most ``limit`` bytes), with a ``NasirError`` for anything unreadable."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > limit:
            raise error(f"{path}: {what} is larger than {limit // 2**20} MiB")
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is larger than {limit // 2**20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text") from None


def read_json(path: str | Path, what: str = "file", error: type[NasirError] | None = None) -> Any:
    """Load a user-given JSON file; a missing, oversized, too deeply nested or malformed file
    raises a located ``NasirError`` (or the subclass ``error``), never a traceback."""
    cls = error or NasirError
    return parse_json(read_text(path, what, cls), str(path), what, cls)
