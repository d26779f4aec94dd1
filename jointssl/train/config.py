"""The ``pretrain`` section of a job config: optimisation, scale-out, checkpoints and the probe.

Checked by :func:`jointssl.config.load.from_dict` like every section (``metadata`` rules). Defaults
fit the demo world on 2 CPU workers; the SSL papers' values are given where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AugmentConfig:
    """Intra-modal augmentations of each view, drawn independently per site and modality
    (:mod:`jointssl.train.augment`). Cross-modal pairs are the method's main views; these add the
    invariances a single sensor can have. Which radiometric one applies is the modality's ``kind``."""

    enabled: bool = True
    """False: views are the chips as read (cross-modal pairs only)."""
    flip: bool = True
    """Random horizontal and vertical flips (overhead images have no 'up'; SimCLR flips horizontally)."""
    rot90: bool = True
    """Random rotation by 0/90/180/270 degrees (exact pixel permutations: no interpolation)."""
    crop_scale_min: float = field(default=0.6, metadata={"min": 0.05, "max": 1.0})
    """Random square crop of area U(crop_scale_min, 1) of the chip, resized back to the chip size
    (bilinear); 1 disables. SimCLR uses 0.08 on ImageNet; chips of one facility need milder crops
    to keep it in view."""
    spectral_jitter: float = field(default=0.1, metadata={"min": 0.0, "max": 0.5})
    """Optical only: per-site, per-band reflectance gain U(1-j, 1+j) and offset U(-j, j) band stds
    (illumination, atmosphere, calibration); 0 disables. Never applied to SAR."""
    speckle_looks: float = field(default=8.0, metadata={"min": 0.0})
    """SAR only: multiplicative gamma speckle of this many looks in linear power (mean 1, variance
    1/looks), i.e. additive log-gamma noise on dB chips; larger is milder (8 looks: ~1.6 dB); 0 disables."""


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = field(default=3, metadata={"min": 1})
    """Passes over the unlabelled + train sites; the papers train 100-1000 ImageNet epochs."""
    batch_size: int = field(default=32, metadata={"min": 2})
    """Sites per worker per step (global batch = batch_size x num_workers); SimCLR 4096 global."""
    lr: float = field(default=1e-3, metadata={"min": 0.0})
    """AdamW peak learning rate (after warmup); small batches train stably at 1e-3."""
    lr_floor: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    """Cosine end value as a fraction of lr."""
    warmup_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    """Share of all steps with linear warmup; SimCLR 10 of 100 epochs."""
    weight_decay: float = field(default=0.05, metadata={"min": 0.0})
    """AdamW decoupled weight decay on weights (not biases / norms)."""
    grad_clip: float = field(default=1.0, metadata={"min": 0.0})
    """Max global gradient norm; 0 disables clipping."""
    num_workers: int = field(default=2, metadata={"min": 1})
    """Ray Train workers (DDP ranks): one GPU each with use_gpu, else CPU processes (gloo)."""
    use_gpu: bool = False
    """One GPU per worker, NCCL and bf16 autocast; false: CPU workers over gloo, float32."""
    cpus_per_worker: float = field(default=0.25, metadata={"min": 0.05})
    """CPUs a CPU worker reserves (a scheduling claim, not a limit); small so that on 2 cores the chip
    loaders and Ray Data's tasks still fit (workers holding every CPU stall the reads forever)."""
    checkpoint_every: int = field(default=50, metadata={"min": 1})
    """Steps between checkpoints (one is also written at the end of every epoch)."""
    max_failures: int = field(default=2, metadata={"min": 0})
    """Worker failures Ray Train recovers from (restart from the last checkpoint) before giving up."""
    poll_interval_s: float = field(default=0.25, metadata={"min": 0.05})
    """How often Ray Train's controller polls the workers (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``, which the
    driver passes to the controller and workers): how soon a finished or failed worker group is seen. Ray's
    default of 2 s left ~2 s of idle cores at the end of every run (the demo's pre-training); one poll is
    one actor call per worker."""
    probe_k: int = field(default=10, metadata={"min": 1})
    """Neighbours of the k-NN probe (Wu et al. 2018 use 200 on ImageNet; small val sets need fewer)."""
    amp: bool | None = None
    """bf16 autocast of the forward passes (the loss is always computed in float32: the Barlow Twins
    cross-correlation and the InfoNCE logits lose precision in bf16); null: on where the device computes
    bf16 natively (CUDA GPUs, CPUs with AMX: :func:`jointssl.train.loop.native_bf16`), off elsewhere."""
    channels_last: bool = False
    """Weights and chip batches in channels-last memory format (faster convolutions on tensor-core GPUs)."""
    pin_memory: bool = True
    """Page-locked host batches, copied to the GPU asynchronously; no effect on CPU workers."""
    torch_threads: int | None = field(default=None, metadata={"min": 1})
    """Intra-op threads of each worker's PyTorch; null keeps Ray's default (OMP_NUM_THREADS from the
    worker's CPU claim, i.e. 1 for a fractional claim)."""
    record_sites: bool = False
    """Debug: each worker writes the site ids of every step it trains to
    <checkpoints>/<run>/trained_sites/epoch_NNN/step_NNNNNN_rank_N.json (what resume tests compare)."""
    sync_batchnorm: bool = False
    """Convert BatchNorm layers to SyncBatchNorm (statistics over the global batch) before DDP wrapping:
    helps when the per-GPU batch is small. CUDA only (PyTorch's SyncBatchNorm does not run on CPU)."""
    progress_every: int = field(default=10, metadata={"min": 1})
    """Console progress line (step, loss, samples/s, ETA) every this many steps, printed by the driver."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    register_model: str = "jointssl-encoder"
    """MLflow registered-model name of the encoder (alias 'current' points at the newest version;
    MLflow reserves the alias name 'latest')."""

    def __post_init__(self) -> None:
        # imported here: jointssl.config's package imports its schema, which embeds this class
        from jointssl.config.load import ConfigError

        if self.sync_batchnorm and not self.use_gpu:
            raise ConfigError("sync_batchnorm", "needs use_gpu: true (PyTorch's SyncBatchNorm synchronises "
                                                "CUDA tensors only; CPU workers over gloo cannot use it)")
