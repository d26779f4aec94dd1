"""The CLI: every command has help, bad configs exit 2 with the key, and nothing pending pretends to work."""

from __future__ import annotations

import pytest

from jointssl.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert "usage: jointssl" in capsys.readouterr().out


def test_bad_config_exits_2_naming_key_and_file(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text("run:\n  seeed: 1\n")
    assert main(["index", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "run.seeed" in err and str(path) in err and "accepted keys here: name, seed" in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["index", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_flag_is_an_error_not_ignored(capsys):
    assert main(["index", "--run.speed", "3"]) == 2
    assert "run.speed" in capsys.readouterr().err
