"""The teacher, its per-run head, the view bank, negatives, distillation and threshold calibration.

A tiny stand-in teacher (a real ONNX graph with YAMNet's interface, run by ONNX Runtime) lets the
whole `train --views --distill --negatives` path run in seconds on generated data; one test runs
the real YAMNet on real clips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from onnx import TensorProto, helper

from realtime_sed.constants import CLASSES, SAMPLE_RATE
from realtime_sed.errors import SedError
from tests.conftest import REPO, SHARED_DATA, run_cli, write_metadata
from train import distill
from train.calibrate import choose_thresholds, target_recall, with_thresholds
from train.data import fold_split, read_metadata
from train.negatives import HELD_OUT_KINDS, synthetic_negatives
from train.teacher import (EMBEDDING_DIM, N_SCORES, PATCH_SAMPLES, TEACHER_WINDOW, compare_heads, fit_head,
                           load_teacher)
from train.views import ViewBank, ViewSettings, build_views, clip_view, fold_group, view_audio

YAMNET = REPO.parent / "shared" / "teacher" / "yamnet.tflite"
ESC = REPO.parent / "shared" / "data" / "ESC-50-other"


def standin_teacher(path: Path) -> Path:
    """YAMNet's interface in a few ONNX nodes: mean |x| of 60 chunks of the 0.975 s patch, a fixed
    random projection to 1024 (the embedding), and sigmoids of a second one (521 scores)."""
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [60, EMBEDDING_DIM],
                            rng.standard_normal((60, EMBEDDING_DIM)).astype(np.float32).ravel())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [EMBEDDING_DIM, N_SCORES],
                            (rng.standard_normal((EMBEDDING_DIM, N_SCORES)) * 0.03).astype(np.float32).ravel())
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 60, PATCH_SAMPLES // 60])
    nodes = [helper.make_node("Reshape", ["audio", "shape"], ["chunks"]),
             helper.make_node("Abs", ["chunks"], ["mag"]),
             helper.make_node("ReduceMean", ["mag"], ["level"], axes=[2], keepdims=0),
             helper.make_node("MatMul", ["level", "w1"], ["embedding"]),
             helper.make_node("MatMul", ["embedding", "w2"], ["logits"]),
             helper.make_node("Sigmoid", ["logits"], ["scores"])]
    graph = helper.make_graph(nodes, "standin", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, PATCH_SAMPLES])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, EMBEDDING_DIM]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, N_SCORES])],
                              initializer=[w1, w2, shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def tone_dataset(root: Path) -> Path:
    """UrbanSound8K's layout with one tone frequency per class (2 recordings of 2 clips each,
    folds 1 and 2 alternating), so a head and a student can both learn it."""
    rows = []
    t = np.arange(int(2.5 * SAMPLE_RATE)) / SAMPLE_RATE
    for label in range(len(CLASSES)):
        for rec in range(2):
            for part in range(2):
                fold = 1 + rec
                name = f"{100 * label + rec}-{label}-0-{part}.wav"
                x = 0.3 * np.sin(2 * np.pi * (200 + 150 * label) * t * (1 + 0.01 * part))
                (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
                sf.write(root / "audio" / f"fold{fold}" / name, x.astype(np.float32), SAMPLE_RATE)
                rows.append([name, 100 * label + rec, 0, 2.5, 1, fold, label, CLASSES[label]])
    return write_metadata(root, rows)


def esc_folder(root: Path) -> Path:
    """ESC-50-other's layout: 5 s clips of 5 categories (noise bursts, clicks, hums)."""
    rng = np.random.default_rng(1)
    (root / "audio").mkdir(parents=True)
    rows = []
    for k, cat in enumerate(["wind", "cow", "frog", "hen", "rooster"]):
        for take in "AB":
            name = f"4-{1000 + k}-{take}-{k}.ogg"
            sf.write(root / "audio" / name, (0.1 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32),
                     SAMPLE_RATE)
            rows.append([name, 4, k, cat, False, 1000 + k, take])
    with open(root / "meta.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        w.writerows(rows)
    return root


# ---------------------------------------------------------------- the head


def test_a_fold_wise_head_never_sees_its_test_fold(tmp_path):
    """Rows of the test fold may be anything: the head and the student's targets do not change."""
    clips, _ = read_metadata(tone_dataset(tmp_path / "us"))
    split = fold_split(clips, test_fold=1, seed=0)
    rng = np.random.default_rng(0)
    labels = np.array([c.label for c in clips])
    k = 2
    emb = rng.standard_normal((len(clips) * k + 6, EMBEDDING_DIM)).astype(np.float16)
    emb[: len(clips) * k] += np.repeat(np.eye(len(CLASSES), EMBEDDING_DIM)[labels] * 3, k, axis=0).astype(np.float16)
    group = np.concatenate([np.repeat([fold_group(c.fold) for c in clips], k), [1] * 2 + [2] * 2 + [0] * 2])
    bank_label = np.concatenate([np.repeat(labels, k), [-1] * 6])

    def bank(e):
        return ViewBank(np.zeros((len(e), 1, 1), np.float16), e, np.zeros((len(e), N_SCORES), np.float16),
                        bank_label, group, len(clips), k)

    a = distill.prepare(bank(emb), split.train, split.val, split.test, 1, 1.0, "all", 0)
    poisoned = emb.copy()
    test_rows = (np.asarray(split.test)[:, None] * k + np.arange(k)).ravel()
    poisoned[test_rows] = rng.standard_normal((len(test_rows), EMBEDDING_DIM)) * 100
    b = distill.prepare(bank(poisoned), split.train, split.val, split.test, 1, 1.0, "all", 0)
    np.testing.assert_array_equal(a.head.coef, b.head.coef)
    np.testing.assert_array_equal(a.head.mean, b.head.mean)
    train_rows = (np.asarray(split.train)[:, None] * k + np.arange(k)).ravel()
    np.testing.assert_array_equal(a.teacher_probs[train_rows], b.teacher_probs[train_rows])
    assert a.teacher_report["train_acc"] == 1.0
    # Negatives of the test fold are held out of its training, to be predicted out of fold.
    assert set(group[a.negative_rows]) == {0, 2}
    # And the head is fitted on what it is told, so a head given the test rows does differ.
    leaky = fit_head(poisoned.astype(np.float32), np.repeat(labels, k), np.arange(len(clips) * k))
    assert not np.array_equal(leaky.coef, a.head.coef)


def test_views_mix_only_within_a_fold_group_and_view_zero_is_the_clean_clip(tmp_path):
    clips, _ = read_metadata(tone_dataset(tmp_path / "us"))
    from realtime_sed.audio import load_audio

    audio = [load_audio(c.path) for c in clips]
    settings = ViewSettings(n_views=3, mix_prob=1.0, background_prob=0.0)
    bank = build_views(audio, [c.fold for c in clips], [c.label for c in clips], [], settings,
                       tmp_path / "cache", standin_teacher(tmp_path / "t.onnx"), [c.name for c in clips],
                       progress=False)
    assert bank.logmels.shape[0] == len(clips) * 3 and bank.embeddings.shape[1] == EMBEDDING_DIM
    assert list(bank.group[::3]) == [fold_group(c.fold) for c in clips]
    # A mixed view of one clip with a partner holds energy the clean one lacks; view 0 is unmixed.
    from train.data import build_cache

    clean = build_cache(clips, tmp_path / "cache", progress=False).logmels
    np.testing.assert_allclose(bank.logmels[0].astype(np.float32), clean[0], atol=0.05)
    assert not np.allclose(bank.logmels[1].astype(np.float32), clean[0], atol=1.0)
    # Cached: a second call reads the same arrays without building.
    again = build_views(audio, [c.fold for c in clips], [c.label for c in clips], [], settings,
                        tmp_path / "cache", tmp_path / "t.onnx", [c.name for c in clips], progress=False)
    np.testing.assert_array_equal(np.asarray(again.embeddings), np.asarray(bank.embeddings))


def test_a_clip_view_with_no_partners_still_places_and_colours_the_clip():
    rng = np.random.default_rng(0)
    x = (0.2 * np.sin(np.arange(SAMPLE_RATE) / 5)).astype(np.float32)
    view = clip_view(x, [], [], rng, ViewSettings())
    assert view.shape == (4 * SAMPLE_RATE,) and np.isfinite(view).all() and np.abs(view).max() <= 1


def test_synthetic_negatives_hold_out_their_kinds_and_are_audible():
    negatives = synthetic_negatives(1, seed=3, kinds=("tones", "noise", "music", "clicks"))
    assert {n.kind for n in negatives if n.held_out} == set(HELD_OUT_KINDS)
    for n in negatives:
        assert len(n.audio) == 5 * SAMPLE_RATE and 1e-4 < np.abs(n.audio).max() <= 1


# ---------------------------------------------------------------- calibration


def test_thresholds_keep_negatives_under_the_false_rate_and_report_recall():
    rng = np.random.default_rng(0)
    neg = rng.dirichlet(np.ones(len(CLASSES)) * 0.3, size=2000)
    neg[:, 8] = np.clip(neg[:, 8] + 0.3, 0, 1)  # negatives that look like sirens
    labels = np.repeat(np.arange(len(CLASSES)), 20)
    clips = np.full((len(labels), len(CLASSES)), 0.02)
    clips[np.arange(len(labels)), labels] = 0.8
    th = choose_thresholds(neg, clips, labels, max_false_rate=0.01)
    assert th["on"]["siren"] > th["on"]["dog_bark"]
    for name in CLASSES:
        assert th["per_class"][name]["false_rate"] <= 0.01 or th["on"][name] == 0.95
        assert th["off"][name] == pytest.approx(max(th["on"][name] - 0.15, th["on"][name] / 2), abs=0.006)
    # Siren-like negatives push the siren threshold past the targets' 0.8: the price is visible.
    assert th["on"]["siren"] > 0.8 and th["per_class"]["siren"]["recall"] == 0.0
    assert th["per_class"]["dog_bark"]["recall"] == 1.0
    assert target_recall(clips, labels, th["on"]) == pytest.approx(0.9)
    assert target_recall(clips, labels, 0.9) == 0.0


def test_calibrated_thresholds_reach_the_runtime_through_the_card(tmp_path):
    from realtime_sed.classifier import OnnxClassifier

    on = {c: 0.9 for c in CLASSES}
    path = with_thresholds(REPO / "models" / "convdb.onnx", {"on": on, "off": {c: 0.75 for c in CLASSES}},
                           tmp_path / "convdb.onnx")
    assert OnnxClassifier(path).thresholds["on"] == on


def test_head_comparison_fits_on_training_rows_only_and_scores_each_part():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(len(CLASSES)), 30)
    emb = rng.standard_normal((len(labels), 32)).astype(np.float32)
    emb[np.arange(len(labels)), labels] += 6.0  # each class readable from one dimension
    order = rng.permutation(len(labels))
    parts = {1: (order[:210], order[210:240], order[240:])}
    names = ("linear C=0.01", "mlp 256 alpha=0.1")
    a = compare_heads(emb, labels, parts, names)
    poisoned = emb.copy()
    poisoned[order[210:]] = rng.standard_normal((len(labels) - 210, 32)) * 100  # validation and test rows
    b = compare_heads(poisoned, labels, parts, names)
    for name in names:
        assert a["folds"][1][name]["test"] >= 0.8 and a["folds"][1][name]["val"] >= 0.8
        assert b["folds"][1][name]["test"] < 0.5  # scored on the rows given, with the same fitted head
    assert a["best_on_val"] in names and set(a["mean"]) == set(names)
    with pytest.raises(SedError, match="no teacher head named"):
        compare_heads(emb, labels, parts, ("forest",))


