"""UrbanSound8K: the metadata, the splits, and the on-disk cache of log-mels.

Reads the standard layout (`metadata/UrbanSound8K.csv` + `audio/foldN/`) in any format soundfile
decodes. The CSV may name `.wav` files that sit on disk as `.ogg` (or the reverse): the stem is
what identifies a clip. Unreadable clips are reported and skipped, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_sed.constants import (
    CLASSES,
    FRONT_END,
    HOP_LENGTH,
    LOG_AMIN,
    N_FRAMES,
    N_MELS,
    WINDOW_SAMPLES,
)
from realtime_sed.errors import AudioError, DataError

SILENCE_DB = 10.0 * float(np.log10(LOG_AMIN))  # the log-mel floor: what silence and padding read
AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".aif", ".aiff")
CSV_COLUMNS = {"slice_file_name", "fsID", "fold", "classID"}


@dataclass(frozen=True)
class Clip:
    path: Path
    fold: int
    label: int
    fsid: str  # the Freesound recording the clip was cut from: clips of one recording share a fold

    @property
    def name(self) -> str:
        return self.path.stem


def _resolve(folder: Path, file_name: str) -> Path | None:
    path = folder / file_name
    if path.exists():
        return path
    for suffix in AUDIO_SUFFIXES:
        alt = path.with_suffix(suffix)
        if alt.exists():
            return alt
    return None


def read_metadata(root: str | Path) -> tuple[list[Clip], list[str]]:
    """Returns the clips whose audio is present, and the names listed in the CSV but missing."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: metadata CSV not found (expected the UrbanSound8K layout)")
    if not (root / "audio").is_dir():
        raise DataError(f"{root / 'audio'}: audio folder not found (expected audio/fold1 ...)")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing_cols = CSV_COLUMNS - set(reader.fieldnames or ())
        if missing_cols:
            raise DataError(f"{csv_path}: missing columns {', '.join(sorted(missing_cols))}")
        rows = list(reader)
    clips, missing = [], []
    for row in rows:
        fold = int(row["fold"])
        path = _resolve(root / "audio" / f"fold{fold}", row["slice_file_name"])
        if path is None:
            missing.append(row["slice_file_name"])
            continue
        clips.append(Clip(path, fold, int(row["classID"]), row["fsID"]))
    if not clips:
        raise DataError(f"{root / 'audio'}: none of the {len(rows)} clips in the CSV were found")
    return clips, missing


# ---------------------------------------------------------------- splits


@dataclass
class Split:
    train: list[int]
    val: list[int]
    test: list[int]
    description: str


def random_split(n: int, seed: int) -> Split:
    """The paper's protocol: a pseudo-random 80/10/10 split. On all 8,732 clips the test part is 874."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    return Split(
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val :],
        f"random 80/10/10, seed {seed}",
    )


VAL_SHARE = 0.1  # fold-wise validation: this share of each class's training clips


def fold_split(clips: list[Clip], test_fold: int, seed: int, val_fold: int | None = None) -> Split:
    """The official protocol: test on one fold, train on the rest.

    Validation comes from the training folds, never the test fold: a whole fold with `val_fold`,
    otherwise about 10% of each class's training clips as whole recordings (fsIDs, so no
    recording straddles the train/validation line; see `stratified_recordings`).
    """
    folds = {c.fold for c in clips}
    if test_fold not in folds:
        raise DataError(f"test fold {test_fold} has no clips (folds present: {sorted(folds)})")
    test = [i for i, c in enumerate(clips) if c.fold == test_fold]
    rest = [i for i, c in enumerate(clips) if c.fold != test_fold]
    if val_fold is not None:
        if val_fold == test_fold or val_fold not in folds:
            raise DataError(f"validation fold {val_fold} must be another fold that has clips")
        val = [i for i in rest if clips[i].fold == val_fold]
        train = [i for i in rest if clips[i].fold != val_fold]
        how = f"validation fold {val_fold}"
    else:
        val = stratified_recordings(clips, rest, VAL_SHARE, seed)
        val_set = set(val)
        train = [i for i in rest if i not in val_set]
        how = f"validation: {VAL_SHARE:.0%} of each class's training clips as whole recordings, seed {seed}"
    return Split(train, val, test, f"fold-wise, test fold {test_fold}, {how}")


def stratified_recordings(clips: list[Clip], pool: list[int], share: float, seed: int) -> list[int]:
    """About `share` of each class's clips in `pool`, taken as whole recordings (fsIDs).

    Why per class and capped: UrbanSound8K recordings give from 1 to 70+ slices each, so drawing
    recordings at random over all classes can give a validation set that is half one recording
    and lacks whole classes, and then its loss picks checkpoints badly. A recording that would
    take a class past 1.5 times its share is skipped, unless the class would otherwise have none.
    """
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in pool:
        by_class[clips[i].label][clips[i].fsid].append(i)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(by_class):
        recordings = by_class[label]
        keys = sorted(recordings)
        rng.shuffle(keys)
        target = share * sum(len(v) for v in recordings.values())
        taken: list[int] = []
        for key in keys:
            if len(taken) >= target:
                break
            if len(taken) + len(recordings[key]) <= 1.5 * target:
                taken += recordings[key]
        if not taken and len(recordings) > 1:  # only big recordings: the smallest one
            taken = min(recordings.values(), key=len)
        chosen += taken
    return sorted(chosen)


def cv_folds(clips: list[Clip], min_clips: int = 100) -> list[int]:
    """Folds with enough clips to be a meaningful test set (all ten on the full dataset)."""
    counts: dict[int, int] = defaultdict(int)
    for c in clips:
        counts[c.fold] += 1
    return sorted(f for f, n in counts.items() if n >= min_clips)


# ---------------------------------------------------------------- log-mel cache

FRONTEND_PARAMS = {**FRONT_END.to_dict(), "version": 2}  # what the cache key holds of the front end


@dataclass
class LogMelCache:
    """Log-mels of every readable clip, [n, N_FRAMES, N_MELS] float32, plus each clip's length."""

    logmels: np.ndarray
    lengths: np.ndarray  # samples of real audio before zero padding (<= WINDOW_SAMPLES)
    clips: list[Clip]
    failed: list[tuple[str, str]]  # (clip name, reason)


