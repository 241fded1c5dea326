"""`realtime-sed bench`: the speed and memory figures, measured, never asserted.

- latency per 4 s window on 1 thread, steady state at hop 0.5 s: the streaming fast path (reused
  log-mel frames + CNN) and, for comparison, the one-file ONNX graph on raw audio;
- `classify` throughput in x real time at hop 0.5 s on 2 cores (log-mel and CNN pipelined);
- peak RSS of a `listen --no-tui --file` subprocess;
- with --hours H: RSS over an H-hour stream replayed as fast as possible (growth should be ~0);
- with --dashboard S (Linux): the CPU of a real `listen --file --realtime` drawing the dashboard in
  a 100x30 pseudo-terminal, over S seconds after start-up, and its peak RSS;
- a profile: where one 0.5 s hop's time goes (decode, resample, frames, FFT, mel, CNN, detector,
  sinks, and the Python around them);
- with --compare PEER.tflite: the peer model (YAMNet from ../shared/teacher) on the same audio in the
  same run, 1 thread, 16 kHz, 0.975 s patches every 0.48 s, resampling included, in rounds
  alternating with our 1-thread classify: both medians in x real time and the median of the
  rounds' ratios (needs `pip install ai-edge-litert`).
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
from realtime_sed.classifier import OnnxClassifier, StreamingCNN
from realtime_sed.constants import DEMO_FILE, SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.errors import OutputError, SedError
from realtime_sed.features import LogMelFrames
from realtime_sed.settings import CLASSIFY_BLOCK_SIZE, Settings, StreamSettings
from realtime_sed.sinks import check_output, make_sink
from realtime_sed.stream import DetectionStream
from realtime_sed.windows import DEFAULT_HOP_SECONDS, hop_to_samples
from realtime_sed.wiring import classify_file, open_file

TARGETS = {"latency_ms": 3.0, "hop_ms": 0.5, "throughput_x": 300.0, "peer_ratio": 2.0, "rss_mb": 150.0,
           "rss_growth_mb": 5.0, "dashboard_cpu_pct": 5.0}
RSS_EVERY_S = 0.2  # how often the listen subprocess's RSS is sampled
# Growth is measured only over a run this long (in RSS samples): a shorter one is mostly start-up
# (loading the model, the first windows), whose memory is not growth.
MIN_GROWTH_SAMPLES = 50
MIN_GROWTH_HOURS = 0.1  # a shorter --hours soak is over in seconds: no growth figure from it
PEER_RATE = 16000
PEER_PATCH = 15600  # 0.975 s at 16 kHz
PEER_HOP = 7680  # 0.48 s
PEER_HINT = "bench --compare needs the TFLite runtime: pip install ai-edge-litert"
DASHBOARD_SIZE = (100, 30)  # columns, rows of the pseudo-terminal the dashboard draws in
DASHBOARD_SETTLE_S = 8.0  # start-up before the measured stretch: imports, the model, the first windows


def window_latency(model: str, audio: np.ndarray, repeats: int = 200) -> dict:
    clf = OnnxClassifier(model, threads=1)
    hop = hop_to_samples(DEFAULT_HOP_SECONDS)
    looped = np.resize(audio, WINDOW_SAMPLES + hop * (repeats + 6))
    frames, cnn, whole_frames = LogMelFrames(), StreamingCNN(clf), LogMelFrames()
    fast, whole_cnn, full = [], [], []
    for i in range(repeats + 5):  # the stream's path, and the same with the whole CNN, alternately
        window = looped[i * hop : i * hop + WINDOW_SAMPLES]
        t0 = time.perf_counter()
        cnn(frames(window, i * hop)[None], [i * hop])
        t1 = time.perf_counter()
        clf.predict_logmel(whole_frames(window, i * hop))
        if i >= 5:  # warm-up windows fill the frame cache
            fast.append(t1 - t0)
            whole_cnn.append(time.perf_counter() - t1)
    for i in range(min(repeats, 40)):
        window = looped[i * hop : i * hop + WINDOW_SAMPLES]
        t0 = time.perf_counter()
        clf.predict_audio(window)
        full.append(time.perf_counter() - t0)
    ms = lambda xs, q: float(np.percentile(xs, q) * 1e3)  # noqa: E731
    return {"fast_median_ms": ms(fast, 50), "fast_p95_ms": ms(fast, 95),
            "fast_whole_cnn_median_ms": ms(whole_cnn, 50),
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


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def profile_hop(model: str, path: Path, repeats: int = 100) -> dict:
    """Milliseconds per 0.5 s hop of each step, each timed on its own on the same audio (one hop
    computes 51 log-mel frames: 43 new and the 8 edge frames). `python` is what the whole
    single-threaded stream costs per hop (in CPU time) beyond log-mel, CNN, detector and sinks."""
    import soxr

    from realtime_sed.events import DetectorConfig, EventDetector
    from realtime_sed.features import _frames, hann_window, mel_product

    clf = OnnxClassifier(model, threads=1)
    hop = hop_to_samples(DEFAULT_HOP_SECONDS)
    t0 = time.perf_counter()
    audio = load_audio(path)
    out = {"decode": (time.perf_counter() - t0) * 1e3 * hop / max(len(audio), 1)}
    native = soxr.resample(audio[: 4 * SAMPLE_RATE], SAMPLE_RATE, 48000)[: 48000 * hop // SAMPLE_RATE]
    out["resample_from_48k"] = _median_ms(lambda: soxr.resample(native, 48000, SAMPLE_RATE), repeats)
    segments = np.ascontiguousarray(_frames(np.pad(audio[:WINDOW_SAMPLES], 1024), 51))
    windowed = segments * hann_window()
    spectrum = np.fft.rfft(windowed, axis=-1)
    out["frames"] = _median_ms(lambda: segments * hann_window(), repeats)
    out["fft"] = _median_ms(lambda: np.fft.rfft(windowed, axis=-1), repeats)
    out["mel"] = _median_ms(lambda: 10.0 * np.log10(np.maximum(
        mel_product((np.square(spectrum.real) + np.square(spectrum.imag)).astype(np.float32)),
        np.float32(1e-10))), repeats)
    frames = LogMelFrames()
    looped = np.resize(audio, WINDOW_SAMPLES + hop * (repeats + 1))
    frames(looped[:WINDOW_SAMPLES], 0)
    step = iter(range(1, repeats + 1))

    def next_window() -> np.ndarray:
        i = next(step)
        return frames(looped[i * hop : i * hop + WINDOW_SAMPLES], i * hop)

    out["logmel_with_reuse"] = _median_ms(next_window, repeats)
    x = frames(looped[:WINDOW_SAMPLES], 0)
    # Successive windows, as a stream feeds them (each new to the cache): the whole CNN, and the
    # stream's CNN that reuses conv rows from earlier windows.
    successive = LogMelFrames()
    windows = [(successive(looped[i * hop : i * hop + WINDOW_SAMPLES], i * hop)[None], [i * hop])
               for i in range(repeats + 1)]
    hops = iter(windows[1:])
    out["cnn"] = _median_ms(lambda: clf.predict_logmel(next(hops)[0]), repeats)
    cnn, hops = StreamingCNN(clf), iter(windows)
    cnn(*next(hops))
    out["cnn_reusing_conv_rows"] = _median_ms(lambda: cnn(*next(hops)), repeats)
    batch = np.stack([x] * 8)
    out["cnn_in_batch_of_8"] = _median_ms(lambda: clf.predict_logmel(batch), max(10, repeats // 8)) / 8
    probs = clf.predict_logmel(x)[0]
    detector = EventDetector(DetectorConfig(), hop / SAMPLE_RATE)
    ticks = iter(range(10**9))
    out["detector"] = _median_ms(lambda: detector.update(probs, next(ticks) * 0.5, -20.0, None), repeats)
    sink = make_sink("jsonl", os.devnull, windows=True)
    out["sink_window_jsonl"] = _median_ms(lambda: sink.window("f", 0.0, probs, None), repeats)
    sink.close()
    stream = DetectionStream(clf, DEFAULT_HOP_SECONDS, sinks=[make_sink("tsv", os.devnull)])
    # CPU time of this one thread (ONNX Runtime with 1 thread runs in it): the stream is timed as
    # a whole, so wall time would count every moment another process held the core.
    t0 = time.thread_time()
    stream.run(audio[i : i + CLASSIFY_BLOCK_SIZE] for i in range(0, len(audio), CLASSIFY_BLOCK_SIZE))
    out["stream_total"] = (time.thread_time() - t0) * 1e3 / max(stream.stats.windows, 1)
    out["python"] = max(0.0, out["stream_total"] - out["logmel_with_reuse"] - out["cnn_reusing_conv_rows"]
                        - out["detector"])
    return out


class PeerModel:
    """The peer model as its README runs it: 1 thread, the file resampled to 16 kHz, a 0.975 s
    patch every 0.48 s. Raises ImportError without the TFLite runtime."""

    def __init__(self, peer: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(peer), num_threads=1)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def run(self, path: Path) -> tuple[float, float, list[float]]:
        """One pass over the file: wall and CPU seconds over decode + resample + every patch, and
        each patch's milliseconds."""
        import soxr

        patch_ms = []
        t0, c0 = time.perf_counter(), time.process_time()
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        x = soxr.resample(audio.mean(axis=1), rate, PEER_RATE).astype(np.float32)
        x = np.pad(x, (0, max(0, PEER_PATCH - len(x))))
        for start in range(0, len(x) - PEER_PATCH + 1, PEER_HOP):
            t1 = time.perf_counter()
            self.interp.set_tensor(self.inp, x[None, start : start + PEER_PATCH])
            self.interp.invoke()
            self.interp.get_tensor(self.out)
            patch_ms.append((time.perf_counter() - t1) * 1e3)
        return time.perf_counter() - t0, time.process_time() - c0, patch_ms