def test_view_mixup_adds_powers_and_weights_targets_by_energy_share():
    gen = torch.Generator().manual_seed(0)
    loud = torch.full((1, 4, 3), -20.0)  # 10 dB above `quiet` in every bin
    quiet = torch.full((1, 4, 3), -30.0)
    x, mix = distill.mix_views(torch.cat([loud, quiet]), 1.0, gen)
    assert mix.mixed.all() and mix.partner.tolist() == [1, 0]
    for i, (mine, other) in enumerate(((-20.0, -30.0), (-30.0, -20.0))):
        # a view's energy share and the mixture's level follow from the gain w it was given
        share = float(mix.share[i])
        w = share * 10 ** (other / 10) / (share * 10 ** (other / 10) + (1 - share) * 10 ** (mine / 10))
        assert 0.2 - 1e-6 <= w <= 0.8 + 1e-6
        level = 10 * np.log10(w * 10 ** (mine / 10) + (1 - w) * 10 ** (other / 10))
        np.testing.assert_allclose(x[i].numpy(), level, atol=1e-4)
    assert float(mix.share[0]) > 0.5 > float(mix.share[1])  # the louder view holds more energy
    untouched, none = distill.mix_views(torch.cat([loud, quiet]), 0.0, gen)
    assert not none.mixed.any() and torch.equal(untouched, torch.cat([loud, quiet]))
    assert none.share.tolist() == [1.0, 1.0]


