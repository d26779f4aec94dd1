"""Pre-training checkpoints: what a worker reports to Ray Train, what a resumed worker loads, and which
checkpoint a re-run resumes from (read by the driver).

A checkpoint holds the model, the optimizer, the objective's state (BYOL's target), the epoch, the global
step, the step within the epoch and ``consumed``: how many sites of the epoch's permutation
(:class:`jointssl.train.sampler.EpochPlan`) the workers had trained together, i.e. where each worker's
deterministic shard continues.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import torch

from jointssl import storage
from jointssl.config import JobConfig
from jointssl.errors import JointsslError
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.train.loop import TrainState, build_model, unwrap

STATE_FILE = "state.pt"
META_FILE = "meta.json"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"
"""Ray Train V2's record of the committed checkpoints, in the run's storage folder."""


def checkpoint_root(config: JobConfig) -> str:
    """<storage.root>/checkpoints as Ray wants it: absolute for a local root."""
    url = config.storage.url("checkpoints")
    return url if storage.is_remote(url) else os.path.abspath(url)


def latest_meta(config: JobConfig) -> dict[str, Any] | None:
    """meta.json of the checkpoint a re-run resumes from, or None for a new run.

    That is the latest checkpoint Ray Train committed (its snapshot file), not simply the newest folder:
    a worker writes its checkpoint before the controller registers it, so a run killed in between
    leaves a newer folder that resuming ignores. Without a snapshot: the highest step on storage.
    """
    fs, path = storage.filesystem(storage.join(checkpoint_root(config), config.run.name))
    try:
        snapshot = json.loads(fs.cat_file(f"{path}/{SNAPSHOT_FILE}"))
        name = snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
        meta: dict[str, Any] = json.loads(fs.cat_file(f"{path}/{name}/{META_FILE}"))
        return meta
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        pass
    metas = [json.loads(fs.cat_file(file)) for file in fs.glob(f"{path}/checkpoint_*/{META_FILE}")]
    return max(metas, key=lambda m: m["step"]) if metas else None


def report(state: TrainState, run_id: str, rank: int, world: int, batch_size: int,
           metrics: dict[str, float]) -> None:
    """Every rank reports (Ray Train requires it); only rank 0 attaches the checkpoint files, written where
    :func:`move_or_copy` can move them into storage instead of copying them."""
    import ray.train

    meta = {"epoch": state.epoch, "step": state.step, "step_in_epoch": state.step_in_epoch,
            "consumed": state.step_in_epoch * batch_size * world, "world": world, "mlflow_run_id": run_id}
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=_local_experiment_dir(),
                                     ignore_cleanup_errors=True) as folder:  # moved away: nothing to clean
        checkpoint = None
        if rank == 0:
            torch.save({"model": unwrap(state.model).state_dict(), "optimizer": state.optimizer.state_dict(),
                        "target": state.objective.state_dict(), **meta}, os.path.join(folder, STATE_FILE))
            with open(os.path.join(folder, META_FILE), "w") as f:
                json.dump(meta, f)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({**metrics, "step": state.step}, checkpoint=checkpoint, checkpoint_upload_fn=move_or_copy)


def _local_experiment_dir() -> str | None:
    """The run's storage folder when it is a local folder this process sees (a head-node path seen from
    another node is not), else None (the system's temporary folder)."""
    import pyarrow.fs
    import ray.train

    context = ray.train.get_context().get_storage()
    local = isinstance(context.storage_filesystem, pyarrow.fs.LocalFileSystem)
    return context.experiment_fs_path if local and os.path.isdir(context.experiment_fs_path) else None


def move_or_copy(checkpoint: Any, name: str) -> Any:
    """Ray Train's ``checkpoint_upload_fn``: a checkpoint written in the run's local storage folder is renamed
    to ``name`` there (a 414 MB checkpoint of the demo's model: no second write of it); any other is copied
    by Ray as usual (object storage, another filesystem, a name already taken)."""
    import ray.train

    context = ray.train.get_context().get_storage()
    destination = context.build_checkpoint_path_from_name(name)
    if os.path.dirname(checkpoint.path) == _local_experiment_dir():
        try:
            os.rename(checkpoint.path, destination)
            os.chmod(destination, 0o755)  # a copy's mode, not the temporary folder's 0o700
            return ray.train.Checkpoint(destination, filesystem=context.storage_filesystem)
        except OSError:
            pass
    return context.persist_current_checkpoint(checkpoint, name)


def load_checkpoint_encoder(folder: str, model_config: ModelConfig, inputs: Sequence[ModalityInput],
                            seed: int = 0) -> MultiModalEncoder:
    """The encoder of the checkpoint in ``folder`` (its :data:`STATE_FILE`), built from ``model_config``
    and loaded as weights only (no unpickling of code); a clear error when the weights do not fit."""
    model = build_model(model_config, inputs, seed)
    saved = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
    try:
        unwrap(model).load_state_dict(saved["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise JointsslError(f"checkpoint {folder} does not fit the configured model: {first}",
                            hint="use the model section the checkpoint was trained with") from None
    return model.eval()


def load_state(state: TrainState, path: str, device: torch.device) -> None:
    saved = torch.load(path, map_location=device, weights_only=True)
    unwrap(state.model).load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.objective.load_state_dict(saved.get("target"))
    state.epoch, state.step, state.step_in_epoch = saved["epoch"], saved["step"], saved["step_in_epoch"]
