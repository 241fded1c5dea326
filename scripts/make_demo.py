"""Builds demo/urban-demo.ogg from real UrbanSound8K clips (how the bundled demo was made).

    python scripts/make_demo.py ../shared/data/UrbanSound8K

Two consecutive foreground clips per class from fold 10 (up to 8 s), 1 s of silence between them, Ogg Vorbis 22050 Hz mono.
Writes the reference annotation (demo/urban-demo.tsv) and the credits (demo/CREDITS.md).
"""

import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime_sed.audio import load_audio
from realtime_sed.constants import SAMPLE_RATE

ORDER = ["dog_bark", "siren", "jackhammer", "children_playing", "car_horn", "street_music",
         "drilling", "gun_shot", "engine_idling", "air_conditioner"]
GAP_S = 1.0
SEGMENT_S = 8


def main(root: str) -> None:
    root = Path(root)
    rows = list(csv.DictReader(open(root / "metadata" / "UrbanSound8K.csv")))
    out = Path(__file__).resolve().parent.parent / "demo"
    audio, ref, credits = [np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)], [], []
    t = GAP_S
    for name in ORDER:
        # Two consecutive slices of one foreground recording, so several windows see only this class.
        cands = [r for r in rows if r["class"] == name and r["fold"] == "10" and r["salience"] == "1"]
        by_rec: dict[str, list] = {}
        for r in cands:
            by_rec.setdefault(r["fsID"], []).append(r)
        recs = sorted(by_rec.values(), key=lambda rs: (-sum(float(r["end"]) - float(r["start"])
                                                              for r in rs[:2]), rs[0]["slice_file_name"]))
        picked = sorted(recs[0], key=lambda r: float(r["start"]))[:2]
        clip = np.concatenate([load_audio(root / "audio" / "fold10" / r["slice_file_name"])
                               for r in picked])[: SEGMENT_S * SAMPLE_RATE]
        audio += [clip, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        ref.append((t, t + len(clip) / SAMPLE_RATE, name))
        credits += [(r["slice_file_name"], r["fsID"], name) for r in picked]
        t += len(clip) / SAMPLE_RATE + GAP_S
    sf.write(out / "urban-demo.ogg", np.concatenate(audio), SAMPLE_RATE, format="OGG", subtype="VORBIS")
    with open(out / "urban-demo.tsv", "w") as f:
        f.write("filename\tonset\toffset\tevent_label\n")
        for on, off, name in ref:
            f.write(f"urban-demo.ogg\t{on:.3f}\t{off:.3f}\t{name}\n")
    lines = ["# Demo recording credits", "",
             "`urban-demo.ogg` strings together clips of **UrbanSound8K** (fold 10), two consecutive slices of one recording per class, "
             "with 1 s of silence between them. `urban-demo.tsv` is its reference annotation.", "",
             "UrbanSound8K is by J. Salamon, C. Jacoby and J. P. Bello, licensed under Creative Commons "
             "Attribution-NonCommercial 3.0 (CC BY-NC 3.0): non-commercial use only. Each clip comes from a "
             "Freesound.org recording, credited by its Freesound ID:", "",
             "| clip | Freesound ID | class |", "|---|---|---|"]
    lines += [f"| {c} | [{fs}](https://freesound.org/s/{fs}/) | {n} |" for c, fs, n in credits]
    lines += ["", "> J. Salamon, C. Jacoby and J. P. Bello, \"A Dataset and Taxonomy for Urban Sound Research\", "
              "22nd ACM International Conference on Multimedia, Orlando, USA, Nov. 2014.", ""]
    (out / "CREDITS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/UrbanSound8K")