def test_freq_mixstyle_gives_chosen_views_a_mix_of_two_views_band_statistics():
    gen = torch.Generator().manual_seed(0)
    frames = torch.linspace(-1, 1, 50)[:, None]
    a = (-40.0 + 3.0 * frames * torch.ones(1, 4))[None]  # band mean -40 dB, spread 3 dB
    b = (-20.0 + torch.tensor([1.0, 2.0, 4.0, 8.0]) * frames)[None]  # mean -20 dB, spreads 1..8 dB
    x, chosen = distill.freq_mixstyle(torch.cat([a, b]), 1.0, gen)
    assert chosen.all()
    for i, (mine, other) in enumerate(((a, b), (b, a))):
        mu, sig = x[i].mean(dim=0), x[i].std(dim=0, correction=0)
        mine_mu, other_mu = mine[0].mean(dim=0), other[0].mean(dim=0)
        lam = float((mu[0] - other_mu[0]) / (mine_mu[0] - other_mu[0]))  # one weight for every band
        assert 0.0 <= lam <= 1.0
        torch.testing.assert_close(mu, lam * mine_mu + (1 - lam) * other_mu, atol=1e-3, rtol=0)
        torch.testing.assert_close(sig, lam * mine[0].std(dim=0, correction=0)
                                   + (1 - lam) * other[0].std(dim=0, correction=0), atol=1e-3, rtol=0)
        # the shape over frames is the view's own: a straight line in every band
        corr = torch.corrcoef(torch.stack([x[i][:, 2], frames[:, 0]]))[0, 1]
        assert corr > 0.999
    untouched, none = distill.freq_mixstyle(torch.cat([a, b]), 0.0, gen)
    assert not none.any() and torch.equal(untouched, torch.cat([a, b]))


