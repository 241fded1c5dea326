"""`classify --engine ray`: an archive classified by a pool of Ray workers.

Ray does the scheduling; this module only wires it. Each worker is a Ray actor that loads the
classifier once and takes chunks of paths: short files through the same `wiring.FileBatch` as
local `classify` (their windows share ONNX Runtime calls), longer ones through `classify_file`,
each file's rows rendered with the same sink into its own buffer, so the output is local
`classify`'s, row for row (in the order chunks finish). The driver sends paths, never audio:
workers read the files themselves, so the files (and the model) must be at the same path on every
node.

Results are written as each chunk finishes, file by file. `--skip-done` resumes: with
`--output-dir` an input whose output file exists is done (files appear by atomic rename, never
half-written); with one combined `--output FILE`, `FILE.done` lists the inputs already written to it.
"""

from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from realtime_sed.errors import AudioError, SedError
from realtime_sed.inputs import classify_inputs
from realtime_sed.settings import Settings
from realtime_sed.sinks import check_output, make_sink
from realtime_sed.wiring import (BATCH_FILE_SECONDS, FileBatch, classify_file, load_classifier, make_stream,
                                 open_file, row_names)

CLUSTER_HINT = "--engine ray needs Ray: pip install 'realtime-sed[cluster]'"
HEADERED = ("tsv", "csv")  # formats whose output starts with one header line
CHUNK_FILES = 32  # most files per worker call
CHUNKS_PER_WORKER = 4  # a small archive is still spread over every worker


@dataclass
class FileResult:
    path: str
    text: str  # the file's rows as local classify writes them, without the header
    audio_s: float
    error: str | None = None


