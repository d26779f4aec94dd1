"""The benchmark helpers: ratios, efficiency, projection and the documents, on made-up results (no timing)."""

from __future__ import annotations

import json

import pytest

from jointssl.bench.ingest import IngestRun, ratios, rows_needed, samples_per_s
from jointssl.bench.report import BEGIN, END, render_benchmarks, summary_rows, write_benchmarks, write_reliability
from jointssl.bench.scaling import Cluster, StageCosts, parallel_efficiency, project


def result(source: str, workers: int, rate: float) -> dict:
    return {"source": source, "workers": workers, "samples_per_s": rate, "batch_size": 8, "timed_steps": 20,
            "seconds": 1.0, "step_s": 0.5, "data_wait_s_per_step": 0.01, "read_cpu_ms_per_site": 1.5,
            "job_wall_s": 30.0}


INGEST = {"store": "/data", "sites": 200, "batch_size": 8, "warmup": 3, "steps": 20, "model": "resnet18",
          "chip_cache_write_s": 9.0,
          "results": [result("store", 1, 15.0), result("memory", 1, 16.0), result("store", 2, 20.0),
                      result("memory", 2, 24.0)]}
INGEST["ratios"] = ratios(INGEST["results"])
COSTS = StageCosts(read_cpu_s_per_site=0.02, read_wall_s_per_site=0.03, cache_cpu_s_per_site=0.001,
                   chip_bytes_per_site=122_880, gradient_bytes=100_000_000)


def test_ingest_arithmetic():
    run = IngestRun(workers=2, source="store", batch_size=8, warmup=3, steps=20)
    assert rows_needed(run) == 2 * 8 * 24
    assert samples_per_s(run, 10.0, 20) == pytest.approx(32.0)
    assert INGEST["ratios"] == {"store/memory@1": 0.938, "store/memory@2": 0.833}


def test_parallel_efficiency_is_two_workers_over_twice_one():
    assert parallel_efficiency(INGEST) == {"memory": 0.75, "store": 0.667}


def test_projection_costs_and_allreduce():
    rows = project(COSTS, Cluster(gpu_samples_per_s=1000, gpus_per_node=8, cores_per_node=64, network_gbps=100,
                                  batch_size=250), nodes=(1, 2))
    one, two = rows
    assert one["allreduce_ms_per_step"] == 0 and one["compute_efficiency"] == 1.0 and one["samples_per_s"] == 8000
    assert one["cores_needed_per_node_cogs"] == pytest.approx(8000 * 0.02)
    assert one["cores_needed_per_node_cache"] == pytest.approx(8.0)
    # ring all-reduce over 2 nodes: 2 (n-1)/n x 100 MB at 12.5 GB/s = 8 ms against a 250 ms step
    assert two["allreduce_ms_per_step"] == pytest.approx(8.0)
    assert two["compute_efficiency"] == pytest.approx(0.25 / 0.258, abs=1e-3)
    # 160 cores to decode COGs do not fit a 64-core node; 8 cores for the cache do
    assert one["fed_by_cogs"] is False and one["fed_by_cache"] is True
    slow_net = project(COSTS, Cluster(gpu_samples_per_s=1000, gpus_per_node=8, cores_per_node=64, network_gbps=1e-3,
                                      batch_size=250), nodes=(1,))[0]
    assert slow_net["fed_by_cache"] is False  # the chips' bytes do not fit the node's network


def fake_run() -> dict:
    machine = {"host": "h", "cpus": 2, "python": "3.11", "cpu": "Some CPU", "memory_gib": 23.4,
               "load_average": [0.5, 0.7, 0.9], "torch": "2", "ray": "2.60", "rasterio": "1.4"}
    return {"date": "2026-11-25 00:00 UTC", "command": "jointssl bench all --write docs/benchmarks.md",
            "machine_before": machine, "machine_after": machine, "seconds": 600.0,
            "chips": {"local": {"threads": 8, "loader_chips_per_s": 140.0, "raw_chips_per_s": 160.0, "ratio": 0.875}},
            "ingest": {"local": INGEST},
            "peers": {"torchgeo": {"error": "'jointssl bench peers' compares against TorchGeo, which is not "
                                            "installed\n  fix: pip install 'jointssl[bench]'"}},
            "scaling": {"parallel_efficiency": parallel_efficiency(INGEST), "step_s": {}, "samples_per_s": {},
                        "ddp_overhead_s_per_step_here": 0.1, "stage_costs": COSTS.__dict__,
                        "cluster": Cluster().__dict__, "projection": project(COSTS, Cluster())}}


def test_summary_rows_name_store_workers_and_goal():
    rows = summary_rows(fake_run())
    assert rows[0] == ("chip read efficiency (local disk, 8 threads)", "loader 140.0 / raw rasterio 160.0 chips/s",
                       "0.88", ">= 0.8")
    assert ("ingest efficiency, 2 workers, COGs in local disk", "20.0 / 24.0 samples/s in memory", "0.83",
            ">= 0.95") in rows
    assert any(r[0] == "chip loading vs TorchGeo" and "not measured" in r[1] for r in rows)


