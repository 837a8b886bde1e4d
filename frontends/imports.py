"""Where ``import "lib.nas"`` may read: the importing file's folder, ``-I`` folders, the standard library.

An import names a ``.nas`` file inside one of those folders. An absolute path, or one that ``..`` or
a symbolic link leads out of its folder, is refused unless allowed explicitly (``--allow-any-import``):
a space downloaded from the internet must not read ``/etc/passwd``, ``../../secrets`` or
``/proc/self/environ`` (and quote it in a syntax error).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nasir.diagnostics import NasirError


def std_dir() -> Path:
    return Path(str(resources.files("nasir.grammar").joinpath("std")))


@dataclass(frozen=True)
class ImportPaths:
    """The folders imports resolve in besides the importing file's and the standard library's."""

    search: tuple[Path, ...] = ()  # ``-I DIR``, in order
    allow_any: bool = False  # ``--allow-any-import``: absolute paths and paths leaving their folder too

    def __post_init__(self) -> None:
        for folder in self.search:
            if not folder.is_dir():
                raise NasirError(f"import path {str(folder)!r} is not a folder")

    def folders(self, importing_file: str) -> list[Path]:
        here = Path(importing_file).parent if not importing_file.startswith("<") else Path.cwd()
        return [here, *self.search, std_dir().parent, std_dir()]

    def resolve(self, name: str, importing_file: str) -> Path:
        """The file ``import "name"`` in ``importing_file`` reads; an unlocated ``NasirError`` if none may."""
        if not name.endswith(".nas"):
            raise NasirError(f"cannot import {name!r}: imports name .nas files")
        refused = None
        for folder in self.folders(importing_file):
            try:
                path = (folder / name).resolve()
                if not path.is_file():
                    continue
            except (OSError, ValueError):  # a name too long, a NUL byte: no such file
                continue
            if self.allow_any or path.is_relative_to(folder.resolve()):
                return path
            refused = refused or path
        if refused is not None:
            raise NasirError(f"import {name!r} names a file outside the folders imports may read ({refused})",
                             hint="imports are relative to the importing file, a -I folder or the standard library; "
                                  "pass --allow-any-import (allow_any=True) to read any file")
        raise NasirError(f"cannot find imported file {name!r}",
                         hint='paths are relative to the importing file, to a -I folder or to the standard library '
                              '(e.g. "std/darts.nas")')