class FileClassifier:
    """One per Ray worker process: the classifier is loaded once, then chunks of files stream
    through. Short files (<= BATCH_FILE_SECONDS) of a chunk share ONNX Runtime calls through
    `FileBatch`, as in local classify; longer ones are streamed one by one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.clf = load_classifier(settings.stream)

    def classify_chunk(self, files: list[tuple[str, str | None]]) -> list[FileResult]:
        """(path, row name) pairs -> one result per file, in the same order. A broken file is
        reported in its result and the others go on; its rows are dropped (a failed file is not
        marked done, so a resumed run does it again)."""
        fmt, windows = self.settings.classify.format, self.settings.output.windows
        batch = FileBatch(self.clf, make_sink(fmt, io.StringIO()), self.settings)
        buffers: list[io.StringIO | None] = []
        results: list[FileResult] = []
        for path, name in files:
            buffer = io.StringIO()
            sink = make_sink(fmt, buffer, windows=windows)
            try:
                source = open_file(path, self.settings)
                audio_s = source.duration_s
                if audio_s <= BATCH_FILE_SECONDS:
                    batch.add(source, name, sink)
                else:
                    classify_file(source, self.clf, sink, self.settings, name=name)
            except AudioError as exc:
                results.append(FileResult(path, "", 0.0, str(exc)))
                buffers.append(None)
                continue
            results.append(FileResult(path, "", audio_s))
            buffers.append(buffer)
        batch.flush()
        for result, buffer in zip(results, buffers):
            if buffer is not None:
                text = buffer.getvalue()
                result.text = text.split("\n", 1)[1] if fmt in HEADERED else text
        return results


def chunk_size(files: int, workers: int) -> int:
    """Files per worker call: up to CHUNK_FILES (short files share CNN calls, and each call's Ray
    round trip is paid once per chunk), but small enough that every worker gets several chunks."""
    return max(1, min(CHUNK_FILES, -(-files // (workers * CHUNKS_PER_WORKER))))


def _header(settings: Settings) -> str:
    buffer = io.StringIO()
    make_sink(settings.classify.format, buffer)
    return buffer.getvalue()


def output_name(path: str, fmt: str) -> str:
    """--output-dir: `dog.wav` -> `dog.wav.tsv` (the extension kept, so dog.wav and dog.flac differ)."""
    return f"{Path(path).name}.{fmt}"


class ResultWriter:
    """Writes each finished file at once: appended to one output (plus its `.done` ledger), or as
    its own file in `output_dir`."""

    def __init__(self, settings: Settings):
        opts = settings.classify
        self.fmt, self.output_dir, self.header = opts.format, opts.output_dir, _header(settings)
        self.done: set[str] = set()
        self._out = self._ledger = None
        if self.output_dir:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            return
        to_file = opts.output is not None and opts.output != "-"
        if not to_file:
            self._out = sys.stdout
            self._out.write(self.header)
            self._out.flush()
            return
        ledger = Path(f"{opts.output}.done")
        resume = opts.skip_done and Path(opts.output).exists() and ledger.exists()
        if resume:
            self.done = set(ledger.read_text(encoding="utf-8").splitlines())
        self._out = open(opts.output, "a" if resume else "w", encoding="utf-8", newline="")
        self._ledger = open(ledger, "a" if resume else "w", encoding="utf-8")
        if not resume:
            self._out.write(self.header)
            self._out.flush()

    def is_done(self, path: str) -> bool:
        if self.output_dir:
            return (Path(self.output_dir) / output_name(path, self.fmt)).exists()
        return os.path.abspath(path) in self.done

    def write(self, result: FileResult) -> None:
        if self.output_dir:
            target = Path(self.output_dir) / output_name(result.path, self.fmt)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(self.header + result.text, encoding="utf-8")
            partial.replace(target)
            return
        self._out.write(result.text)
        self._out.flush()
        if self._ledger is not None:  # after the rows: a crash in between re-does the file
            self._ledger.write(os.path.abspath(result.path) + "\n")
            self._ledger.flush()

    def close(self) -> None:
        for f in (self._out, self._ledger):
            if f is not None and f is not sys.stdout:
                f.close()


def check_skip_done(settings: Settings) -> None:
    """--skip-done resumes from what an earlier run wrote down: the `OUT.done` ledger beside one
    output file, or the files of --output-dir. Standard output keeps no such record (what reached
    a pipe or a terminal cannot be read back), so it is refused before any work, not ignored."""
    opts = settings.classify
    if opts.skip_done and not opts.output_dir and opts.output in (None, "-"):
        raise SedError("--skip-done needs --output FILE or --output-dir: standard output keeps no record "
                       "of the files already done")


def _start_ray(settings: Settings):
    try:
        import ray
    except ImportError:
        raise SedError(CLUSTER_HINT) from None
    address = settings.classify.ray_address or os.environ.get("RAY_ADDRESS")
    # Workers are fresh processes: one BLAS thread, as in local classify (see cli.py).
    common = {"logging_level": "ERROR", "log_to_driver": False,
              "runtime_env": {"env_vars": {"OPENBLAS_NUM_THREADS": "1"}}}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=settings.classify.workers, include_dashboard=False, **common)
    return ray


def run_classify_ray(settings: Settings) -> int:
    """Every input through a pool of Ray workers; a bad file is reported and the rest go on, and the
    exit code is local classify's (1 if any file failed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    check_skip_done(settings)
    out = settings.output
    if out.exec or out.webhook or out.mqtt or out.clips:
        raise SedError("--exec, --webhook, --mqtt and --clips are for --engine local")
    files = classify_inputs(settings.classify)
    check_output(settings.classify.output, files, "-o")  # before anything is opened for writing
    make_stream(load_classifier(settings.stream), settings)  # bad model or settings: fail before Ray
    writer = ResultWriter(settings)
    names = dict(zip(files, row_names(files)))  # as local classify names rows (over every input)
    todo = [p for p in files if not (settings.classify.skip_done and writer.is_done(p))]
    failed = 0
    hours = 0.0
    ray = _start_ray(settings)
    try:
        n_workers = settings.classify.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        worker = ray.remote(num_cpus=1)(FileClassifier)
        pool = ray.util.ActorPool([worker.remote(settings) for _ in range(min(n_workers, len(todo)) or 1)])
        show = not settings.classify.quiet and sys.stderr.isatty()
        t0 = time.perf_counter()
        columns = (TextColumn("files"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[hours]}"),
                   TimeElapsedColumn())
        with Progress(*columns, transient=True, disable=not show) as progress:
            task = progress.add_task("files", total=len(todo), hours="0.00 h of audio")
            size = chunk_size(len(todo), n_workers)
            chunks = [[(p, names[p]) for p in todo[i : i + size]] for i in range(0, len(todo), size)]
            for results in pool.map_unordered(lambda a, chunk: a.classify_chunk.remote(chunk), chunks):
                for result in results:
                    if result.error is not None:
                        failed += 1
                        print(f"realtime-sed: error: {result.error}", file=sys.stderr, flush=True)
                    else:
                        writer.write(result)
                        hours += result.audio_s / 3600
                    progress.update(task, advance=1, hours=f"{hours:.2f} h of audio")
        elapsed = time.perf_counter() - t0
    finally:
        writer.close()
        ray.shutdown()
    if not settings.classify.quiet:
        print(f"{len(todo)} files, {hours:.3f} h of audio in {elapsed:.1f} s on {n_workers} Ray workers "
              f"({hours * 3600 / max(elapsed, 1e-9):.0f}x real time, Ray start-up not counted)", file=sys.stderr)
    if failed and len(files) > 1:
        print(f"realtime-sed: {failed} of {len(files)} files failed", file=sys.stderr)
    return 1 if failed else 0
