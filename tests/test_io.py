"""Safe writes and bounded JSON reads (issue 16): symlinks, special files, modes, stale temporary
files, all-or-nothing groups, depth and size limits."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from nasir.diagnostics import NasirError
from nasir.io import (
    MAX_JSON_DEPTH,
    atomic_write_all,
    atomic_write_text,
    check_output,
    check_output_dir,
    parse_json,
    read_json,
    text_writer,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if "nasir-tmp" in p.name)


def test_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


@pytest.mark.parametrize("special", ["fifo", "folder"])
def test_a_special_file_or_folder_is_never_replaced(tmp_path, special):
    path = tmp_path / "out.json"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(NasirError, match="not a regular file|is a directory"):
        atomic_write_text(path, "{}")
    assert not stat.S_ISREG(os.stat(path).st_mode) and _leftovers(tmp_path) == []


def test_a_device_is_refused_before_anything_is_written():
    if not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("/dev/full is no device on this machine")
    with pytest.raises(NasirError, match="not a regular file"):
        check_output("/dev/full")  # only the check: a wrong answer here must not cost the machine its device


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    atomic_write_text(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "y"


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.json.nasir-tmp.{int(dead.stdout)}-0"
    stale.write_text("half a file")
    alive = tmp_path / f".out.json.nasir-tmp.{os.getppid()}-0"  # a writer that still runs
    alive.write_text("being written")
    atomic_write_text(tmp_path / "out.json", "{}")
    assert not stale.exists() and alive.exists()


def test_a_group_of_outputs_is_written_all_or_nothing(tmp_path):
    def failing(tmp):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write_all([(tmp_path / "a.json", text_writer("a")), (tmp_path / "b.bin", failing)])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NasirError, match="is a directory"):  # a bad location is found before anything is written
        atomic_write_all([(tmp_path / "a.json", text_writer("a")), (tmp_path, text_writer("b"))])
    assert list(tmp_path.iterdir()) == []


def test_output_locations_are_checked_up_front(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_output(tmp_path / "new" / "deeper.json") == tmp_path / "new" / "deeper.json"
    with pytest.raises(NasirError, match="not a directory"):
        check_output(tmp_path / "file" / "x.json")
    with pytest.raises(NasirError, match="not a directory"):
        check_output_dir(tmp_path / "file")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(NasirError, match="no permission"):
            check_output(locked / "x.json")


def test_json_is_bounded_before_it_is_decoded(tmp_path):
    with pytest.raises(NasirError, match="nests deeper"):
        parse_json("[" * 100_000 + "]" * 100_000, "deep.json")
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "ok.json") is not None
    assert parse_json('["[[[[", {"a": "\\"{"}]', "strings.json")[0] == "[[[["  # brackets in strings do not count
    with pytest.raises(NasirError, match="not usable JSON"):
        parse_json("1" * 5000, "huge-int.json")
    with pytest.raises(NasirError) as bad:
        parse_json('{"a": 1,}', "comma.json")
    assert bad.value.loc is not None and bad.value.loc.file == "comma.json" and bad.value.loc.line == 1
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(65 * 2**20)
    with pytest.raises(NasirError, match="larger than"):
        read_json(big)