def test_view_audio_is_each_clip_view_as_the_teacher_heard_it_when_the_bank_was_built(tmp_path):
    """The views are made again from the bank's seeds, not stored by the build: the teacher's
    embedding of each regenerated 16 kHz row is the one the bank holds for that row."""
    clips, _ = read_metadata(tone_dataset(tmp_path / "us"))
    from realtime_sed.audio import load_audio

    inputs = ([load_audio(c.path) for c in clips], [c.fold for c in clips], [c.label for c in clips], [],
              ViewSettings(n_views=3, mix_prob=1.0, background_prob=0.0), tmp_path / "cache",
              standin_teacher(tmp_path / "t.onnx"), [c.name for c in clips])
    bank = build_views(*inputs, workers=2, progress=False)
    audio = view_audio(*inputs, workers=2)
    assert audio.shape == (len(clips) * 3, TEACHER_WINDOW) and audio.dtype == np.float16
    teacher = load_teacher(tmp_path / "t.onnx")
    for row in range(len(audio)):
        emb = teacher.pooled(audio[row])[0]
        np.testing.assert_allclose(emb, np.asarray(bank.embeddings[row], np.float32), rtol=0.01, atol=0.01)
    assert not np.array_equal(audio[1], audio[2])  # each view its own
    built = sorted(p.name for p in (tmp_path / "cache").iterdir())
    np.testing.assert_array_equal(view_audio(*inputs), audio)  # built once, then read
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == built


