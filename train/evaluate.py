"""Metrics and figures: ACC, macro/micro P/R/F1, a per-class report, the normalised confusion
matrix and the training curves, written as JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from realtime_sed.constants import CLASSES


def compute_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
    from sklearn.metrics import precision_recall_fscore_support

    y_pred = probs.argmax(axis=1)
    labels = list(range(len(CLASSES)))
    out: dict = {"n": int(len(y_true)), "acc": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    out["per_class"] = classification_report(
        y_true, y_pred, labels=labels, target_names=list(CLASSES), output_dict=True, zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    out["confusion_normalized"] = (cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)).round(4).tolist()
    return out


def format_report(metrics: dict) -> str:
    lines = [
        f"test clips {metrics['n']}   ACC {metrics['acc']:.3f}",
        f"macro  P {metrics['precision_macro']:.3f}  R {metrics['recall_macro']:.3f}  "
        f"F1 {metrics['f1_macro']:.3f}",
        f"micro  P {metrics['precision_micro']:.3f}  R {metrics['recall_micro']:.3f}  "
        f"F1 {metrics['f1_micro']:.3f}",
        f"{'class':<18} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}",
    ]
    for name in CLASSES:
        row = metrics["per_class"][name]
        lines.append(f"{name:<18} {row['precision']:6.3f} {row['recall']:6.3f} "
                     f"{row['f1-score']:6.3f} {int(row['support']):5d}")
    return "\n".join(lines)


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(metrics["confusion_normalized"])
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: list[dict], path: Path, title: str, best_epoch: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(epochs, [h["train_loss"] for h in history], label="train")
    a.plot(epochs, [h["val_loss"] for h in history], label="validation")
    a.set_ylabel("cross-entropy")
    b.plot(epochs, [h["train_acc"] for h in history], label="train")
    b.plot(epochs, [h["val_acc"] for h in history], label="validation")
    b.set_ylabel("accuracy")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(metrics: dict, out: Path, title: str, history: list[dict] | None = None,
                  best_epoch: int | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_confusion(metrics, out / "confusion.png", title)
    if history:
        plot_curves(history, out / "curves.png", title, best_epoch)
