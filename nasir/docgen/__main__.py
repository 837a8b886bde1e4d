"""``python -m nasir.docgen [--check] [--root DIR]``: write (or check) the generated reference pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nasir.docgen import PAGES, REGENERATE, repository_root, stale_pages
from nasir.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasir.docgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale pages (exit 1 if any)")
    parser.add_argument("--root", type=Path, default=repository_root(), help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.root / "docs").is_dir():
        parser.error(f"{args.root} has no docs/ folder: give the repository root with --root")
    if args.check:
        stale = stale_pages(args.root)
        for rel in stale:
            print(f"{rel} is out of date: run `{REGENERATE}`", file=sys.stderr)
        return 1 if stale else 0
    for rel, generate in PAGES.items():
        path = args.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, generate())
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