def test_the_teacher_hears_each_mixture_with_the_gains_its_log_mels_were_given(tmp_path):
    """`hear_mixtures` labels mixed view i by the teacher on sqrt(g) * view i + sqrt(1 - g) * its
    partner's view, found through the batch's bank rows, and not by mixing the two views' targets."""
    rng = np.random.default_rng(3)
    n_rows, k = 2 * len(CLASSES), 2  # every class, two views each
    audio16k = (0.2 * rng.standard_normal((n_rows, TEACHER_WINDOW))).astype(np.float16)
    audio16k[::2] *= 4  # loud and quiet views, so the mixture's level matters
    teacher = load_teacher(standin_teacher(tmp_path / "t.onnx"))
    emb = np.stack([teacher.pooled(a)[0] for a in audio16k])
    labels = np.arange(n_rows) // k
    bank = ViewBank(np.zeros((n_rows, 1, 1), np.float16), emb.astype(np.float16),
                    np.zeros((n_rows, N_SCORES), np.float16), labels, np.zeros(n_rows, int), n_rows // k, k, audio16k)
    data = distill.prepare(bank, list(range(n_rows // k)), [], [], None, 1.0, "all", 0, teacher)
    rows = np.array([6, 1, 14, 3])  # a batch's clip views, as bank rows
    mixture = distill.Mixture(partner=torch.tensor([2, 1, 0, 0]), share=torch.tensor([0.7, 1.0, 0.4, 0.2]),
                              mixed=torch.tensor([True, False, True, True]),
                              gain=torch.tensor([0.3, 1.0, 0.5, 0.8]))
    probs, targets = distill.hear_mixtures(data, rows, mixture, temperature=1.0)
    assert probs.shape == (3, len(CLASSES)) and targets.shape == (3, EMBEDDING_DIM)
    for out, (i, gain) in enumerate(((0, 0.3), (2, 0.5), (3, 0.8))):
        partner = rows[int(mixture.partner[i])]
        wave = (np.sqrt(gain) * audio16k[rows[i]].astype(np.float32)
                + np.sqrt(1 - gain) * audio16k[partner].astype(np.float32))
        heard = teacher.pooled(wave)[0]
        np.testing.assert_allclose(probs[out].numpy(), data.head.probabilities(heard[None])[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(targets[out].numpy(), (heard - data.embed_mean) / data.embed_std,
                                   rtol=1e-4, atol=1e-4)
        mixed_targets = (float(mixture.share[i]) * data.teacher_probs[rows[i]]
                         + (1 - float(mixture.share[i])) * data.teacher_probs[partner])
        assert not np.allclose(probs[out].numpy(), mixed_targets.numpy(), atol=1e-3)
    with pytest.raises(SedError, match="built with its audio"):
        distill.prepare(ViewBank(*[getattr(bank, f) for f in ("logmels", "embeddings", "scores", "label", "group",
                                                              "n_clips", "n_views")]),
                        list(range(n_rows // k)), [], [], None, 1.0, "all", 0, teacher)


# ---------------------------------------------------------------- end to end


@pytest.mark.parametrize("mixup_teacher", [False, True], ids=["targets-mixed", "teacher-hears-mixtures"])
def test_train_with_views_distillation_and_negatives_end_to_end(tmp_path, mixup_teacher):
    data = tone_dataset(tmp_path / "us")
    esc = esc_folder(tmp_path / "esc")
    teacher = standin_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "run"
    r = run_cli("train", "--data", data, "--split", "fold", "--test-fold", "1", "--epochs", "2",
                "--views", "3", "--distill", "0.5", "--negatives", "0.5", "--embed-weight", "0.3",
                "--view-mixup", "0.5", "--teacher", teacher, "--esc-data", esc, "--synthetic-per-kind", "1",
                "--cache-dir", tmp_path / "cache", "--out", out, "--quiet", "--no-onnx", "--threads", "1",
                *(["--mixup-teacher"] if mixup_teacher else ["--freq-mixstyle", "0.5"]), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(p.name.endswith(".audio16k.npy") for p in (tmp_path / "cache").iterdir()) == mixup_teacher
    assert "teacher head" in r.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["epochs_run"] == 2
    assert 0 <= meta["teacher"]["test_acc"] <= 1 and len(meta["teacher"]["test_predictions"]) == len(meta["test"])
    card = json.loads((out / "convdb.json").read_text())
    assert "distillation α=0.5" in card["training"]["recipe"]
    assert card["training"]["config"]["negatives"] == 0.5
    assert card["training"]["config"]["view_mixup"] == 0.5
    assert card["training"]["config"]["mixup_teacher"] == mixup_teacher
    assert ("the teacher hears each mixture" in card["training"]["recipe"]) == mixup_teacher
    assert ("freq-mixstyle p=0.5" in card["training"]["recipe"]) != mixup_teacher
    metrics = json.loads((out / "metrics.json").read_text())  # the student beside its teacher, on the test clips
    assert metrics["teacher"]["test_acc"] == meta["teacher"]["test_acc"]
    assert 0.0 <= metrics["teacher"]["agreement"] <= 1.0
    fit = metrics["teacher"]["training_clips"]  # and on the clips it was taught on
    assert len(meta["teacher"]["train_predictions"]) == len(meta["train"])
    assert fit["teacher_acc"] == meta["teacher"]["train_acc"] and 0.0 <= fit["agreement"] <= 1.0
    if not mixup_teacher:  # a run from before run.json kept them: reevaluate fits the same head again
        del meta["teacher"]["train_predictions"]
        (out / "run.json").write_text(json.dumps(meta))
        r = run_cli("experiments", "reevaluate", out, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((out / "metrics.json").read_text())["teacher"]["training_clips"] == fit


def test_a_fold_wise_experiment_builds_its_bank_once_and_its_lanes_only_read_it(tmp_path):
    """`experiments foldwise` builds the recipe's bank in all its processes before the lanes start
    (`build_bank_once`); a training with the same views then finds it in the cache and builds nothing."""
    from train.experiments import build_bank_once
    from train.loop import TrainConfig

    data = tone_dataset(tmp_path / "us")
    esc = esc_folder(tmp_path / "esc")
    teacher = standin_teacher(tmp_path / "teacher.onnx")
    cache = tmp_path / "cache"
    cfg = TrainConfig(data=str(data), split="fold", test_fold=1, views=2, distill=0.5, teacher=str(teacher),
                      esc_data=str(esc), synthetic_per_kind=1, cache_dir=str(cache))
    build_bank_once(cfg, workers=2)
    banks = sorted(cache.glob("views-*.json"))
    assert len(banks) == 1 and not list(cache.glob("*.scratch.npy"))
    built = {p: p.stat().st_mtime_ns for p in cache.glob("views-*")}
    r = run_cli("train", "--data", data, "--split", "fold", "--test-fold", "1", "--epochs", "1", "--views", "2",
                "--distill", "0.5", "--teacher", teacher, "--esc-data", esc, "--synthetic-per-kind", "1",
                "--cache-dir", cache, "--out", tmp_path / "run", "--quiet", "--no-onnx", "--threads", "1",
                timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in cache.glob("views-*")} == built


def test_the_teacher_hearing_mixtures_needs_mixtures(tmp_path):
    r = run_cli("train", "--data", tone_dataset(tmp_path / "us"), "--split", "fold", "--test-fold", "1",
                "--views", "2", "--distill", "0.5", "--mixup-teacher", "--epochs", "1",
                "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--quiet")
    assert r.returncode != 0
    assert "--mixup-teacher needs --view-mixup" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("flags, message", [
    (["--freq-mixstyle", "0.4"], "--freq-mixstyle needs --views"),
    (["--views", "2", "--freq-mixstyle", "1.5"], "--freq-mixstyle 1.5: give a share from 0 to 1"),
], ids=["without-views", "out-of-range"])
def test_freq_mixstyle_is_refused_where_it_means_nothing(tmp_path, flags, message):
    r = run_cli("train", "--data", tone_dataset(tmp_path / "us"), "--split", "fold", "--test-fold", "1",
                *flags, "--epochs", "1", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--quiet")
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr


def test_views_are_refused_on_the_random_split(tmp_path):
    r = run_cli("train", "--data", tone_dataset(tmp_path / "us"), "--views", "2", "--epochs", "1",
                "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--quiet")
    assert r.returncode != 0
    assert "--views needs --split fold" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not YAMNET.exists() or not SHARED_DATA.exists(), reason="teacher or data not in ../shared")
def test_the_real_teacher_hears_real_clips():
    """YAMNet itself, on the first fold-1 clip of two classes: one of its AudioSet top 3 names the sound."""
    import csv as _csv

    names = [r["display_name"] for r in _csv.DictReader(open(YAMNET.with_name("yamnet_class_map.csv")))]
    expected = {"siren": {"Siren", "Civil defense siren", "Emergency vehicle", "Police car (siren)",
                          "Ambulance (siren)", "Fire engine, fire truck (siren)"},
                "dog_bark": {"Dog", "Bark", "Animal", "Domestic animals, pets", "Bow-wow", "Yip"}}
    from realtime_sed.audio import load_audio

    clips, _ = read_metadata(SHARED_DATA)
    teacher = load_teacher(YAMNET)
    for label, allowed in expected.items():
        clip = next(c for c in clips if CLASSES[c.label] == label and c.fold == 1)
        emb, scores = teacher(load_audio(clip.path))
        assert emb.shape == (EMBEDDING_DIM,) and np.isfinite(emb).all()
        top3 = {names[i] for i in np.argsort(scores)[-3:]}
        assert top3 & allowed, (label, clip.name, top3)


def test_the_false_alarm_budget_sets_the_share_of_negative_views_a_class_may_pass():
    from train.calibrate import FALSE_EVENTS_PER_HOUR, calibration_rules, view_rate_for_budget

    # 10 events an hour over 10 classes, each a sound that 8 windows see, among 7,200 windows an hour
    assert view_rate_for_budget(10.0) == pytest.approx(10 / 10 * 8 / 7200)
    assert view_rate_for_budget(20.0) == pytest.approx(2 * view_rate_for_budget(10.0))
    rules = calibration_rules()
    assert list(rules.values())[0] == view_rate_for_budget(FALSE_EVENTS_PER_HOUR) and 0.01 in rules.values()


def test_calibrate_a_fold_wise_folder_end_to_end(tmp_path):
    """`realtime-sed calibrate` on a fold run of a tiny distilled student: thresholds from each
    rule, the card's from the budget, and false events counted by the real classify per rule."""
    data = tone_dataset(tmp_path / "us")
    esc = esc_folder(tmp_path / "esc")
    teacher = standin_teacher(tmp_path / "teacher.onnx")
    folds = tmp_path / "convdt-folds-kd"
    for fold in (1,):
        r = run_cli("train", "--model", "convdt", "--data", data, "--split", "fold", "--test-fold", fold,
                    "--epochs", "1", "--views", "2", "--distill", "0.5", "--negatives", "0.5",
                    "--teacher", teacher, "--esc-data", esc, "--synthetic-per-kind", "1",
                    "--cache-dir", tmp_path / "cache", "--out", folds / f"fold{fold}", "--quiet", "--threads", "1",
                    timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("calibrate", folds, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "<- in the card" in r.stdout
    result = json.loads((folds / "calibration.json").read_text())
    first, second = result["rules"]
    assert result["rule"] == first and first.startswith("budget")
    assert result["thresholds"]["on"] == result["rules"][first]["on"]
    assert result["rules"][first]["max_false_rate"] < result["rules"][second]["max_false_rate"] == 0.01
    assert all(result["rules"][first]["on"][c] >= result["rules"][second]["on"][c] for c in CLASSES)  # stricter
    for rule in result["rules"].values():
        assert set(rule["per_fold"]) == {"1"}
        for f in rule["per_fold"].values():
            assert f["false_events_per_hour"] >= 0 and 0 <= f["recall"] <= 1
    for k, fold in result["folds"].items():  # the card's rule is the one each fold's "calibrated" figure uses
        assert fold["false_events_per_hour_calibrated"] == result["rules"][first]["per_fold"][k]["false_events_per_hour"]


def test_a_final_model_is_calibrated_on_negatives_it_never_trained_on_and_ships_its_own_thresholds(tmp_path):
    """`train --train-on-all --hold-out-negatives G` leaves group G's negatives out of training;
    `calibrate RUN` chooses the thresholds on them, counts false events with the real classify,
    and `ship` puts those thresholds in the card, the folds' beside them."""
    from collections import Counter

    from train.ship import distilled_sections
    from train.views import all_negatives

    data = tone_dataset(tmp_path / "us")
    esc = esc_folder(tmp_path / "esc")
    teacher = standin_teacher(tmp_path / "teacher.onnx")
    training = [n for n in all_negatives(esc, 1, 0) if not n.held_out]
    group, held = Counter(n.fold for n in training).most_common(1)[0]
    run = tmp_path / "convdb-all-kd"
    common = ["--data", data, "--views", "2", "--distill", "0.5", "--negatives", "0.5", "--teacher", teacher,
              "--esc-data", esc, "--synthetic-per-kind", "1", "--cache-dir", tmp_path / "cache", "--quiet",
              "--threads", "1", "--epochs", "1", "--train-on-all"]
    r = run_cli("train", *common, "--hold-out-negatives", group, "--out", run, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{2 * (len(training) - held)} negative views to draw from" in r.stdout  # 2 views each
    assert "held out for its thresholds" in json.loads((run / "convdb.json").read_text())["training"]["recipe"]

    r = run_cli("calibrate", run, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"chosen on {2 * held} views of fold group {group}'s negatives" in r.stdout
    own = json.loads((run / "calibration.json").read_text())
    assert own["negatives"]["views"] == 2 * held and own["rule"].startswith("budget")
    assert own["false_events_per_hour_calibrated"] == own["rules"][own["rule"]]["false_events_per_hour"] >= 0
    assert all(v["recall"] is None for v in own["thresholds"]["per_class"].values())  # every clip was trained on

    docs = REPO / "docs"
    record = docs / "calibration" / "convdb-kd-mixup-long.json"
    new = json.loads((docs / "foldwise" / "convdb-kd-mixup-long.json").read_text())
    current = json.loads((docs / "foldwise" / "convdb-kd-mixup-60.json").read_text())
    card = json.loads((REPO / "models" / "convdb.json").read_text())
    sections = distilled_sections(card, run, new, current, record, seed_difference=0.013)
    assert sections["thresholds"]["on"] == own["thresholds"]["on"]
    assert sections["calibration"]["thresholds_of_the_folds"] == json.loads(record.read_text())["thresholds"]["on"]
    assert sections["own_calibration"]["false_events_per_hour"] == own["false_events_per_hour_calibrated"]
    (run / "calibration.json").unlink()  # without its own, the card carries the folds' thresholds
    assert distilled_sections(card, run, new, current, record, 0.013)["thresholds"]["on"] == \
        json.loads(record.read_text())["thresholds"]["on"]


@pytest.mark.parametrize("flags, message", [
    (["--split", "fold", "--test-fold", "1"], "--hold-out-negatives goes with --train-on-all and --negatives"),
    (["--train-on-all", "--negatives", "0.5"], "--hold-out-negatives 4: give a fold group"),
])
def test_held_out_negatives_are_refused_where_they_mean_nothing(tmp_path, flags, message):
    r = run_cli("train", "--data", tone_dataset(tmp_path / "us"), "--views", "2", "--epochs", "1",
                "--hold-out-negatives", "1" if "fold" in flags else "4", *flags,
                "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--quiet")
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_distilled_card_comes_from_the_committed_records_once_the_fold_runs_are_gone(tmp_path):
    """Fold runs live in runs/ and may be gone by the time the final model has trained; the
    calibration record and the fold-wise summary in docs/ hold every per-fold figure the card shows,
    and the ship rule still refuses a recipe that does not beat the current one."""
    from train.ship import distilled_sections

    docs = REPO / "docs"
    record_path = docs / "calibration" / "convdb-kd-mixup-long.json"
    record = json.loads(record_path.read_text())
    new = json.loads((docs / "foldwise" / "convdb-kd-mixup-long.json").read_text())
    current = json.loads((docs / "foldwise" / "convdb-kd-mixup-60.json").read_text())
    card = json.loads((REPO / "models" / "convdb.json").read_text())
    run = tmp_path / "convdb-all"
    run.mkdir()
    head = "standardised LogisticRegression(C=0.01) on the clean views of the 2625 training clips only"
    (run / "run.json").write_text(json.dumps({"teacher": {"head": head}}))

    sections = distilled_sections(card, run, new, current, record_path, seed_difference=0.013)
    teacher = sections["teacher"]
    assert teacher["head"] == head and sorted(teacher["folds"], key=int) == ["1", "2", "3", "10"]
    for k, fold in teacher["folds"].items():
        assert fold["test_acc"] == new["folds"][k]["teacher_test_acc"] == record["folds"][k]["teacher_test_acc"]
        assert "val_acc" not in fold  # only a fold run holds it
    assert sections["thresholds"]["on"] == record["thresholds"]["on"]
    assert sections["calibration"]["command"] == record["command"]
    assert sections["ship_rule"]["gain"] == pytest.approx(new["acc_mean"] - current["acc_mean"])
    with pytest.raises(SedError, match="does not pass the ship rule"):
        distilled_sections(card, run, current, new, record_path, seed_difference=0.013)
