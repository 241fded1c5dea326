"""Augmented waveform views of every clip, each with the student's log-mel and the teacher's outputs.

Why views, and why cached: distillation works when the teacher labels exactly the input the
student sees ("a good teacher is patient and consistent", Beyer et al. 2022), over far more inputs
than the dataset holds. The student's log-mel of a fresh waveform costs about 20 ms on one core
(the n_fft-2048 STFT) and the teacher about 5 ms, so computing them every epoch would cost more
than training. Instead each clip gets `n_views` views once (view 0 is the clean clip), and each
epoch draws one view per clip. The cache is keyed by the view settings, the clips and the front end.

A view is built in the waveform domain, so the teacher hears it too:
- speed change (pitch and tempo together, resampling by 0.85 to 1.15), a random place in the window;
- another clip of the same fold group mixed in 20 to 5 dB below, or a negative (none of the ten) as a
  background 20 to 0 dB below;
- a microphone's colour (random smooth equalisation, band limits), reverberation, compression, gain.
Mixing partners come from the clip's own fold (folds 4 to 9, always training, form one group), and
backgrounds from negatives of the same group: no training view of a fold-wise run holds test-fold audio.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from realtime_sed.constants import N_FRAMES, N_MELS, SAMPLE_RATE, WINDOW_SAMPLES
from train.negatives import CV_FOLDS, Negative, window_of
from train.teacher import EMBEDDING_DIM, N_SCORES, TEACHER_WINDOW, to_teacher_rate


@dataclass(frozen=True)
class ViewSettings:
    n_views: int = 8  # per clip, view 0 being the clean clip
    seed: int = 0
    speed_prob: float = 0.5
    speed_range: float = 0.15  # factor in [1 - r, 1 + r]
    mix_prob: float = 0.5  # another clip of the same fold group, 20..5 dB below
    background_prob: float = 0.3  # a training negative, 20..0 dB below
    eq_prob: float = 0.5
    reverb_prob: float = 0.3
    compress_prob: float = 0.2
    gain_db: float = 6.0
    version: int = 1


@dataclass
class ViewBank:
    """All views in one table: rows [0, n_clips * n_views) are clips (row = clip * n_views + v), then
    the negatives' views. `label` is -1 for negatives; `group` is the fold group the row belongs to."""

    logmels: np.ndarray  # [rows, N_FRAMES, N_MELS] float16
    embeddings: np.ndarray  # [rows, 1024] float16, teacher's embedding max-pooled over patches
    scores: np.ndarray  # [rows, 521] float16, teacher's AudioSet scores max-pooled
    label: np.ndarray  # [rows] int, -1 for negatives
    group: np.ndarray  # [rows] int: the fold (1, 2, 3, 10) or 0 for always-training
    n_clips: int
    n_views: int
    # [n_clips * n_views, TEACHER_WINDOW] float16: each clip view as the teacher hears it (16 kHz),
    # loaded only for training that runs the teacher on fresh mixtures of views (`view_audio`)
    audio16k: np.ndarray | None = None


def fold_group(fold: int) -> int:
    return fold if fold in CV_FOLDS else 0


# ---------------------------------------------------------------- waveform augmentation


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    import soxr

    return soxr.resample(x, SAMPLE_RATE, SAMPLE_RATE / factor).astype(np.float32)