class ClassifyOneThread:
    """classify on 1 core, the same work the peer does: decode, (resample), every hop, the events."""

    def __init__(self, model: str):
        self.settings = Settings(stream=StreamSettings(model=model, hop=DEFAULT_HOP_SECONDS, threads=1))
        self.clf = OnnxClassifier(model, threads=1)

    def run(self, path: Path) -> tuple[float, float]:
        """One pass over the file: wall and CPU seconds."""
        t0, c0 = time.perf_counter(), time.process_time()
        stream = DetectionStream(self.clf, DEFAULT_HOP_SECONDS, sinks=[make_sink("tsv", os.devnull)])
        stream.run(open_file(path, self.settings).blocks())
        return time.perf_counter() - t0, time.process_time() - c0


def compare_with_peer(model: str, peer: Path, path: Path, rounds: int = 5) -> dict:
    """Ours and the peer in alternate rounds (ours, peer, ours, peer, ...) after one unmeasured
    round each, so a load that comes and goes on the machine falls on both alike: each side's
    median x real time, and the median of the rounds' ratios (ours / peer), wall and CPU."""
    try:
        theirs = PeerModel(peer)
    except ImportError:
        return {"error": PEER_HINT}
    ours = ClassifyOneThread(model)
    duration = sf.info(str(path)).duration
    ours.run(path), theirs.run(path)  # warm-up: first-call allocations, the file in the page cache
    rows, patch_ms = [], []
    for _ in range(rounds):
        wall, cpu = ours.run(path)
        peer_wall, peer_cpu, patches = theirs.run(path)
        patch_ms += patches
        rows.append({"ours_x": duration / wall, "peer_x": duration / peer_wall,
                     "ours_cpu_x": duration / cpu, "peer_cpu_x": duration / peer_cpu})
    median = lambda key: float(np.median([r[key] for r in rows]))  # noqa: E731
    return {"rounds": rows, "audio_s": duration, "patches": len(patches),
            "ours_x": median("ours_x"), "peer_x": median("peer_x"),
            "ratio": float(np.median([r["ours_x"] / r["peer_x"] for r in rows])),
            "ours_cpu_x": median("ours_cpu_x"), "peer_cpu_x": median("peer_cpu_x"),
            "cpu_ratio": float(np.median([r["ours_cpu_x"] / r["peer_cpu_x"] for r in rows])),
            "patch_median_ms": float(np.median(patch_ms)), "patch_p95_ms": float(np.percentile(patch_ms, 95))}


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


