"""A pretrained teacher for training only: YAMNet (AudioSet, 521 classes) plus a head fitted on our labels.

Why: 2,625 clips from a few hundred recordings cannot teach a 97k-parameter CNN what a siren sounds
like everywhere. YAMNet has heard two million AudioSet clips; a logistic regression on its pooled
embedding scores about 0.72 fold-wise where the Table 1 models score about 0.50. Distillation hands
that function to the student over many augmented views (see `train.views`).

The teacher speaks about 4 s views at 22,050 Hz: each view is resampled to 16 kHz and cut into
0.975 s patches every 0.48 s (YAMNet's own framing); its 1024-d embeddings and 521 scores are
max-pooled over the patches. The head is fitted on a run's training part only: for a fold-wise run
that is per fold, since a head that saw the test fold would leak it into the student.

The TFLite runtime (`ai-edge-litert`) is in the `train` extra; the runtime package never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_sed.constants import SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.errors import SedError

TEACHER_FILE = Path("../shared/teacher/yamnet.tflite")
TEACHER_RATE = 16000
PATCH_SAMPLES = 15600  # 0.975 s at 16 kHz: YAMNet's input
PATCH_HOP = 7680  # 0.48 s: YAMNet's own patch hop
TEACHER_WINDOW = WINDOW_SAMPLES * TEACHER_RATE // SAMPLE_RATE  # one 4 s window at 16 kHz: 64,000
EMBEDDING_TENSOR = "yamnet_frames/global_average_pooling2d/Mean"
EMBEDDING_DIM = 1024
N_SCORES = 521
HEAD_C = 0.01  # logistic-regression strength measured in shared/teacher/README.md (0.725 fold-wise)


class Teacher:
    """YAMNet through the TFLite interpreter: 4 s views in, pooled (embedding, scores) out."""

    def __init__(self, path: str | Path = TEACHER_FILE, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise SedError("the teacher needs ai-edge-litert: pip install 'realtime-sed[train]'") from exc
        path = Path(path)
        if not path.is_file():
            raise SedError(f"{path}: teacher model not found")
        import warnings

        with warnings.catch_warnings():  # preserving tensors is how the embedding is read
            warnings.simplefilter("ignore")
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                           experimental_preserve_all_tensors=True)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.scores = self.interpreter.get_output_details()[0]["index"]
        by_name = {d["name"]: d["index"] for d in self.interpreter.get_tensor_details()}
        if EMBEDDING_TENSOR not in by_name:
            raise SedError(f"{path}: no tensor {EMBEDDING_TENSOR!r}; is this YAMNet?")
        self.embedding = by_name[EMBEDDING_TENSOR]

    def patches(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch embeddings [p, 1024] and scores [p, 521] of 16 kHz audio."""
        if len(audio16k) < PATCH_SAMPLES:
            audio16k = np.pad(audio16k, (0, PATCH_SAMPLES - len(audio16k)))
        starts = range(0, len(audio16k) - PATCH_SAMPLES + 1, PATCH_HOP)
        emb = np.empty((len(starts), EMBEDDING_DIM), np.float32)
        scores = np.empty((len(starts), N_SCORES), np.float32)
        for i, s in enumerate(starts):
            self.interpreter.set_tensor(self.input, audio16k[None, s : s + PATCH_SAMPLES])
            self.interpreter.invoke()
            emb[i] = self.interpreter.get_tensor(self.embedding)[0]
            scores[i] = self.interpreter.get_tensor(self.scores)[0]
        return emb, scores

    def __call__(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 22,050 Hz view -> (embedding max over patches [1024], scores max over patches [521])."""
        return self.pooled(to_teacher_rate(audio))

    def pooled(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """16 kHz audio -> (embedding, scores), each the max over its patches."""
        emb, scores = self.patches(np.asarray(audio16k, np.float32))
        return emb.max(axis=0), scores.max(axis=0)


class OnnxTeacher(Teacher):
    """Any teacher exported to ONNX with YAMNet's interface: input [1, 15600] 16 kHz audio, outputs
    `scores` [1, 521] and `embedding` [1, 1024]. It lets a test run the whole pipeline with a tiny
    stand-in, and lets a user bring another pretrained model."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = {o.name for o in self.session.get_outputs()}
        if not {"scores", "embedding"} <= names:
            raise SedError(f"{path}: an ONNX teacher needs outputs 'scores' and 'embedding'")
        self.input_name = self.session.get_inputs()[0].name

    def patches(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(audio16k) < PATCH_SAMPLES:
            audio16k = np.pad(audio16k, (0, PATCH_SAMPLES - len(audio16k)))
        starts = range(0, len(audio16k) - PATCH_SAMPLES + 1, PATCH_HOP)
        outs = [self.session.run(["embedding", "scores"],
                                 {self.input_name: audio16k[None, s : s + PATCH_SAMPLES]}) for s in starts]
        return (np.concatenate([o[0] for o in outs]).astype(np.float32),
                np.concatenate([o[1] for o in outs]).astype(np.float32))


def load_teacher(path: str | Path, threads: int = 1) -> Teacher:
    """YAMNet's TFLite file, or an ONNX teacher with the same interface."""
    path = Path(path)
    if not path.is_file():
        raise SedError(f"{path}: teacher model not found")
    return OnnxTeacher(path, threads) if path.suffix == ".onnx" else Teacher(path, threads)


def to_teacher_rate(audio: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(np.asarray(audio, np.float32), SAMPLE_RATE, TEACHER_RATE).astype(np.float32)


# ---------------------------------------------------------------- the head


@dataclass(frozen=True)
class TeacherHead:
    """Standardisation + multinomial logistic regression on pooled embeddings, as plain arrays."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [classes, 1024]
    intercept: np.ndarray  # [classes]

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        z = (np.asarray(embeddings, np.float32) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept

    def probabilities(self, embeddings: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        z = self.logits(embeddings) / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_head(embeddings: np.ndarray, labels: np.ndarray, train_idx, c: float = HEAD_C,
             seed: int = 0) -> TeacherHead:
    """Fits the head on the rows `train_idx` only; every other row is never read.

    Takes the whole array and the training indices (rather than a pre-sliced array) so the one
    place that decides what a head may see is here, and a test can check that rows outside
    `train_idx` cannot change it.
    """
    from sklearn.linear_model import LogisticRegression

    idx = np.asarray(train_idx, dtype=np.int64)
    if len(idx) == 0:
        raise SedError("the teacher head needs training clips")
    x = np.asarray(embeddings[idx], np.float64)
    y = np.asarray(labels)[idx]
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    lr.fit((x - mean) / scale, y)
    n_classes = int(np.max(labels)) + 1
    coef = np.zeros((n_classes, x.shape[1]), np.float32)
    intercept = np.full(n_classes, -1e4, np.float32)  # a class absent from training is never predicted
    coef[lr.classes_] = lr.coef_
    intercept[lr.classes_] = lr.intercept_
    return TeacherHead(mean.astype(np.float32), scale.astype(np.float32), coef, intercept)


def head_accuracy(head: TeacherHead, embeddings: np.ndarray, labels: np.ndarray, idx) -> float:
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return float("nan")
    pred = head.logits(np.asarray(embeddings[idx])).argmax(axis=1)
    return float((pred == np.asarray(labels)[idx]).mean())


# ---------------------------------------------------------------- which head: measured


HEAD_CANDIDATES = ("linear C=0.001", "linear C=0.003", f"linear C={HEAD_C:g}", "linear C=0.03", "linear C=0.1",
                   "mlp 256 alpha=0.001", "mlp 256 alpha=0.1", "mlp 256 alpha=1")


def fit_candidate(name: str, embeddings: np.ndarray, labels: np.ndarray, train_idx, seed: int = 0):
    """A head of HEAD_CANDIDATES fitted on `train_idx` only; returns a function rows -> predicted class."""
    idx = np.asarray(train_idx, dtype=np.int64)
    if name.startswith("linear C="):
        head = fit_head(embeddings, labels, idx, c=float(name.split("=")[1]), seed=seed)
        return lambda rows: head.logits(np.asarray(embeddings[rows])).argmax(axis=1)
    if name.startswith("mlp 256 alpha="):
        from sklearn.neural_network import MLPClassifier

        x = np.asarray(embeddings[idx], np.float32)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        mlp = MLPClassifier((256,), alpha=float(name.split("=")[1]), max_iter=300, early_stopping=True,
                            random_state=seed).fit((x - mean) / scale, np.asarray(labels)[idx])
        return lambda rows: mlp.predict((np.asarray(embeddings[rows], np.float32) - mean) / scale)
    raise SedError(f"no teacher head named {name!r} (heads: {', '.join(HEAD_CANDIDATES)})")


def compare_heads(embeddings: np.ndarray, labels: np.ndarray, parts: dict, names=HEAD_CANDIDATES,
                  seed: int = 0) -> dict:
    """Each candidate head per fold: fitted on that fold run's training rows, scored on its
    validation rows (where a choice may be made) and its test rows (reported, never chosen on).
    `parts` is {fold: (train_rows, val_rows, test_rows)}. Returns {"folds": {fold: {name: {val, test}}},
    "mean": {name: {val, test}}, "best_on_val": the best mean validation ACC}."""
    labels = np.asarray(labels)
    folds = {}
    for fold, (train_rows, val_rows, test_rows) in parts.items():
        folds[fold] = {}
        for name in names:
            predict = fit_candidate(name, embeddings, labels, train_rows, seed)
            folds[fold][name] = {part: float(np.mean(predict(np.asarray(rows)) == labels[np.asarray(rows)]))
                                 for part, rows in (("val", val_rows), ("test", test_rows))}
    mean = {name: {part: float(np.mean([folds[f][name][part] for f in folds])) for part in ("val", "test")}
            for name in names}
    return {"folds": folds, "mean": mean, "best_on_val": max(names, key=lambda n: mean[n]["val"])}
