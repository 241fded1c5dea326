"""Writes the results tables (README and docs/results.md) from the model cards in models/.

    python scripts/results.py            # prints the markdown table

The cards are the source of truth: every number here was written by `realtime-sed train`.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # Table 2 of the paper: ACC, macro P, R, F1 on 874 test clips of the full dataset
    "conv2d": (0.847, 0.874, 0.858, 0.857),
    "convdf": (0.882, 0.897, 0.889, 0.888),
    "convdt": (0.891, 0.906, 0.897, 0.896),
    "convdb": (0.914, 0.921, 0.917, 0.917),
}
NAMES = {"conv2d": "Conv2D", "convdf": "ConvDF", "convdt": "ConvDT", "convdb": "ConvDB"}


def table() -> str:
    rows = ["| model | params | test clips | ACC | P macro | R macro | F1 macro | paper ACC / P / R / F1 |",
            "|---|---|---|---|---|---|---|---|"]
    for key, name in NAMES.items():
        path = ROOT / "models" / f"{key}.json"
        paper = " / ".join(f"{v:.3f}" for v in PAPER[key])
        if not path.exists():
            rows.append(f"| {name} | | not trained yet | | | | | {paper} |")
            continue
        card = json.loads(path.read_text())
        m = card["metrics"]["test"]
        rows.append(f"| {name} | {card['architecture']['trainable_parameters']:,} | {m['n']} | "
                    f"{m['acc']:.3f} | {m['precision_macro']:.3f} | {m['recall_macro']:.3f} | "
                    f"{m['f1_macro']:.3f} | {paper} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
