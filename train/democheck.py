"""How models behave on the bundled demo (demo/urban-demo.ogg, reference demo/urban-demo.tsv), through
the same streaming path as `listen` (0.5 s hop, the card's thresholds): per reference segment, the
share of windows centred in it whose top class is right; then the events logged, how many of them
overlap a reference segment of their class, and how many segments got such an event.

The demo is cut from clips every shipped model trained on, so this checks behaviour before shipping
(`realtime-sed experiments final`), not accuracy on unseen audio: the fold-wise tables in
docs/results.md do that.

    realtime-sed experiments demo convdb runs/convdb-all-shift-gain-mix-spec-last/convdb.onnx
"""

from __future__ import annotations


import numpy as np

from realtime_sed.audio import load_audio
from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CLASSES, DEMO_FILE
from realtime_sed.events import DetectorConfig
from realtime_sed.stream import DetectionStream, WindowResult
from realtime_sed.windows import DEFAULT_HOP_SECONDS

DEMO, REFERENCE = DEMO_FILE, DEMO_FILE.with_suffix(".tsv")
BLOCK = 2048
HOP = DEFAULT_HOP_SECONDS  # as `listen`


def reference() -> list[tuple[float, float, str]]:
    rows = [line.split("\t") for line in REFERENCE.read_text().splitlines()[1:]]
    return [(float(on), float(off), label) for _, on, off, label in rows]


def check(model: str) -> dict:
    clf = OnnxClassifier(model)
    stream = DetectionStream(clf, HOP, DetectorConfig.from_card(clf.thresholds))
    windows: list[WindowResult] = []
    audio = load_audio(DEMO)
    stream.run((audio[i : i + BLOCK] for i in range(0, len(audio), BLOCK)), on_window=windows.append)
    segments = reference()
    per_segment, right, total = {}, 0, 0
    for on, off, label in segments:
        top = [CLASSES[int(np.argmax(w.probs))] for w in windows if on <= (w.start_s + w.end_s) / 2 <= off]
        hits = sum(t == label for t in top)
        per_segment[label] = hits / len(top) if top else float("nan")
        right, total = right + hits, total + len(top)
    events = stream.events

    def matches(ev, seg) -> bool:
        return ev.label == seg[2] and ev.onset < seg[1] and ev.offset > seg[0]

    return {
        "window_top1": right / total,
        "per_segment": per_segment,
        "events": len(events),
        "events_matching": sum(any(matches(ev, s) for s in segments) for ev in events),
        "segments_found": sum(any(matches(ev, s) for ev in events) for s in segments),
        "segments": len(segments),
    }


def run_demo(models: tuple[str, ...]) -> int:
    for model in models or ("convdb",):
        r = check(model)
        print(f"{model}: window top-1 {r['window_top1']:.3f}; events {r['events']}, "
              f"{r['events_matching']} on a segment of their class; segments found "
              f"{r['segments_found']}/{r['segments']}")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_segment"].items()))
    return 0
