"""An empty area and invalid configurations: a clear error and an exit code, before any service starts.

Bad pixels and files (corrupt COG, wrong CRS, all-nodata, NaN, missing assets and objects) are
tested in tests/data; an inference area without imagery and an inference without an area in
tests/infer; unknown config keys and missing config files in tests/test_cli.py. scripts/reliability.sh
collects those with these.
"""

from __future__ import annotations

import pytest

from jointssl.cli import main


@pytest.mark.faults(fault="empty area: a sites table with no sites",
                    expected="'jointssl index' exits 1 saying the sites file holds no sites")
def test_an_empty_sites_table_is_a_clear_error(tmp_path, capsys, monkeypatch, record_property):
    monkeypatch.delenv("JOINTSSL_STAC_URL", raising=False)
    sites = tmp_path / "sites.csv"
    sites.write_text("site_id,lon,lat\n")
    code = main(["index", "--config", "configs/test.yaml", "--storage.root", str(tmp_path / "out"),
                 "--index.sites", str(sites)])
    err = capsys.readouterr().err
    assert code == 1 and f"sites file {sites} holds no sites" in err, err
    assert not (tmp_path / "out" / "index").exists()  # nothing half-written
    record_property("observed", f"exit {code}: {err.strip().splitlines()[0].replace(str(sites), 'sites.csv')}")
    record_property("data_lost", "none (nothing written)")


INVALID = [
    ("pretrain", "pretrain:\n  batch_size: 1\n", "pretrain.batch_size"),
    ("pretrain", "pretrain:\n  num_workers: 2\n  epochs: two\n", "pretrain.epochs"),
    ("infer", "infer:\n  bbox: [10, 0, 5, 1]\n", "infer.bbox"),
    ("index", "index:\n  min_coverage: 2\n", "index.min_coverage"),
    ("index", "storage:\n  root: ftp://host/x\n", "storage.root"),
]


@pytest.mark.faults(fault="invalid config: an impossible or mistyped value for a job command",
                    expected="exit 2 naming the key and the file, before Ray or any service starts")
@pytest.mark.parametrize(("command", "text", "key"), INVALID, ids=[k for _, _, k in INVALID])
def test_invalid_values_stop_a_job_before_it_starts(tmp_path, capsys, command, text, key, record_property):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    code = main([command, "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and key in err and str(path) in err, err
    import sys

    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()  # refused before any cluster was started or joined
    message = err.strip().splitlines()[0].replace(str(path), "job.yaml").split("invalid configuration: ", 1)[-1]
    record_property("observed", f"exit {code}: {message[:200]}")
    record_property("data_lost", "none (nothing started)")
