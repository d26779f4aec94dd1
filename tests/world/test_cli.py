
from jointssl.cli import main


def test_world_command_writes_world_and_contact_sheet(tmp_path, capsys):
    out, png = tmp_path / "world", tmp_path / "sheet.png"
    code = main(["world", "--profile", "test", "--sites", "14", "--out", str(out), "--no-progress",
                 "--contact-sheet", str(png), "--run.seed", "2"])
    assert code == 0
    assert (out / "stac" / "items" / "sentinel-2-l2a.ndjson").is_file() and (out / "sites.parquet").is_file()
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "14 sites" in capsys.readouterr().out


def test_bad_profile_value_is_a_config_error(tmp_path):
    assert main(["world", "--profile", "test", "--out", str(tmp_path), "--world.sites", "0"]) == 2