def place(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clip at a random place in the 4 s window (or a random 4 s stretch of a longer one)."""
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    if len(x) >= WINDOW_SAMPLES:
        start = rng.integers(len(x) - WINDOW_SAMPLES + 1)
        return x[start : start + WINDOW_SAMPLES].astype(np.float32)
    offset = rng.integers(WINDOW_SAMPLES - len(x) + 1)
    out[offset : offset + len(x)] = x
    return out


def add_under(x: np.ndarray, other: np.ndarray, db_below: float) -> np.ndarray:
    """`other` mixed in `db_below` dB under `x` (by RMS)."""
    return x + other * (_rms(x) / _rms(other) * 10 ** (-db_below / 20))


def equalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A microphone's colour: a smooth random gain curve over log frequency (up to about ±8 dB),
    and sometimes a band limit (high-pass up to 400 Hz, low-pass from 3 to 10 kHz)."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    logf = np.log2(np.maximum(freqs, 20.0))
    knots = np.linspace(np.log2(20.0), np.log2(SAMPLE_RATE / 2), 6)
    curve_db = np.interp(logf, knots, rng.uniform(-8, 8, len(knots)))
    gain = 10 ** (curve_db / 20)
    if rng.random() < 0.3:
        gain *= 1 / (1 + (rng.uniform(50, 400) / np.maximum(freqs, 1.0)) ** 4)
    if rng.random() < 0.3:
        gain *= 1 / (1 + (freqs / rng.uniform(3000, 10000)) ** 4)
    return np.fft.irfft(spec * gain, len(x)).astype(np.float32)


def reverberate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise (RT60 0.2 to 1.0 s) mixed in wet."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.2, 1.0)
    n = int(rt60 * SAMPLE_RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0
    wet = fftconvolve(x, ir / np.sqrt(np.sum(ir**2)))[: len(x)]
    mix = rng.uniform(0.1, 0.6)
    return ((1 - mix) * x + mix * wet * _rms(x) / _rms(wet)).astype(np.float32)


def compress(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic range compression (Salamon & Bello 2017): gain falls above a threshold, ratio 2 to 8."""
    env = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(441) / 441, mode="same")) + 1e-9
    threshold = np.percentile(env, rng.uniform(50, 90))
    ratio = rng.uniform(2, 8)
    gain = np.where(env > threshold, (env / threshold) ** (1 / ratio - 1), 1.0)
    return (x * gain).astype(np.float32)


def finish(x: np.ndarray, rng: np.random.Generator, s: ViewSettings) -> np.ndarray:
    if rng.random() < s.eq_prob:
        x = equalise(x, rng)
    if rng.random() < s.reverb_prob:
        x = reverberate(x, rng)
    if rng.random() < s.compress_prob:
        x = compress(x, rng)
    x = x * 10 ** (rng.uniform(-s.gain_db, s.gain_db) / 20)
    peak = np.abs(x).max()
    return (x / peak if peak > 1 else x).astype(np.float32)


def clip_view(audio: np.ndarray, partners: list[np.ndarray], backgrounds: list[np.ndarray],
              rng: np.random.Generator, s: ViewSettings) -> np.ndarray:
    x = audio
    if rng.random() < s.speed_prob:
        x = change_speed(x, rng.uniform(1 - s.speed_range, 1 + s.speed_range))
    x = place(x, rng)
    if partners and rng.random() < s.mix_prob:
        x = add_under(x, place(partners[rng.integers(len(partners))], rng), rng.uniform(5, 20))
    if backgrounds and rng.random() < s.background_prob:
        x = add_under(x, window_of(backgrounds[rng.integers(len(backgrounds))], rng), rng.uniform(0, 20))
    return finish(x, rng, s)


def negative_view(audio: np.ndarray, rng: np.random.Generator, s: ViewSettings) -> np.ndarray:
    return finish(window_of(audio, rng).astype(np.float32), rng, s)


# ---------------------------------------------------------------- building the bank


def _key(s: ViewSettings, names: list[str], negatives: list[Negative], teacher: Path) -> str:
    from train.data import FRONTEND_PARAMS

    h = hashlib.sha256(json.dumps([asdict(s), FRONTEND_PARAMS], sort_keys=True).encode())
    h.update("\n".join(names).encode())
    h.update("\n".join(n.name for n in negatives).encode())
    h.update(f"{teacher.name}:{teacher.stat().st_size}".encode())
    return h.hexdigest()[:16]


_SHARED: dict = {}  # the build's inputs, inherited by forked workers instead of pickled per job