def _cache_key(clips: list[Clip]) -> str:
    h = hashlib.sha256(json.dumps(FRONTEND_PARAMS, sort_keys=True).encode())
    for c in clips:
        h.update(f"{c.path.name}:{c.path.stat().st_size}:{c.path.stat().st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def build_cache(clips: list[Clip], cache_dir: str | Path, progress: bool = True) -> LogMelCache:
    """Computes the front end once per clip with the same torch module the exported graph uses,
    and stores it on disk keyed by the clip list and the front-end parameters."""
    import torch

    from realtime_sed.audio import load_audio
    from train.architectures import LogMel

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(clips)
    npz = cache_dir / f"logmel-{key}.npy"
    meta_path = cache_dir / f"logmel-{key}.json"
    by_name = {c.name: c for c in clips}
    if npz.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        kept = [by_name[n] for n in meta["names"]]
        return LogMelCache(
            np.load(npz, mmap_mode="r"),
            np.array(meta["lengths"]),
            kept,
            [tuple(x) for x in meta["failed"]],
        )

    frontend = LogMel().eval()
    # Private scratch names, published with atomic renames: two trainings started together (the
    # fold-wise lanes) may both build the cache, and neither may read the other's half-written file.
    scratch = cache_dir / f"logmel-{key}.{os.getpid()}.scratch.npy"
    logmels = np.lib.format.open_memmap(
        scratch, mode="w+", dtype=np.float32, shape=(len(clips), N_FRAMES, N_MELS)
    )
    kept, lengths, failed = [], [], []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            with torch.no_grad():
                out = frontend(torch.from_numpy(np.stack(batch)))[:, 0].numpy()
            start = len(kept) - len(batch)
            logmels[start : len(kept)] = out
            batch.clear()

    iterator = clips
    if progress:
        from rich.progress import track

        iterator = track(clips, description="log-mel cache")
    for clip in iterator:
        try:
            audio = load_audio(clip.path)
        except AudioError as exc:
            failed.append((clip.name, str(exc)))
            continue
        lengths.append(min(len(audio), WINDOW_SAMPLES))
        padded = np.zeros(WINDOW_SAMPLES, np.float32)
        padded[: lengths[-1]] = audio[:WINDOW_SAMPLES]
        kept.append(clip)
        batch.append(padded)
        if len(batch) == 64:
            flush()
    flush()
    final = scratch.with_suffix(".final.npy")
    np.save(final, logmels[: len(kept)])  # without the rows of clips that failed to decode
    del logmels
    scratch.unlink()
    meta_scratch = scratch.with_suffix(".json")
    meta_scratch.write_text(
        json.dumps({"names": [c.name for c in kept], "lengths": lengths, "failed": failed})
    )
    os.replace(final, npz)  # the array first: a reader opens the cache only once its meta exists
    os.replace(meta_scratch, meta_path)
    return LogMelCache(np.load(npz, mmap_mode="r"), np.array(lengths), kept, failed)


def content_frames(lengths: np.ndarray) -> np.ndarray:
    """How many leading frames of a zero-padded clip hold its audio (the STFT window reaches a few
    frames past the end); the frames after them are padding."""
    return np.minimum(np.ceil(np.asarray(lengths) / HOP_LENGTH).astype(np.int64) + 4, N_FRAMES)


def place_randomly(logmels: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """Each clip shorter than the window moved to a random place in it (its padding rolled to the
    front), the way sounds fall anywhere in a live stream's windows. The dataset's clips all start
    at the window's start, so plain test accuracy cannot tell whether a model copes with that.
    Rolling log-mel frames is what `--time-shift` training does too."""
    room = N_FRAMES - content_frames(lengths)
    shifts = np.random.default_rng(seed).integers(0, room + 1)
    out = np.array(logmels)
    for i in np.flatnonzero(shifts):
        out[i] = np.roll(out[i], int(shifts[i]), axis=0)
    return out


def class_counts(clips: list[Clip], idx: list[int]) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    for i in idx:
        counts[CLASSES[clips[i].label]] += 1
    return counts
