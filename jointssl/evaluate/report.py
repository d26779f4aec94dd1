"""The evaluation's outputs: a labelled results table (Markdown + JSON) and plots (PNG).

- ``results.json``: every row (encoder, protocol, modalities, label fraction) with per-class and
  Overall metrics, confidence intervals and the chosen hyper-parameters; machine-readable.
- ``results.md``: a summary table of every row (macro AUPRC with its 95 % CI, AUROC, F1), then the
  METER-ML Table 3 layout (one column per class + Overall) for the best classifier.
- ``pr_curves.png``: precision-recall curves per class of the best classifier on the test split.
- ``reliability.png``: reliability diagram per class on the test split, before and after calibration.
- ``test_probs.npz``: every row's test probabilities per site (``keys`` [R], ``site_ids`` [N], ``labels`` [N K],
  ``probs`` [R N K]): what a paired comparison of two evaluations on the same test sites needs (``jointssl study``).
- ``cooccurrence.png``: true class (rows, including negatives) against predicted class above the
  validation threshold — a confusion matrix generalised to multi-label sites.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from jointssl.evaluate.metrics import METRICS, Scores
from jointssl.labels import CLASS_TITLES, FACILITY_CLASSES, NEGATIVE

Source = Literal["ssl", "single", "random", "supervised"]
Protocol = Literal["probe", "finetune", "scratch"]
ENCODER_TITLES = {"ssl": "multimodal SSL", "random": "random init", "supervised": "supervised"}
PROTOCOL_TITLES = {"probe": "linear probe", "finetune": "fine-tune", "scratch": "from scratch"}


@dataclass(frozen=True)
class Arm:
    """What a row evaluates: which encoder, which protocol, which sensors, how many labels."""

    source: Source
    """'ssl' (the encoder under test), 'single' (an SSL encoder of one modality), 'random', 'supervised'."""
    protocol: Protocol
    modalities: tuple[str, ...]
    label_fraction: float
    fused: bool = False
    """Every sensor of the encoder, fused (else a per-modality row)."""

    @property
    def key(self) -> str:
        """Stable short id, e.g. 'probe/ssl/fused/100' (MLflow metric prefix)."""
        source = f"ssl-{self.modalities[0]}-only" if self.source == "single" else self.source
        mods = "fused" if self.fused else "+".join(self.modalities)
        return f"{self.protocol}/{source}/{mods}/{round(self.label_fraction * 100)}"

    @property
    def encoder(self) -> str:
        return f"SSL ({self.modalities[0]} only)" if self.source == "single" else ENCODER_TITLES[self.source]


@dataclass
class Row:
    """One evaluated classifier."""

    arm: Arm
    train_sites: int
    val_macro_auprc: float
    scores: Scores
    detail: str = ""
    test_probs: np.ndarray | None = field(default=None, repr=False)
    """[N K] test probabilities (for plots; not serialised)."""

    @property
    def key(self) -> str:
        return self.arm.key

    @property
    def encoder(self) -> str:
        """'multimodal SSL', 'random init', 'SSL (s2 only)', 'supervised'."""
        return self.arm.encoder

    @property
    def protocol(self) -> str:
        """'linear probe', 'fine-tune' or 'from scratch'."""
        return PROTOCOL_TITLES[self.arm.protocol]

    @property
    def modalities(self) -> list[str]:
        return list(self.arm.modalities)

    @property
    def label_fraction(self) -> float:
        return self.arm.label_fraction

    @property
    def title(self) -> str:
        mods = "+".join(self.modalities)
        return f"{self.encoder}, {self.protocol}, {mods}, {self.label_fraction:.0%} labels"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "encoder": self.encoder, "protocol": self.protocol, "modalities": self.modalities,
                "label_fraction": self.label_fraction, "train_sites": self.train_sites,
                "val_macro_auprc": self.val_macro_auprc, "detail": self.detail, **self.scores.to_dict()}


TEST_PROBS_FILE = "test_probs.npz"


def test_probs_npz(rows: Sequence[Row], site_ids: Sequence[str], y_test: np.ndarray, path: str) -> None:
    """Every row's [N K] test probabilities, by row key, with the test sites' ids and labels (see the module doc)."""
    kept = [r for r in rows if r.test_probs is not None]
    probs = (np.stack([np.asarray(r.test_probs, dtype=np.float32) for r in kept]) if kept
             else np.zeros((0, *y_test.shape)))  # [R N K]
    np.savez_compressed(path, keys=np.array([r.key for r in kept]), site_ids=np.array(list(site_ids)),
                        labels=y_test.astype(np.int8), probs=probs)


def read_test_probs(data: bytes) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """(row key -> [N K] probabilities, site ids, [N K] labels) from the bytes of a ``test_probs.npz``."""
    import io

    with np.load(io.BytesIO(data)) as f:
        keys, probs = [str(k) for k in f["keys"]], f["probs"]
        return {k: probs[i] for i, k in enumerate(keys)}, [str(s) for s in f["site_ids"]], f["labels"]


def results_json(rows: Sequence[Row], context: dict[str, Any]) -> str:
    return json.dumps({**context, "rows": [r.to_dict() for r in rows]}, indent=2, default=float)


def _ci(ci: tuple[float, float] | None) -> str:
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def results_markdown(rows: Sequence[Row], best: Row, context: dict[str, Any]) -> str:
    lines = [f"# Methane source classification — {context.get('run', '')}", ""]
    lines += [f"Test split: {context.get('test_sites')} sites; validation: {context.get('val_sites')}; "
              f"training: {context.get('train_sites')} (before label fractions). Metrics on the test split; "
              "thresholds chosen on validation; 95 % bootstrap intervals in brackets.", ""]
    lines += ["| encoder | protocol | modalities | labels | macro AUPRC [95 % CI] | AUROC | F1 | val AUPRC |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r.scores.overall
        lines.append(f"| {r.encoder} | {r.protocol} | {'+'.join(r.modalities)} | {r.label_fraction:.0%} "
                     f"({r.train_sites}) | {o['auprc']:.3f}{_ci(r.scores.overall_auprc_ci)} | {o['auroc']:.3f} "
                     f"| {o['f1']:.3f} | {r.val_macro_auprc:.3f} |")
    lines += ["", f"## Best classifier (by validation macro AUPRC): {best.title}", "",
              "As METER-ML Table 3: per class, test split.", ""]
    classes = [c for c in FACILITY_CLASSES if c in best.scores.per_class]
    lines.append("| metric | " + " | ".join(CLASS_TITLES[c] for c in classes) + " | Overall |")
    lines.append("|---|" + "---|" * (len(classes) + 1))
    for metric in METRICS:
        cells = [f"{getattr(best.scores.per_class[c], metric):.3f}" for c in classes]
        lines.append(f"| {metric.upper() if metric.startswith('au') else metric.title()} | " + " | ".join(cells)
                     + f" | {best.scores.overall[metric]:.3f} |")
    lines.append("| positives | " + " | ".join(str(best.scores.per_class[c].positives) for c in classes) + " | |")
    lines += deployment_markdown(context.get("deployment"))
    for note in context.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def deployment_markdown(deployment: dict[str, Any] | None) -> list[str]:
    """The registered classifier's operating points (test precision / recall with 95 % bootstrap intervals)
    and its calibration error per class, as Markdown lines (none without a deployment)."""
    if not deployment:
        return []

    def value(v: float | None, ci: list[float] | tuple[float, float] | None) -> str:
        if v is None or v != v:
            return "n/a"
        return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    lines = ["", "## Operating points of the registered classifier", "",
             "Thresholds on the calibrated probability, chosen on validation; precision and recall expected on "
             "the test split, 95 % bootstrap intervals in brackets ('unsupported': validation has too few "
             "positives to reach the target precision there; the class is never detected at that point).", "",
             "| operating point | class | threshold | test precision | test recall | test positives |",
             "|---|---|---|---|---|---|"]
    for name, per_class in deployment["test_operating_points"].items():
        for c, p in per_class.items():
            if p["threshold"] is None:
                lines.append(f"| {name} | {CLASS_TITLES.get(c, c)} | unsupported | | | {p['positives']} |")
                continue
            lines.append(f"| {name} | {CLASS_TITLES.get(c, c)} | {p['threshold']:.3f} | "
                         f"{value(p['precision'], p['precision_ci'])} | {value(p['recall'], p['recall_ci'])} | "
                         f"{p['positives']} |")
    ece = deployment["ece_test"]
    lines += ["", f"Calibration: per-class {deployment['calibration']['method']} scaling fitted on validation. "
              "Expected calibration error on test (10 bins), before -> after: "
              + ", ".join(f"{CLASS_TITLES.get(c, c)} {v['before']:.3f} -> {v['after']:.3f}" for c, v in ece.items())
              + "."]
    ood = deployment.get("ood")
    if ood:
        lines += ["", f"Out-of-distribution guard: Mahalanobis distance to the training sites' chip statistics and "
                      f"embeddings per sensor ({', '.join(ood['sensors'])}); threshold chosen on "
                      f"{ood['val_sites']} validation sites for an in-domain false-alarm rate of {ood['level']:.3f}."]
    return lines


def reliability_png(y_test: np.ndarray, before: np.ndarray, after: np.ndarray, ece: dict[str, dict[str, float]],
                    classes: Sequence[str], path: str) -> None:
    """Reliability diagram per class on the test split: observed positive rate against mean predicted
    probability in 10 equal-width bins, before and after calibration (ECE in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jointssl.classify.calibration import reliability_curve

    cols = 3
    rows = (len(classes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for k, c in enumerate(classes):
        ax = axes[k // cols][k % cols]
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        for probs, label, colour in ((before, "before", "#d62728"), (after, "after", "#1f77b4")):
            conf, rate, _ = reliability_curve(y_test[:, k], probs[:, k])
            ax.plot(conf, rate, marker="o", ms=3, color=colour, label=f"{label} (ECE {ece[c][label]:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=CLASS_TITLES.get(c, c), xlabel="mean probability",
               ylabel="positive rate")
        ax.legend(fontsize=7, loc="upper left")
    for k in range(len(classes), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle("Reliability on the test split, before and after calibration", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pr_curves_png(row: Row, y_test: np.ndarray, path: str) -> None:
    """Precision-recall curve per class of ``row`` on the test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    assert row.test_probs is not None
    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=110)
    for c, name in enumerate(FACILITY_CLASSES):
        if not y_test[:, c].any():
            continue
        precision, recall, _ = precision_recall_curve(y_test[:, c], row.test_probs[:, c])
        ap = row.scores.per_class[name].auprc
        ax.step(recall, precision, where="post", label=f"{CLASS_TITLES[name]} (AP {ap:.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"PR curves, test split\n{row.title}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cooccurrence_png(row: Row, y_test: np.ndarray, path: str) -> None:
    """Counts of (true class, predicted class) pairs over test sites, negatives included on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert row.test_probs is not None
    thresholds = np.array([row.scores.per_class[c].threshold if c in row.scores.per_class else 0.5
                           for c in FACILITY_CLASSES])
    pred = row.test_probs >= thresholds  # [N K]
    names = [*FACILITY_CLASSES, NEGATIVE]
    truth = np.concatenate([y_test > 0, ~(y_test > 0).any(axis=1, keepdims=True)], axis=1)  # [N K+1]
    guess = np.concatenate([pred, ~pred.any(axis=1, keepdims=True)], axis=1)  # [N K+1]
    counts = truth.T.astype(int) @ guess.astype(int)  # [K+1 K+1]
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
    ax.imshow(counts, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    titles = [CLASS_TITLES[n] for n in names]
    ax.set_xticks(range(len(names)), titles, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), titles)
    ax.set(xlabel="predicted (above validation threshold)", ylabel="true", title=f"Test sites\n{row.title}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