def _views_of(item: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The views of one clip (items below n_clips) or one negative (the rest); view 0 is clean."""
    sh = _SHARED
    s: ViewSettings = sh["settings"]
    n_clips = len(sh["clip_audio"])
    if item < n_clips:
        audio = sh["clip_audio"][item]
        partners = [sh["clip_audio"][j] for j in sh["partners"][item]]
        backgrounds = sh["backgrounds"][sh["groups"][item]]
        return [_clean(audio)] + [clip_view(audio, partners, backgrounds, rng, s)
                                  for _ in range(s.n_views - 1)]
    audio = sh["negatives"][item - n_clips].audio
    return [_clean(window_of(audio, rng))] + [negative_view(audio, rng, s) for _ in range(s.n_views - 1)]


def _work(items: list[int]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Some clips' views, in a worker process: waveforms -> (log-mels, teacher outputs)."""
    import torch

    from train.architectures import LogMel
    from train.teacher import load_teacher

    torch.set_num_threads(1)
    if "teacher" not in _SHARED:
        _SHARED["teacher"], _SHARED["frontend"] = load_teacher(_SHARED["teacher_path"]), LogMel().eval()
    waves = []
    for item in items:  # each item its own seeded generator: the bank does not depend on workers
        waves += _views_of(item, np.random.default_rng([_SHARED["settings"].seed, item]))
    with torch.no_grad():
        logmels = _SHARED["frontend"](torch.from_numpy(np.stack(waves)))[:, 0].numpy()
    outs = [_SHARED["teacher"](w) for w in waves]
    emb = np.stack([o[0] for o in outs]).astype(np.float16)
    scores = np.stack([o[1] for o in outs]).astype(np.float16)
    return items, logmels.astype(np.float16), emb, scores


def build_views(clip_audio: list[np.ndarray], clip_folds: list[int], clip_labels: list[int],
                negatives: list[Negative], settings: ViewSettings, cache_dir: str | Path,
                teacher_path: str | Path, names: list[str], workers: int = 1,
                progress: bool = True) -> ViewBank:
    """Builds (or loads) the bank. `negatives` should be the training negatives only."""
    cache_dir, teacher_path = Path(cache_dir), Path(teacher_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _key(settings, names, negatives, teacher_path)
    base = cache_dir / f"views-{key}"
    meta_path = base.with_suffix(".json")
    k = settings.n_views
    n_items = len(clip_audio) + len(negatives)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return ViewBank(*(np.load(f"{base}.{part}.npy", mmap_mode="r")
                          for part in ("logmels", "embeddings", "scores")),
                        np.array(meta["label"]), np.array(meta["group"]), len(clip_audio), k)

    groups, neg_groups = _share(clip_audio, clip_folds, clip_labels, negatives, settings, teacher_path)
    label = np.repeat(np.array(list(clip_labels) + [-1] * len(negatives)), k)
    group = np.repeat(np.array(groups + neg_groups), k)

    tag = f"{os.getpid()}.scratch.npy"
    scratch = {part: np.lib.format.open_memmap(f"{base}.{part}.{tag}", mode="w+",
                                               dtype=np.float16, shape=shape)
               for part, shape in (("logmels", (n_items * k, N_FRAMES, N_MELS)),
                                   ("embeddings", (n_items * k, EMBEDDING_DIM)),
                                   ("scores", (n_items * k, N_SCORES)))}
    chunks = [list(range(i, min(i + 4, n_items))) for i in range(0, n_items, 4)]
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task("views (log-mel + teacher)", total=n_items)
    try:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for items, logmels, emb, scores in pool.map(_work, chunks):
                rows = slice(items[0] * k, (items[-1] + 1) * k)
                scratch["logmels"][rows] = logmels
                scratch["embeddings"][rows] = emb
                scratch["scores"][rows] = scores
                if bar:
                    bar.update(task, advance=len(items))
    finally:
        if bar:
            bar.stop()
        _SHARED.clear()
    for part, arr in scratch.items():
        arr.flush()
        os.replace(f"{base}.{part}.{tag}", f"{base}.{part}.npy")
    scratch.clear()
    meta_path.write_text(json.dumps({"settings": asdict(settings), "label": label.tolist(),
                                     "group": group.tolist()}))
    return build_views(clip_audio, clip_folds, clip_labels, negatives, settings, cache_dir,
                       teacher_path, names, workers, progress=False)


def _share(clip_audio: list[np.ndarray], clip_folds: list[int], clip_labels: list[int],
           negatives: list[Negative], settings: ViewSettings, teacher_path: Path) -> tuple[list[int], list[int]]:
    """Puts a build's inputs in `_SHARED` for the forked workers; returns the clips' and the
    negatives' fold groups. The mixing partners are drawn here from the settings' seed, so every
    build of the same bank (its log-mels, or its audio later) makes the same views."""
    groups = [fold_group(f) for f in clip_folds]
    neg_groups = [n.fold for n in negatives]  # 0 (always training) or a test fold
    rng = np.random.default_rng(settings.seed)
    partners = []
    for i, g in enumerate(groups):  # up to 16 partners per clip: same fold group, other class
        pool = [j for j in range(len(groups)) if groups[j] == g and clip_labels[j] != clip_labels[i]]
        partners.append(rng.choice(pool, min(16, len(pool)), replace=False).tolist() if pool else [])
    _SHARED.clear()
    _SHARED.update(settings=settings, clip_audio=clip_audio, partners=partners, groups=groups,
                   negatives=negatives, teacher_path=str(teacher_path),
                   backgrounds={g: [n.audio for n, ng in zip(negatives, neg_groups) if ng == g]
                                for g in set(groups)})
    return groups, neg_groups


def _audio_work(items: list[int]) -> tuple[list[int], np.ndarray]:
    """Some clips' views again, in a worker process, as the teacher hears them (16 kHz float16)."""
    waves = []
    for item in items:  # the same generator per item as `_work`: the same views
        waves += _views_of(item, np.random.default_rng([_SHARED["settings"].seed, item]))
    return items, np.stack([to_teacher_rate(w) for w in waves]).astype(np.float16)


def view_audio(clip_audio: list[np.ndarray], clip_folds: list[int], clip_labels: list[int],
               negatives: list[Negative], settings: ViewSettings, cache_dir: str | Path,
               teacher_path: str | Path, names: list[str], workers: int = 1) -> np.ndarray:
    """The 16 kHz waveform of every clip view of a bank (not the negatives': they are never mixed),
    [n_clips * n_views, TEACHER_WINDOW] float16, built once beside the bank and memory-mapped.

    Why: a student trained on a mixture of two views should learn what the teacher says of that
    mixture, not the mixture of what it said of each view (Beyer et al.'s consistent teaching), so
    the teacher must hear the mixture. The views are made again from the bank's own seeds (views
    depend only on the settings' seed and the clip, never on workers) rather than stored while the
    bank is built, so an existing bank gains its audio without being built again."""
    cache_dir, teacher_path = Path(cache_dir), Path(teacher_path)
    base = cache_dir / f"views-{_key(settings, names, negatives, teacher_path)}"
    path = Path(f"{base}.audio16k.npy")
    if path.exists():
        return np.load(path, mmap_mode="r")
    k, n_clips = settings.n_views, len(clip_audio)
    _share(clip_audio, clip_folds, clip_labels, negatives, settings, teacher_path)
    scratch_path = f"{base}.audio16k.{os.getpid()}.scratch.npy"
    scratch = np.lib.format.open_memmap(scratch_path, mode="w+", dtype=np.float16,
                                        shape=(n_clips * k, TEACHER_WINDOW))
    try:
        import multiprocessing

        chunks = [list(range(i, min(i + 8, n_clips))) for i in range(0, n_clips, 8)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for items, audio in pool.map(_audio_work, chunks):
                scratch[items[0] * k : (items[-1] + 1) * k] = audio
    finally:
        _SHARED.clear()
    scratch.flush()
    del scratch
    os.replace(scratch_path, path)
    return np.load(path, mmap_mode="r")


def _clean(audio: np.ndarray) -> np.ndarray:
    """View 0: the clip as the dataset has it, zero-padded at the end."""
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    out[: min(len(audio), WINDOW_SAMPLES)] = audio[:WINDOW_SAMPLES]
    return out


SYNTHETIC_PER_KIND = 40  # synthetic negatives of each kind (speech, tones, noise, silence; music, clicks held out)


def all_negatives(esc_root: str | Path, synthetic_per_kind: int = SYNTHETIC_PER_KIND,
                  seed: int = 0) -> list[Negative]:
    from train.negatives import esc_negatives, synthetic_negatives

    return esc_negatives(esc_root) + synthetic_negatives(synthetic_per_kind, seed)


def bank_for(clips, settings: ViewSettings, negatives: list[Negative], cache_dir: str | Path,
             teacher_path: str | Path, workers: int = 1, progress: bool = True,
             with_audio: bool = False) -> ViewBank:
    """The bank of a clip list (a `LogMelCache`'s clips, in its order) and the training negatives;
    `with_audio`: also each clip view's 16 kHz waveform (`view_audio`)."""
    from realtime_sed.audio import load_audio

    clip_audio = [load_audio(c.path)[:WINDOW_SAMPLES] for c in clips]
    training = [n for n in negatives if not n.held_out]
    inputs = (clip_audio, [c.fold for c in clips], [c.label for c in clips], training, settings, cache_dir,
              teacher_path, [c.name for c in clips], workers)
    bank = build_views(*inputs, progress)
    return replace(bank, audio16k=view_audio(*inputs)) if with_audio else bank
