"""`classify --engine ray` on a real local Ray cluster of 2 workers (started by the command itself):
the same rows as local `classify`, a broken file reported the same way with the same exit code, the
per-input outputs of --output-dir, and --skip-done resuming a run; a worker's chunk of files (short
ones batched) gives each file local classify's rows. Needs the cluster extra, which
scripts/test.sh installs (the chunk itself is checked without Ray)."""

import shutil
import subprocess
import sys

import pytest

from realtime_sed.cluster import CHUNK_FILES, FileClassifier, chunk_size
from realtime_sed.constants import DEMO_FILE
from realtime_sed.settings import ClassifySettings, Settings, StreamSettings
from realtime_sed.wiring import BATCH_FILE_SECONDS, BATCH_WINDOWS
from tests.conftest import SHARED_DATA, needs_data, run_cli
from tests.shipped import MODEL
from tests.test_batch import CLIPS
from tests.test_batch import rows as batch_rows

needs_ray = pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                               reason="the cluster extra is not installed")


@pytest.fixture
def archive(tmp_path, clip_file):
    """A folder as an archive arrives: the demo and two clips (one in a subfolder) and a broken file."""
    root = tmp_path / "archive"
    (root / "site-b").mkdir(parents=True)
    shutil.copy(DEMO_FILE, root / "urban-demo.ogg")
    shutil.copy(clip_file("siren"), root / "siren.wav")
    shutil.copy(clip_file("dog_bark", rate=44100), root / "site-b" / "dog.wav")
    (root / "site-b" / "broken.wav").write_bytes(b"RIFF not really a wav")
    return root


def rows(text: str) -> list[str]:
    header, *body = text.splitlines()
    assert header == "filename\tonset\toffset\tevent_label"
    return sorted(body)


@needs_ray
def test_ray_output_equals_local_classify_and_a_broken_file_behaves_the_same(archive, tmp_path):
    local = run_cli("classify", archive, "--recursive", "--quiet")
    out = tmp_path / "ray.tsv"
    ray = run_cli("classify", archive, "--recursive", "--engine", "ray", "--workers", "2", "-o", out, "--quiet")
    assert local.returncode == ray.returncode == 1
    assert rows(local.stdout) == rows(out.read_text())
    assert len(rows(local.stdout)) > 3  # the demo alone has several events
    for r in (local, ray):
        errors = [line for line in r.stderr.splitlines() if line.startswith("realtime-sed: error:")]
        assert len(errors) == 1 and "broken.wav" in errors[0], r.stderr
        assert "1 of 4 files failed" in r.stderr

    # Resume: the finished files are in OUT.done, so a second run with --skip-done adds nothing and
    # only retries the broken file.
    done = (tmp_path / "ray.tsv.done").read_text().splitlines()
    assert len(done) == 3
    again = run_cli("classify", archive, "--recursive", "--engine", "ray", "--workers", "2", "-o", out,
                    "--skip-done", "--quiet")
    assert again.returncode == 1 and "broken.wav" in again.stderr
    assert rows(out.read_text()) == rows(local.stdout)


@needs_ray
def test_ray_output_dir_writes_one_file_per_input(archive, tmp_path):
    out_dir = tmp_path / "events"
    r = run_cli("classify", archive / "urban-demo.ogg", archive / "siren.wav", "--engine", "ray",
                "--workers", "2", "--output-dir", out_dir, "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["siren.wav.tsv", "urban-demo.ogg.tsv"]
    local = run_cli("classify", archive / "urban-demo.ogg", "--quiet")
    assert (out_dir / "urban-demo.ogg.tsv").read_text() == local.stdout


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path):
    """Ray made unimportable in a real `classify --engine ray` process: one line, exit 2."""
    code = ("import sys; sys.modules['ray'] = None; from realtime_sed.cli import main; "
            f"sys.exit(main(['classify', {str(DEMO_FILE)!r}, '--engine', 'ray']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "realtime-sed: error: --engine ray needs Ray: pip install 'realtime-sed[cluster]'"


@pytest.mark.parametrize("output", [[], ["-o", "-"]])
def test_skip_done_onto_standard_output_is_refused_before_any_work(output):
    """Standard output keeps no record of the files done, so there is nothing to resume from: one
    line and exit 2, before the model loads or Ray starts (so it holds without Ray too), and not a
    byte of output."""
    code = ("import sys; sys.modules['ray'] = None; from realtime_sed.cli import main; "
            f"sys.exit(main(['classify', {str(DEMO_FILE)!r}, '--engine', 'ray', '--skip-done', "
            f"'--model', 'no-such-model.onnx', *{output!r}]))")  # the model would fail next
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == ("realtime-sed: error: --skip-done needs --output FILE or --output-dir: standard output "
                        "keeps no record of the files already done\n")


@pytest.fixture
def clips_around_a_long_and_a_broken_file(tmp_path) -> list:
    """Real UrbanSound8K clips (short: batched), the 77 s demo (streamed alone) and a broken file."""
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt not really")
    clips = [SHARED_DATA / "audio" / "fold1" / name for name in CLIPS]
    return clips[:4] + [DEMO_FILE] + clips[4:7] + [broken] + clips[7:]


@needs_data
def test_a_chunk_gives_each_file_its_local_rows_and_reports_a_broken_one(clips_around_a_long_and_a_broken_file):
    """Without Ray: the worker's own object on one chunk. Each file's text is what local classify
    writes for it alone (tests/test_batch's reference, the header cut), and the short files' windows
    went through shared CNN calls."""
    files = [str(p) for p in clips_around_a_long_and_a_broken_file]
    settings = Settings(stream=StreamSettings(model=str(MODEL)), classify=ClassifySettings(quiet=True))
    worker = FileClassifier(settings)
    calls = []
    model = worker.clf.predict_logmel

    def counted(x):
        calls.append(len(x))
        return model(x)

    worker.clf.predict_logmel = counted
    results = worker.classify_chunk([(p, None) for p in files])
    assert [r.path for r in results] == files
    for path, result in zip(files, results):
        if path.endswith("broken.wav"):
            assert result.error and "broken.wav" in result.error and result.text == ""
            continue
        assert result.error is None and result.audio_s > 0
        assert result.text == batch_rows([path], worker.clf, batched=False, fmt="tsv").split("\n", 1)[1], path
    assert any(r.text for r in results if r.audio_s <= BATCH_FILE_SECONDS)  # the clips' events too
    assert BATCH_WINDOWS in calls  # the clips' windows shared calls


def test_chunks_are_spread_over_the_workers_and_capped():
    assert chunk_size(4, 2) == 1  # a small archive: every worker busy
    assert chunk_size(14, 2) == 2
    assert chunk_size(873, 2) == CHUNK_FILES
    assert chunk_size(1, 8) == 1


@needs_ray
@needs_data
def test_ray_batches_short_files_and_equals_local_classify(clips_around_a_long_and_a_broken_file, tmp_path):
    files = clips_around_a_long_and_a_broken_file
    local = run_cli("classify", *files, "--quiet")
    out = tmp_path / "ray.tsv"
    ray = run_cli("classify", *files, "--engine", "ray", "--workers", "2", "-o", out, "--quiet")
    assert local.returncode == ray.returncode == 1
    assert rows(local.stdout) == rows(out.read_text())
    for r in (local, ray):
        errors = [line for line in r.stderr.splitlines() if line.startswith("realtime-sed: error:")]
        assert len(errors) == 1 and "broken.wav" in errors[0], r.stderr
        assert f"1 of {len(files)} files failed" in r.stderr
    assert len((tmp_path / "ray.tsv.done").read_text().splitlines()) == len(files) - 1
