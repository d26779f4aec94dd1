"""The evaluation's outputs: a labelled results table (Markdown + JSON) and plots (PNG).

- ``results.json``: every row (encoder, protocol, modalities, label fraction) with per-class and
  Overall metrics, confidence intervals and the chosen hyper-parameters; machine-readable.
- ``results.md``: a summary table of every row (macro AUPRC with its 95 % CI, AUROC, F1), then the
  METER-ML Table 3 layout (one column per class + Overall) for the best classifier.
- ``pr_curves.png``: precision-recall curves per class of the best classifier on the test split.
- ``cooccurrence.png``: true class (rows, including negatives) against predicted class above the
  validation threshold — a confusion matrix generalised to multi-label sites.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jointssl.evaluate.metrics import METRICS, Scores
from jointssl.labels import CLASS_TITLES, FACILITY_CLASSES, NEGATIVE


@dataclass
class Row:
    """One evaluated classifier."""

    encoder: str
    """'multimodal SSL', 'random init', 'SSL (s2 only)', 'supervised'."""
    protocol: str
    """'linear probe', 'fine-tune' or 'from scratch'."""
    modalities: list[str]
    label_fraction: float
    train_sites: int
    val_macro_auprc: float
    scores: Scores
    detail: str = ""
    test_probs: np.ndarray | None = field(default=None, repr=False)
    """[N K] test probabilities (for plots; not serialised)."""
    key: str = ""
    """Stable short id, e.g. 'probe/ssl/fused/100' (MLflow metric prefix)."""

    @property
    def title(self) -> str:
        mods = "+".join(self.modalities)
        return f"{self.encoder}, {self.protocol}, {mods}, {self.label_fraction:.0%} labels"

    def to_dict(self) -> dict:
        return {"key": self.key, "encoder": self.encoder, "protocol": self.protocol, "modalities": self.modalities,
                "label_fraction": self.label_fraction, "train_sites": self.train_sites,
                "val_macro_auprc": self.val_macro_auprc, "detail": self.detail, **self.scores.to_dict()}


def results_json(rows: Sequence[Row], context: dict) -> str:
    return json.dumps({**context, "rows": [r.to_dict() for r in rows]}, indent=2, default=float)


def _ci(ci: tuple[float, float] | None) -> str:
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def results_markdown(rows: Sequence[Row], best: Row, context: dict) -> str:
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
    for note in context.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


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