def check_dashboard(seconds: float, duration_s: float, settle_s: float = DASHBOARD_SETTLE_S) -> None:
    """--dashboard, before any work: Linux (it reads /proc and opens a pty), a positive stretch,
    and audio long enough that the dashboard is still streaming when the stretch ends (after the
    end of the file it only idles, which would understate it)."""
    if not sys.platform.startswith("linux"):
        raise SedError("bench --dashboard reads /proc and opens a pseudo-terminal: Linux only")
    if not 0 < seconds < float("inf"):
        raise SedError(f"--dashboard {seconds:g}: give a positive number of seconds")
    if settle_s + seconds > duration_s:
        raise SedError(f"--dashboard {seconds:g}: the audio is {duration_s:.1f} s, and the dashboard starts up for "
                       f"{settle_s:g} s first; give at most {max(0.0, duration_s - settle_s):.0f} s or a longer --file")


def dashboard_cpu(model: str, path: Path, seconds: float, settle_s: float = DASHBOARD_SETTLE_S) -> dict:
    """A real `listen --file PATH --realtime` (the dashboard, hop 0.5 s) in a 100x30 pseudo-terminal:
    utime + stime of the whole process (every thread) from /proc/PID/stat over `seconds` after
    `settle_s` of start-up, as a percentage of one core, and its peak RSS (VmHWM) by then."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    cols, rows = DASHBOARD_SIZE
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
    cmd = [sys.executable, "-m", "realtime_sed", "listen", "--file", str(path), "--realtime", "--model", model,
           "--hop", str(DEFAULT_HOP_SECONDS)]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    tick = os.sysconf("SC_CLK_TCK")
    drawn = [0]

    def cpu_s() -> float:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            fields = []
        if proc.poll() is not None or not fields:
            raise SedError(f"bench --dashboard: listen ended early (exit {proc.returncode}) before the "
                           "measured stretch")
        return (int(fields[11]) + int(fields[12])) / tick

    def drain(until: float) -> None:
        """Reads what the dashboard draws, so it never blocks on a full terminal."""
        while time.monotonic() < until:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    drawn[0] += len(os.read(master, 65536))
                except OSError:  # the other end closed: listen has exited
                    return

    try:
        drain(time.monotonic() + settle_s)
        c0, t0 = cpu_s(), time.monotonic()
        drain(t0 + seconds)
        c1, t1 = cpu_s(), time.monotonic()
        hwm = _rss_mb(proc.pid, "VmHWM") or 0.0
    finally:
        if proc.poll() is None:
            proc.terminate()
            drain(time.monotonic() + 3)
            if proc.poll() is None:
                proc.kill()
        proc.wait()
        os.close(master)
    return {"cpu_pct_of_one_core": 100 * (c1 - c0) / (t1 - t0), "peak_rss_mb": hwm, "measured_s": t1 - t0,
            "settle_s": settle_s, "terminal": f"{cols}x{rows}", "bytes_drawn": drawn[0]}


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
    if bench.compare and not Path(bench.compare).is_file():
        raise SedError(f"{bench.compare}: peer model not found (a .tflite file)")
    if bench.dashboard:
        check_dashboard(bench.dashboard, sf.info(str(path)).duration)
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
    prof = results["profile"] = profile_hop(model, path)
    print("profile, ms per 0.5 s hop, 1 thread: " + ", ".join(
        f"{k} {v:.3f}" for k, v in prof.items()))
    print(f"per-hop latency (log-mel with frame reuse + CNN reusing conv rows), 1 thread: median "
          f"{lat['fast_median_ms']:.3f} ms, p95 {lat['fast_p95_ms']:.3f} ms (target <= {TARGETS['hop_ms']:g} ms); "
          f"with the whole CNN: median {lat['fast_whole_cnn_median_ms']:.3f} ms "
          f"(ratio {lat['fast_median_ms'] / lat['fast_whole_cnn_median_ms']:.2f})")
    if bench.compare:
        cmp = results["compare"] = compare_with_peer(model, Path(bench.compare), path, bench.rounds)
        if "error" in cmp:
            print(cmp["error"])
        else:
            print(f"same audio, 1 thread, decode and resampling included, {len(cmp['rounds'])} alternate rounds: "
                  f"{model} median {cmp['ours_x']:.0f}x real time, peer {Path(bench.compare).name} median "
                  f"{cmp['peer_x']:.0f}x (patch median {cmp['patch_median_ms']:.2f} ms, p95 "
                  f"{cmp['patch_p95_ms']:.2f} ms); median of the rounds' ratios {cmp['ratio']:.2f} (target >= "
                  f"{TARGETS['peer_ratio']:g}); per CPU second (what a loaded machine's waiting leaves out): "
                  f"{cmp['ours_cpu_x']:.0f}x vs {cmp['peer_cpu_x']:.0f}x, median ratio {cmp['cpu_ratio']:.2f}")
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
    if bench.dashboard:
        dash = results["dashboard"] = dashboard_cpu(model, path, bench.dashboard)
        print(f"dashboard (listen --file --realtime, hop {DEFAULT_HOP_SECONDS:g} s, {dash['terminal']} pty) over "
              f"{dash['measured_s']:.0f} s after {dash['settle_s']:g} s of start-up: "
              f"{dash['cpu_pct_of_one_core']:.2f}% of one core (target < {TARGETS['dashboard_cpu_pct']:g}%), "
              f"peak RSS {dash['peak_rss_mb']:.1f} MB (target <= {TARGETS['rss_mb']:g} MB)")
    if bench.json:
        try:
            Path(bench.json).write_text(json.dumps(results, indent=1))
        except OSError as exc:
            raise OutputError(f"cannot write {bench.json}: {exc.strerror}") from None
    return 0
