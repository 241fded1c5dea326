"""`classify` batches short files: their windows go through shared ONNX Runtime calls
(`wiring.FileBatch`), and the rows are exactly those of classifying each file on its own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import soundfile as sf

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.settings import ClassifySettings, Settings
from realtime_sed.sinks import make_sink
from realtime_sed.wiring import BATCH_FILE_SECONDS, BATCH_WINDOWS, FileBatch, classify_file, open_file
from tests.conftest import DEMO, SHARED_DATA, needs_data, run_cli
from tests.shipped import MODEL

# Real UrbanSound8K clips of fold 1: 4 s ones and shorter ones (1.64 s, 2.61 s, 1.38 s).
CLIPS = ["101415-3-0-2.ogg", "102106-3-0-0.ogg", "102305-6-0-0.ogg", "102842-3-0-1.ogg", "103074-7-0-0.ogg",
         "103074-7-2-0.ogg", "103258-5-0-0.ogg", "103258-5-0-1.ogg", "102842-3-1-0.ogg", "103074-7-1-0.ogg",
         "103074-7-3-0.ogg", "103258-5-0-10.ogg"]


@pytest.fixture(scope="module")
def clf() -> OnnxClassifier:
    return OnnxClassifier(MODEL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_audio) -> list[Path]:
    """The clips, with a 9 s stretch of the demo (several windows, one zero-padded) among them."""
    folder = tmp_path_factory.mktemp("batch")
    stretch = folder / "demo-9s.wav"
    sf.write(stretch, demo_audio[20 * SAMPLE_RATE : 29 * SAMPLE_RATE], SAMPLE_RATE, subtype="FLOAT")
    clips = [SHARED_DATA / "audio" / "fold1" / name for name in CLIPS]
    return clips[:5] + [stretch] + clips[5:]


def rows(files, clf, batched: bool, fmt: str = "jsonl") -> str:
    """The rows classify writes for `files` (JSONL with every window's probabilities)."""
    settings = Settings(classify=ClassifySettings(quiet=True))
    buffer = io.StringIO()
    sink = make_sink(fmt, buffer, windows=True)
    batch = FileBatch(clf, sink, settings)
    for path in files:
        if batched:
            batch.add(open_file(path, settings))
        else:
            classify_file(open_file(path, settings), clf, sink, settings)
    batch.flush()
    return buffer.getvalue()


@needs_data
def test_batched_rows_equal_each_file_on_its_own_with_fewer_cnn_calls(inputs, clf, monkeypatch):
    alone = rows(inputs, clf, batched=False)
    calls = []
    model = clf.predict_logmel

    def counted(x):
        calls.append(len(x))
        return model(x)

    monkeypatch.setattr(clf, "predict_logmel", counted)
    together = rows(inputs, clf, batched=True)
    windows = sum('"window"' in line for line in together.splitlines())
    assert windows == sum(calls) >= len(inputs) + 10  # every window went through the CNN once
    assert len(calls) <= -(-windows // BATCH_WINDOWS) + 1 < len(inputs) // 2
    assert max(calls) == BATCH_WINDOWS
    assert '"event"' in together  # events too, not only windows
    assert together == alone


@needs_data
def test_classify_batches_short_files_keeps_their_order_around_a_long_one_and_a_broken_one(inputs, clf,
                                                                                              tmp_path):
    """Through the real command: a long file (the 77 s demo, streamed on its own) and a file that
    is not audio sit among the short ones. The rows are each file's on its own, in the order given;
    the broken file is reported and the exit code is 1, as always."""
    assert sf.info(str(DEMO)).duration > BATCH_FILE_SECONDS
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt not really")
    files = inputs[:3] + [DEMO] + inputs[3:7] + [broken] + inputs[7:]
    proc = run_cli("classify", *files, "--format", "tsv", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("error:") == 1 and "broken.wav" in proc.stderr
    expected = rows([f for f in files if f != broken], clf, batched=False, fmt="tsv")
    assert proc.stdout == expected
    names = [line.split("\t")[0] for line in proc.stdout.splitlines()[1:]]
    order = [Path(f).name for f in files]
    assert names == sorted(names, key=order.index)  # file by file, in the order given
    assert DEMO.name in names


def test_a_lone_short_file_is_classified_when_the_batch_is_flushed(clf, tmp_path, demo_audio):
    path = tmp_path / "short.wav"
    sf.write(path, demo_audio[: 2 * SAMPLE_RATE], SAMPLE_RATE)
    settings = Settings(classify=ClassifySettings(quiet=True))
    buffer = io.StringIO()
    batch = FileBatch(clf, make_sink("jsonl", buffer, windows=True), settings)
    batch.add(open_file(path, settings))
    assert buffer.getvalue() == ""  # waiting for more windows
    batch.flush()
    assert buffer.getvalue().count('"window"') == 1
    assert buffer.getvalue() == rows([path], clf, batched=False)
