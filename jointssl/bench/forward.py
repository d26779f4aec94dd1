"""The classifier's forward on CPU: today's ``MethaneClassifier.predict`` against the inference forward
(:mod:`jointssl.infer.forward`) without and with ``channels_last``, with ``torch.compile``, and with the
encoders frozen for inference (:func:`jointssl.infer.forward.freeze_encoders`).

config.model's architecture with random weights (the cost does not depend on them), one chip batch of
``batch`` tiles of every sensor of the preset (random pixels, ``presence`` of the tiles having each
sensor), one torch thread as a CPU predictor actor runs. Each variant is warmed up once (the compile's
cost is that warm-up, reported; freezing's is reported apart), then timed ``rounds`` times over two
batches, interleaved; the best CPU ms per tile of each counts (a shared machine's neighbours slow some
rounds, never speed one up).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np

from jointssl.config.schema import JobConfig


def bench_forward(config: JobConfig, batch: int = 64, presence: float = 0.9, rounds: int = 3) -> dict[str, Any]:
    """CPU ms per tile of each variant, its warm-up CPU seconds and its largest probability change."""
    import torch
    from torch import nn

    from jointssl.classify.model import MethaneClassifier, Standardize, fused_dim
    from jointssl.infer.forward import ForwardSettings, forward, freeze_encoders, prepare
    from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
    from jointssl.sensors import load_preset, select
    from jointssl.sensors.contract import classifier_contract

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mods = select(load_preset(config.index.preset), config.infer.modalities or config.index.modalities)
        torch.manual_seed(config.run.seed)
        encoder = MultiModalEncoder(config.model, [ModalityInput.of(m) for m in mods]).eval()
        dim = fused_dim(int(encoder.encoders[mods[0].name].out_dim), len(mods), "concat")  # type: ignore[arg-type]  # Module attr
        head = nn.Sequential(Standardize(torch.zeros(dim), torch.ones(dim)), nn.Linear(dim, 6))
        model = MethaneClassifier(encoder, head, "concat", classifier_contract(config.index.preset, mods)).eval()
        rng = np.random.default_rng(0)
        chips = {m.name: rng.normal(size=(batch, len(m.bands), m.chip_size, m.chip_size)).astype(np.float32)
                 for m in mods}  # m -> [B C H W]
        present = {m.name: rng.random(batch) < presence for m in mods}  # m -> [B]
        tensors = {**{k: torch.from_numpy(v) for k, v in chips.items()},
                   **{f"{k}_present": torch.from_numpy(v) for k, v in present.items()}}
        variants: dict[str, ForwardSettings | None] = {
            "predict (today)": None,
            "forward": ForwardSettings("cpu", channels_last=False, precision="fp32"),
            "forward + channels_last": ForwardSettings("cpu", channels_last=True, precision="fp32"),
            "forward + channels_last + compile": ForwardSettings("cpu", channels_last=True, precision="fp32",
                                                                 compile=True),
            "forward + frozen encoders": ForwardSettings("cpu", channels_last=False, precision="fp32")}
        models = {k: model if s is None else prepare(copy.deepcopy(model), s) for k, s in variants.items()}
        started = time.process_time()
        frozen = freeze_encoders(models["forward + frozen encoders"])
        freeze_cpu_s = time.process_time() - started
        reference = model.predict(tensors).probs

        def run(name: str) -> np.ndarray:
            settings = variants[name]
            if settings is None:
                return model.predict(tensors).probs
            return forward(models[name], settings, chips, present,
                           encoders=frozen if name == "forward + frozen encoders" else None).probs

        out: dict[str, Any] = {}
        for name in variants:
            started = time.process_time()
            probs = run(name)
            out[name] = {"warm_up_cpu_s": round(time.process_time() - started, 2),
                         "max_abs_prob_change": float(np.abs(probs - reference).max()), "cpu_ms_per_tile": 1e9}
        for _ in range(rounds):
            for name in variants:
                started = time.process_time()
                run(name)
                run(name)
                ms = 1000 * (time.process_time() - started) / (2 * batch)
                out[name]["cpu_ms_per_tile"] = round(min(out[name]["cpu_ms_per_tile"], ms), 2)
    finally:
        torch.set_num_threads(threads)
    out["forward + frozen encoders"]["freeze_cpu_s"] = round(freeze_cpu_s, 2)
    return {"variants": out, "batch": batch, "presence": presence, "rounds": rounds,
            "model": f"{config.model.backbone}, random weights", "load_average": list(os.getloadavg())}