def test_generated_block_replaces_only_itself(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Chip read efficiency\n\nhand-written\n\n## Inference\n\ntheirs\n")
    block = render_benchmarks(fake_run())
    write_benchmarks(doc, block)
    first = doc.read_text()
    assert first.index("Intro.") < first.index(BEGIN) < first.index(END) < first.index("## Chip read efficiency")
    assert "hand-written" in first and "## Inference\n\ntheirs" in first
    assert "Load average (1, 5, 15 min) before the run: 0.5 / 0.7 / 0.9" in block
    write_benchmarks(doc, block.replace("Some CPU", "Other CPU"))
    second = doc.read_text()
    assert second.count(BEGIN) == 1 and "Other CPU" in second and "Some CPU" not in second
    assert second.replace("Other CPU", "Some CPU") == first


def test_reliability_table_from_recorded_rows(tmp_path):
    rows = [{"nodeid": "tests/faults/test_x.py::test_a", "fault": "store | killed", "expected": "retries",
             "observed": "24/24 chips", "data_lost": "0 chips", "outcome": "passed", "seconds": 12.0},
            {"nodeid": "tests/faults/test_y.py::test_b", "fault": "slow API", "expected": "timeout",
             "observed": "waited. Cause: bug", "data_lost": "-", "outcome": "known failure", "seconds": 4.0}]
    results = tmp_path / "faults.json"
    results.write_text(json.dumps(rows))
    out = tmp_path / "reliability.md"
    write_reliability(results, out)
    text = out.read_text()
    assert ("| store \\| killed | retries | 24/24 chips | 0 chips | pass | "
            "`tests/faults/test_x.py::test_a` (12.0 s) |") in text
    assert "**known failure**" in text and "2 fault tests, 1 known failure, 1 passed" in text


def test_torchgeo_rows_compare_best_of_each_and_per_process_count():
    run = fake_run()
    run["peers"]["torchgeo"] = {
        "torchgeo": "0.8.1", "sites": 150, "chips": 444, "batch_size": 16, "jointssl_threads": 16,
        "torchgeo_datasets": 27, "torchgeo_index_s": 2.0, "same_pixels": True,
        "chips_per_s": {"jointssl_workers_0": 110.0, "torchgeo_workers_0": 95.0, "jointssl_workers_2": 200.0,
                        "torchgeo_workers_2": 175.0},
        "best_jointssl": "jointssl_workers_2", "best_peer": "torchgeo_workers_2", "ratio": 1.143,
        "ratio_by_workers": {"0": 1.158, "2": 1.143}}
    row = next(r for r in summary_rows(run) if r[0].startswith("chip loading vs TorchGeo"))
    assert row == ("chip loading vs TorchGeo 0.8.1 (local disk), best of each",
                   "jointssl 200.0 (2 workers) / TorchGeo 175.0 (2 workers) chips/s", "1.14", "> 1")
    block = render_benchmarks(run)
    assert "in-process **1.16**, 2 workers **1.14**" in block and "Why jointssl is faster" in block


def test_benchmarks_block_re_rendered_from_the_printed_json(tmp_path):
    from jointssl.bench.report import main

    printed = tmp_path / "bench.out"
    printed.write_text(json.dumps(fake_run(), indent=2) + "\nchip read efficiency | loader 140.0 | 0.88 | >= 0.8\n")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"Intro.\n\n{BEGIN}\nold\n{END}\n\n## Kept\n")
    assert main(["benchmarks", str(printed), str(doc)]) == 0
    text = doc.read_text()
    assert "old" not in text and "2026-11-25 00:00 UTC" in text and text.endswith("## Kept\n")
    assert main(["nonsense", str(printed), str(doc)]) == 2


def test_ingest_block_is_its_own_and_says_whether_gpus_are_fed(tmp_path):
    from jointssl.bench.ingest_doc import INGEST_BEGIN, INGEST_END
    from jointssl.bench.report import render_ingest

    run = {k: v for k, v in fake_run().items() if k in ("date", "command", "machine_before", "machine_after",
                                                         "seconds", "ingest", "scaling")}
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{BEGIN}\nall\n{END}\n\n{INGEST_BEGIN}\nold\n{INGEST_END}\n\n## Kept\n")
    write_benchmarks(doc, render_ingest(run), INGEST_BEGIN, INGEST_END)
    text = doc.read_text()
    assert f"{BEGIN}\nall\n{END}" in text and "old" not in text and text.endswith("## Kept\n")
    assert "| ingest efficiency, 1 worker, COGs in local disk | 15.0 / 16.0 samples/s in memory | **0.94** |" in text
    # the default cluster (96 cores, 2,000 samples/s per GPU): COG decode at 20 ms per site needs 320 cores
    assert "| 1 | 8 | 0.0 | 1.0 | 16,000 | 320.0 | 16.0 | 15.73 | **no** / yes |" in text
    assert "the cache feeds 8 GPUs per node at 2,000 samples/s each" in text
