"""Writes the results tables from the model cards in models/ (the source of truth: every number
there was written by `realtime-sed train`), into README.md and docs/results.md.

    python scripts/results.py            # print the table
    python scripts/results.py --write    # update README.md, docs/results.md and docs/figures/
"""

import json
import shutil
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
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def cards() -> dict:
    return {k: json.loads((ROOT / "models" / f"{k}.json").read_text())
            for k in NAMES if (ROOT / "models" / f"{k}.json").exists()}


def table() -> str:
    rows = ["| model | trainable params | ACC | P macro | R macro | F1 macro | paper ACC / P / R / F1 | best epoch / run | s per epoch |",
            "|---|---|---|---|---|---|---|---|---|"]
    found = cards()
    for key, name in NAMES.items():
        paper = " / ".join(f"{v:.3f}" for v in PAPER[key])
        if key not in found:
            rows.append(f"| {name} | | not trained yet | | | | {paper} | | |")
            continue
        card = found[key]
        m, t = card["metrics"]["test"], card["training"]
        rows.append(f"| {name} | {card['architecture']['trainable_parameters']:,} | {m['acc']:.3f} | "
                    f"{m['precision_macro']:.3f} | {m['recall_macro']:.3f} | {m['f1_macro']:.3f} | {paper} | "
                    f"{t['best_epoch']} / {t['epochs_run']} | {t['seconds_per_epoch_median']:.0f} |")
    n = {c["metrics"]["test"]["n"] for c in found.values()}
    note = (f"Faithful recipe, the paper's random 80/10/10 split (seed 0) of the 2,625 clips we have "
            f"(30% of UrbanSound8K): **{', '.join(map(str, sorted(n))) or '~263'} test clips**, against the "
            "paper's 874 on the full set. The random split lets slices of one recording fall on both sides, "
            "which inflates these scores (see the dataset authors' warning).")
    return note + "\n\n" + "\n".join(rows)


def foldwise() -> list[str]:
    """The honest protocol's runs so far (cards kept in docs/foldwise/)."""
    lines = ["## Fold-wise protocol (the honest numbers)", "",
             "Test on one whole fold, train on the others plus the scattered clips of folds 4-9, "
             "validate on 10% of the training recordings (whole fsIDs), never the test fold.", "",
             "| model | recipe | test fold | test clips | ACC | F1 macro | best epoch / run |", "|---|---|---|---|---|---|---|"]
    figures = []
    for path in sorted((ROOT / "docs" / "foldwise").glob("*.json")):
        card = json.loads(path.read_text())
        m, t = card["metrics"]["test"], card["training"]
        fold = t["split"].split("test fold ")[1].split(",")[0]
        lines.append(f"| {card['architecture']['name']} | {t['recipe']} | {fold} | {m['n']} | {m['acc']:.3f} | "
                     f"{m['f1_macro']:.3f} | {t['best_epoch']} / {t['epochs_run']} |")
        figures.append(f"![{path.stem} confusion](figures/{path.stem}-confusion.png) "
                       f"![{path.stem} curves](figures/{path.stem}-curves.png)")
    return lines + [""] + figures + [""]


def write() -> None:
    figures = ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    body = ["# Results", "", table(), ""]
    for key, card in cards().items():
        run = ROOT / "runs" / f"{key}-random"
        for fig in ("confusion", "curves"):
            if (run / f"{fig}.png").exists():
                shutil.copy(run / f"{fig}.png", figures / f"{key}-random-{fig}.png")
        m = card["metrics"]["test"]
        body += [f"## {NAMES[key]}", "",
                 f"Command: `{card['command']}`", "",
                 f"Test ACC {m['acc']:.3f}, macro P/R/F1 {m['precision_macro']:.3f} / {m['recall_macro']:.3f} / "
                 f"{m['f1_macro']:.3f}, micro F1 {m['f1_micro']:.3f} on {m['n']} clips. Training: "
                 f"{card['training']['epochs_run']} epochs (best {card['training']['best_epoch']}), "
                 f"{card['training']['total_training_seconds'] / 60:.0f} min on {card['training']['device']}.", "",
                 f"![{NAMES[key]} confusion matrix](figures/{key}-random-confusion.png)",
                 f"![{NAMES[key]} training curves](figures/{key}-random-curves.png)", ""]
    body += foldwise()
    (ROOT / "docs" / "results.md").write_text("\n".join(body))
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    (ROOT / "README.md").write_text(readme[:start] + "\n" + table() + "\n" + readme[end:])


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        sys.stdout.write(table() + "\n")
