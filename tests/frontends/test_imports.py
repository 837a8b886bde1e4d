"""Imports resolve in known folders only, and diagnostics quote only DSL sources the compile read."""

from __future__ import annotations

import json
import os

import pytest

from nasir.cli import main
from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.elaborate import ImportPaths, parse_file
from nasir.ir.graph import Graph
from nasir.ir.verify import verify

NET = "network n() {\n  input x: [3, 8, 8]\n  output x\n}\n"


def fails(path, **kwargs) -> NasirError:
    with pytest.raises(NasirError) as info:
        parse_file(path, **kwargs)
    return info.value


def test_imports_resolve_relative_to_the_importing_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.nas").write_text('import "b.nas"\nop a() = b\n')  # b.nas next to a.nas, not main.nas
    (tmp_path / "lib" / "b.nas").write_text("op b() = relu\n")
    (tmp_path / "main.nas").write_text('import "lib/a.nas"\n' + NET.replace("output x", "output a(x)"))
    assert parse_file(tmp_path / "main.nas").body.outputs[0].shape == [3, 8, 8]


def test_search_paths(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "lib.nas").write_text("op cbr(C) = conv(C, 3) -> relu\n")
    (tmp_path / "src").mkdir()
    main_file = tmp_path / "src" / "main.nas"
    main_file.write_text('import "lib.nas"\n' + NET.replace("output x", "output cbr(4)(x)"))
    assert "cannot find imported file 'lib.nas'" in fails(main_file).message
    graph = parse_file(main_file, imports=ImportPaths(search=(tmp_path / "inc",)))
    assert graph.body.outputs[0].shape == [4, 8, 8]
    with pytest.raises(NasirError, match="is not a folder"):
        ImportPaths(search=(tmp_path / "nope",))


@pytest.mark.parametrize("target", ["../outside.nas", "{root}/outside.nas", "link.nas"])
def test_imports_that_leave_their_folder_need_a_flag(tmp_path, target):
    (tmp_path / "outside.nas").write_text("op o() = relu\n")
    (tmp_path / "src").mkdir()
    os.symlink(tmp_path / "outside.nas", tmp_path / "src" / "link.nas")
    main_file = tmp_path / "src" / "main.nas"
    main_file.write_text(f'import "{target.format(root=tmp_path)}"\n' + NET.replace("output x", "output o(x)"))
    error = fails(main_file)
    assert "outside the folders imports may read" in error.message and error.loc.line == 1
    assert "--allow-any-import" in error.hint
    assert parse_file(main_file, imports=ImportPaths(allow_any=True)).body.outputs[0].shape == [3, 8, 8]


def test_only_nas_files_are_imported_and_secrets_are_never_quoted(tmp_path, monkeypatch):
    monkeypatch.setenv("NASIR_TEST_SECRET", "do-not-print-me")
    main_file = tmp_path / "main.nas"
    main_file.write_text('import "/proc/self/environ"\n' + NET)
    error = fails(main_file, imports=ImportPaths(allow_any=True))
    assert "imports name .nas files" in error.message and "do-not-print-me" not in error.render()

    secret = tmp_path / "secret.txt"  # not a .nas file: its text is not quoted, even as the main file
    secret.write_text("TOKEN=do-not-print-me\n")
    error = fails(secret)
    assert error.loc.file == str(secret) and "do-not-print-me" not in error.render()


def test_diagnostics_never_read_a_file_a_location_names(tmp_path):
    secret = tmp_path / "secret.nas"  # a .nas file this process never parsed
    secret.write_text("password = do-not-print-me\n")
    assert "do-not-print-me" not in NasirError("boom", SourceLoc(file=str(secret), line=1, col=1)).render()

    source = tmp_path / "ok.nas"
    source.write_text("network n() {\n  input x: [3, 8, 8]\n  y = conv(3, 3)(x)\n  z = sum(y, x)\n  output z\n}\n")
    data = json.loads(parse_file(source).to_json())
    for node in data["body"]["nodes"]:
        node["loc"]["file"] = str(secret)  # IR JSON naming any file
        if node["kind"] == "op":
            node["attrs"]["out_channels"] = 5  # and failing verification
    tampered = Graph.from_json(json.dumps(data))
    with pytest.raises(NasirError) as info:
        verify(tampered)
    assert info.value.loc.file == str(secret) and "do-not-print-me" not in info.value.render()


def test_cli_import_path_flags(tmp_path, capsys):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "lib.nas").write_text("op cbr(C) = conv(C, 3) -> relu\n")
    (tmp_path / "outside.nas").write_text("op o() = relu\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.nas").write_text('import "lib.nas"\n' + NET.replace("output x", "output cbr(4)(x)"))
    (tmp_path / "src" / "b.nas").write_text('import "../outside.nas"\n' + NET.replace("output x", "output o(x)"))
    assert main(["count", str(tmp_path / "src" / "a.nas"), "-I", str(tmp_path / "inc")]) == 0
    assert main(["count", str(tmp_path / "src" / "b.nas")]) == 2
    assert "--allow-any-import" in capsys.readouterr().err
    assert main(["count", str(tmp_path / "src" / "b.nas"), "--allow-any-import"]) == 0
