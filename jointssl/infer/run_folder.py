"""An inference run's folder: its manifest, opened or created with the run's MLflow run, and the run's
finishing step once every cell is committed (summary, candidates, map, MLflow, watermark, the manifest
marked complete). :mod:`jointssl.infer.run` drives both around the stream."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jointssl import storage
from jointssl.config.schema import JobConfig
from jointssl.errors import JointsslError
from jointssl.infer.area import Area
from jointssl.infer.model_ref import ModelRef

if TYPE_CHECKING:
    from jointssl.infer.decision import Decision

log = logging.getLogger("jointssl.infer")

MANIFEST = "_manifest.json"


def finish_run(config: JobConfig, area: Area, model: ModelRef, decision: Decision, key: str, run_url: str,
            manifest: dict[str, Any], tracking: str, mark_url: str, since: str | None, tiles_now: int,
            seconds: float) -> dict[str, Any]:
    from jointssl.infer.candidates import write_candidates
    from jointssl.infer.report import log_to_mlflow, map_title, ood_warning, render_map, summarise
    from jointssl.infer.watermark import advance_watermark
    from jointssl.infer.writer import partition_urls, read_stats, write_atomic

    infer = config.infer
    summary = {
        "run": key,
        "run_id": manifest["mlflow_run_id"],
        "out": run_url,
        "model": {"uri": model.uri, "name": model.name, "version": model.version},
        "area": area.source,
        "window": [infer.start, infer.end],
        "incremental": infer.incremental,
        "since": since,
        **summarise(read_stats(run_url), model.classes),
        "decision": decision.to_dict(),
        "tiles_this_attempt": tiles_now,
        "tiles_per_s": round(tiles_now / seconds, 2) if tiles_now and seconds > 0 else None,
        "seconds": round(seconds, 1),
    }
    if infer.incremental:
        mark = advance_watermark(mark_url, area.key, summary["newest_acquisition"], key, model.uri)
        summary["watermark"] = {"before": since, "after": mark.newest if mark else None, "url": mark_url}
    fs, path = storage.filesystem(run_url)
    remote = storage.is_remote(run_url)
    names = [m["name"] for m in model.sensors["modalities"] if m["name"] in identity_modalities(manifest)]
    summary["candidates"] = write_candidates(run_url, partition_urls(run_url), decision, names, remote)
    warning = ood_warning(summary)
    if warning:
        summary["warning"] = warning
        log.warning("infer %s: %s", key, warning)
    with tempfile.TemporaryDirectory(prefix="jointssl-infer-") as tmp:
        map_png = render_map(partition_urls(run_url), area.geometry, model.classes, os.path.join(tmp, "map.png"),
                             map_title(key, summary, decision.label(), model.uri))
        summary_json = os.path.join(tmp, "summary.json")
        with open(summary_json, "w") as handle:
            json.dump(summary, handle, indent=2, default=str)
        with open(map_png, "rb") as handle:
            write_atomic(f"{path}/_map.png", fs, handle.read(), remote)
        write_atomic(f"{path}/_summary.json", fs, json.dumps(summary, indent=2, default=str).encode(), remote)
        if tiles_now or manifest.get("status") != "complete":
            from jointssl.tracking import record  # an MLflow outage here loses the record, not the run

            record(f"inference {key} summary", lambda: log_to_mlflow(tracking, manifest["mlflow_run_id"], summary,
                                                                     [summary_json, map_png], f"inference/{key}"))
    write_atomic(f"{path}/{MANIFEST}", fs, json.dumps({**manifest, "status": "complete"}, indent=2).encode(), remote)
    log.info("infer %s: %d tiles (%d classified), detections %s, skipped %s -> %s", key, summary["tiles"],
             summary["classified"], summary["detections"], summary["skipped"], run_url)
    return summary


def identity_modalities(manifest: dict[str, Any]) -> list[str]:
    """The sensors a run reads, as its manifest records them."""
    return list(manifest.get("identity", {}).get("modalities", []))


def open_manifest(config: JobConfig, run_url: str, key: str, identity: dict[str, Any], model: ModelRef,
                   tracking: str) -> dict[str, Any]:
    """The run's manifest: read back on a re-run (same MLflow run), else created with a new MLflow run."""
    from jointssl.infer.writer import write_atomic
    from jointssl.tracking import start_run

    fs, path = storage.filesystem(run_url)
    manifest_path = f"{path}/{MANIFEST}"
    found = storage.patiently(run_url, f"reading {run_url}/{MANIFEST}",
                              lambda: json.loads(fs.cat_file(manifest_path)) if fs.exists(manifest_path) else None)
    if found is not None:
        manifest: dict[str, Any] = found
        if manifest.get("identity") != identity:
            raise JointsslError(f"run folder {run_url} belongs to another run (its manifest differs)",
                                hint="remove the folder or use another infer.out / run.name")
        if manifest.get("status") != "complete":
            start_run(config, tracking, manifest["mlflow_run_id"])  # marks the MLflow run running again
            manifest["attempts"] = manifest.get("attempts", 1) + 1
            write_atomic(manifest_path, fs, json.dumps(manifest, indent=2).encode(), storage.is_remote(run_url))
        return manifest
    run_id = start_run(config, tracking, None)
    import mlflow

    mlflow.MlflowClient(tracking).set_tag(run_id, "jointssl.infer_run", key)
    manifest = {"run": key, "identity": identity, "model": model.uri, "mlflow_run_id": run_id, "status": "running",
                "attempts": 1, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomic(manifest_path, fs, json.dumps(manifest, indent=2).encode(), storage.is_remote(run_url))
    return manifest
