"""`realtime-sed bench`: the speed and memory figures, measured, never asserted.

- latency per 4 s window on 1 thread, steady state at hop 0.5 s: the streaming fast path (reused
  log-mel frames + CNN) and, for comparison, the one-file ONNX graph on raw audio;
- `classify` throughput in x real time at hop 0.5 s on 2 cores (log-mel and CNN pipelined);
- peak RSS of a `listen --no-tui --file` subprocess;
- with --hours H: RSS over an H-hour stream replayed as fast as possible (growth should be ~0).
Machines are noisy: every figure is a median of repeats taken in this one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime_sed.audio import load_audio
from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import DEMO_FILE, SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.errors import OutputError
from realtime_sed.features import LogMelFrames
from realtime_sed.settings import Settings, StreamSettings
from realtime_sed.sinks import check_output, make_sink
from realtime_sed.windows import DEFAULT_HOP_SECONDS, hop_to_samples
from realtime_sed.wiring import classify_file, open_file

TARGETS = {"latency_ms": 3.0, "throughput_x": 300.0, "rss_mb": 150.0, "rss_growth_mb": 5.0}
RSS_EVERY_S = 0.2  # how often the listen subprocess's RSS is sampled
# Growth is measured only over a run this long (in RSS samples): a shorter one is mostly start-up
# (loading the model, the first windows), whose memory is not growth.
MIN_GROWTH_SAMPLES = 50
MIN_GROWTH_HOURS = 0.1  # a shorter --hours soak is over in seconds: no growth figure from it


def window_latency(model: str, audio: np.ndarray, repeats: int = 200) -> dict:
    clf = OnnxClassifier(model, threads=1)
    hop = hop_to_samples(DEFAULT_HOP_SECONDS)
    looped = np.resize(audio, WINDOW_SAMPLES + hop * (repeats + 6))
    frames = LogMelFrames()
    fast, full = [], []
    for i in range(repeats + 5):
        window = looped[i * hop : i * hop + WINDOW_SAMPLES]
        t0 = time.perf_counter()
        clf.predict_logmel(frames(window, i * hop))
        if i >= 5:  # warm-up windows fill the frame cache
            fast.append(time.perf_counter() - t0)
    for i in range(min(repeats, 40)):
        window = looped[i * hop : i * hop + WINDOW_SAMPLES]
        t0 = time.perf_counter()
        clf.predict_audio(window)
        full.append(time.perf_counter() - t0)
    ms = lambda xs, q: float(np.percentile(xs, q) * 1e3)  # noqa: E731
    return {"fast_median_ms": ms(fast, 50), "fast_p95_ms": ms(fast, 95),
            "full_graph_median_ms": ms(full, 50), "full_graph_p95_ms": ms(full, 95)}


def classify_throughput(model: str, path: Path, repeats: int = 3) -> dict:
    # Two cores: classify pipelines the log-mels (main thread) against the CNN (a worker thread),
    # so one ONNX Runtime thread per session uses both; more would only oversubscribe them.
    settings = Settings(stream=StreamSettings(model=model, hop=DEFAULT_HOP_SECONDS, threads=1))
    clf = OnnxClassifier(model, threads=1)
    duration = sf.info(str(path)).duration
    times = []
    for _ in range(repeats):
        sink = make_sink("tsv", os.devnull)
        t0 = time.perf_counter()
        classify_file(open_file(path, settings), clf, sink, settings)
        times.append(time.perf_counter() - t0)
        sink.close()
    return {"audio_s": duration, "median_s": float(np.median(times)),
            "throughput_x": float(duration / np.median(times))}


def _rss_mb(pid: int, key: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def listen_memory(model: str, path: Path) -> dict:
    """Runs a real `listen --no-tui --file` and samples its RSS while it runs."""
    cmd = [sys.executable, "-m", "realtime_sed", "listen", "--no-tui", "--file", str(path), "--model", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    peak = [0.0]

    def sample() -> None:
        t0 = time.monotonic()
        while proc.poll() is None:
            rss, hwm = _rss_mb(proc.pid), _rss_mb(proc.pid, "VmHWM")
            if rss is not None:
                samples.append((time.monotonic() - t0, rss))
                peak[0] = max(peak[0], hwm or 0.0)
            time.sleep(RSS_EVERY_S)

    thread = threading.Thread(target=sample)
    thread.start()
    _, err = proc.communicate()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"listen failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    rss = [r for _, r in samples]
    # Growth: the last RSS against the RSS once the stream is under way (after 20% of the run).
    settled = rss[len(rss) // 5] if len(rss) >= 5 else (rss[0] if rss else 0.0)
    growth = (rss[-1] - settled) if len(rss) >= MIN_GROWTH_SAMPLES else None
    return {"peak_rss_mb": peak[0], "rss_start_mb": settled, "rss_end_mb": rss[-1] if rss else 0.0,
            "rss_growth_mb": growth, "samples": len(rss),
            "wall_s": samples[-1][0] if samples else 0.0}


def long_file(audio: np.ndarray, hours: float, folder: Path) -> Path:
    """An H-hour 16-bit WAV made by looping real audio, written in pieces (bounded memory)."""
    path = folder / f"long-{hours:g}h.wav"
    total = int(hours * 3600 * SAMPLE_RATE)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16") as f:
        written = 0
        while written < total:
            piece = audio[: total - written]
            f.write(piece)
            written += len(piece)
    return path


def run_bench(settings: Settings) -> int:
    """`realtime-sed bench`: the model of `settings.stream`, the audio of `settings.source.file`
    (default: the bundled demo)."""
    model, bench = settings.stream.model, settings.bench
    path = Path(settings.source.file) if settings.source.file else DEMO_FILE
    check_output(bench.json, [path], "--json")  # before minutes of benchmark, not after
    audio = load_audio(path)
    results: dict = {"model": model, "file": str(path), "targets": TARGETS, "cpus": os.cpu_count()}
    print(f"benchmark: model {model}, audio {path.name} ({len(audio) / SAMPLE_RATE:.1f} s)")
    lat = results["latency"] = window_latency(model, audio)
    print(f"latency per 4 s window, 1 thread: median {lat['fast_median_ms']:.2f} ms, p95 "
          f"{lat['fast_p95_ms']:.2f} ms (target <= {TARGETS['latency_ms']:g} ms); one-file ONNX graph on "
          f"raw audio: median {lat['full_graph_median_ms']:.2f} ms "
          f"({lat['full_graph_median_ms'] / lat['fast_median_ms']:.1f}x slower)")
    thr = results["classify"] = classify_throughput(model, path)
    print(f"classify throughput, hop 0.5 s, 2 cores (pipelined): {thr['throughput_x']:.0f}x real time "
          f"(target >= {TARGETS['throughput_x']:g}x)")
    mem = results["listen"] = listen_memory(model, path)
    print(f"listen --no-tui --file: peak RSS {mem['peak_rss_mb']:.1f} MB (target <= {TARGETS['rss_mb']:g} MB)")
    if bench.hours:
        with tempfile.TemporaryDirectory() as tmp:
            long = long_file(audio, bench.hours, Path(tmp))
            soak = results["soak"] = listen_memory(model, long)
        if bench.hours < MIN_GROWTH_HOURS:
            soak["rss_growth_mb"] = None
        if soak["rss_growth_mb"] is None:
            growth = (f"too short to measure growth (give --hours {MIN_GROWTH_HOURS:g} or more; this run "
                      f"took {soak['samples']} RSS samples)")
        else:
            growth = f"growth {soak['rss_growth_mb']:+.1f} MB (target < {TARGETS['rss_growth_mb']:g} MB)"
        print(f"{bench.hours:g} h stream as fast as possible ({soak['wall_s']:.0f} s): RSS {soak['rss_start_mb']:.1f}"
              f" -> {soak['rss_end_mb']:.1f} MB, {growth}, peak {soak['peak_rss_mb']:.1f} MB")
    if bench.json:
        try:
            Path(bench.json).write_text(json.dumps(results, indent=1))
        except OSError as exc:
            raise OutputError(f"cannot write {bench.json}: {exc.strerror}") from None
    return 0
