"""Distillation from the teacher over cached views, and outlier exposure on negatives.

Used by `train.loop` when a run has `views > 0`. Each epoch draws one view of every training clip
and a share of negative views; the loss on a batch is

    (1 - distill) * CE(label)  +  distill * T^2 * KL(teacher_T || student_T)      on clip views
    + negatives * CE(uniform)                                                       on negative views
    + embed_weight * MSE(aux(hidden), teacher embedding, standardised)              on every view

The auxiliary head reads the 100-unit dense layer and exists only while training: the exported
network is Table 1's, unchanged.

With `view_mixup`, a share of the clip views in each batch is mixed with another clip view of the
same batch in the power domain, and every target is mixed the same way: the label's cross-entropy
and the teacher's probabilities are weighted by each view's share of the mixture's energy. Fresh
mixtures every epoch give the student far more inputs than the bank's fixed views, without running
the teacher again (Beyer et al. 2022 mix the teacher's inputs; mixing its targets is the cheap
stand-in). Mixed views skip the embedding regression: the embedding of a mixture is no mixture of
embeddings.

With `freq_mixstyle`, a share of the views in each batch (clips and negatives) takes on another
view's recording colour: Freq-MixStyle (Schmid et al., CP-JKU's DCASE 2022-23 systems, after Zhou
et al.'s MixStyle). Each mel band is normalised by its mean and standard deviation over the
window's frames, then given a Beta(0.4, 0.4) mix of its own and another view's statistics. A
microphone, a room and a recording chain change those per-band statistics far more than they
change what the sound is, and the test folds are recordings from other microphones and rooms.
Targets are left alone: the label and the teacher's view of the sound do not depend on its colour.

With a `teacher` in `DistillData` (`--mixup-teacher`) the stand-in goes: the teacher hears each
mixture's waveform (the two views' 16 kHz audio, mixed with the same power gains as their
log-mels), and its probabilities and embedding of that mixture are the mixed view's targets, the
embedding regression included. That is the consistent teaching of Beyer et al., for 18-22 ms of
CPU per mixed view measured beside two trainings (YAMNet's 7 patches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime_sed.errors import SedError
from train.architectures import DENSE_UNITS
from train.data import SILENCE_DB
from train.teacher import EMBEDDING_DIM, HEAD_C, TeacherHead, fit_head, head_accuracy
from train.views import ViewBank


@dataclass
class DistillData:
    bank: ViewBank
    head: TeacherHead
    teacher_probs: torch.Tensor  # [rows, 10]; rows of negatives are unused
    embed_targets: torch.Tensor  # [rows, 1024] standardised teacher embeddings
    negative_rows: np.ndarray  # bank rows of negatives this run may train on
    teacher_report: dict  # the head's accuracy on the run's parts, and its test predictions
    embed_mean: np.ndarray  # [1024] what standardises a teacher embedding (training clips' statistics)
    embed_std: np.ndarray
    teacher: object | None = None  # a `train.teacher.Teacher` that hears mixtures; needs bank.audio16k


def standardised(embeddings: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Teacher embeddings as the auxiliary head regresses them: scaled by the training clips' statistics."""
    return (np.asarray(embeddings, np.float32) - mean) / std


def clean_rows(bank: ViewBank, clip_idx) -> np.ndarray:
    return np.asarray(clip_idx, dtype=np.int64) * bank.n_views


def prepare(bank: ViewBank, train_idx: list[int], val_idx: list[int],
            test_idx: list[int], kept_out: int | None, temperature: float, head_views: str,
            seed: int, teacher=None) -> DistillData:
    """Fits the teacher's head on this run's training clips only, and labels every view with it.
    `kept_out`: the fold group whose negatives the run never trains on (a fold-wise run's test fold,
    or a final model's calibration group). `teacher`: also hear each mixture of views while training
    (needs the bank's audio)."""
    if teacher is not None and bank.audio16k is None:
        raise SedError("the teacher can hear mixtures only of a bank built with its audio")
    emb = bank.embeddings
    view_labels = np.asarray(bank.label)
    if head_views == "clean":
        fit_rows = clean_rows(bank, train_idx)
    elif head_views == "all":
        fit_rows = (np.asarray(train_idx)[:, None] * bank.n_views + np.arange(bank.n_views)).ravel()
    else:
        raise SedError(f"head views {head_views!r}: choose clean or all")
    head = fit_head(emb, view_labels, fit_rows, seed=seed)
    probs = np.concatenate([head.probabilities(emb[s : s + 4096], temperature)
                            for s in range(0, len(view_labels), 4096)])
    e = np.asarray(emb[clean_rows(bank, train_idx)], np.float32)  # standardise by training clips
    mean, std = e.mean(axis=0), e.std(axis=0) + 1e-3
    targets = np.concatenate([standardised(emb[s : s + 4096], mean, std) for s in range(0, len(view_labels), 4096)])
    negatives = np.flatnonzero(view_labels < 0)
    if kept_out is not None:  # this run never trains on the kept-out group's negatives
        negatives = negatives[np.asarray(bank.group)[negatives] != kept_out]
    report = {
        "head": f"standardised LogisticRegression(C={HEAD_C}) on YAMNet's max-pooled 1024-d embedding, "
                f"fitted on the {head_views} views of the {len(train_idx)} training clips only",
        "train_acc": head_accuracy(head, emb, view_labels, clean_rows(bank, train_idx)),
        "val_acc": head_accuracy(head, emb, view_labels, clean_rows(bank, val_idx)),
        "test_acc": head_accuracy(head, emb, view_labels, clean_rows(bank, test_idx)),
        "test_predictions": (head.logits(np.asarray(emb[clean_rows(bank, test_idx)])).argmax(1).tolist()
                             if len(test_idx) else []),
        "train_predictions": head.logits(np.asarray(emb[clean_rows(bank, train_idx)])).argmax(1).tolist(),
    }
    return DistillData(bank, head, torch.from_numpy(probs), torch.from_numpy(targets.astype(np.float32)),
                       negatives, report, mean, std, teacher)


def draw_epoch(data: DistillData, train_idx: list[int], negative_share: float,
               gen: torch.Generator) -> torch.Tensor:
    """Bank rows for one epoch: one random view of each training clip, plus negative views."""
    k = data.bank.n_views
    clips = torch.as_tensor(train_idx) * k + torch.randint(k, (len(train_idx),), generator=gen)
    n_neg = int(round(negative_share * len(train_idx))) if len(data.negative_rows) else 0
    if n_neg:
        pick = torch.randint(len(data.negative_rows), (n_neg,), generator=gen)
        clips = torch.cat([clips, torch.from_numpy(data.negative_rows)[pick]])
    return clips[torch.randperm(len(clips), generator=gen)]


def hidden_and_logits(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The CNN's 100-unit dense activations and its logits (CNN.classifier: flatten, dropout,
    dense 100, ReLU, dense 10)."""
    h = model.classifier[:4](model.features(model.norm(x)))
    return h, model.classifier[4](h)


def make_aux_head() -> nn.Module:
    """Training-only: regresses the teacher's 1024-d embedding from the 100-unit layer."""
    return nn.Linear(DENSE_UNITS, EMBEDDING_DIM)


FREQ_MIXSTYLE_ALPHA = 0.4  # Beta(α, α) weight of a view's own band statistics (Schmid et al.'s α)


def freq_mixstyle(x: torch.Tensor, prob: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-colours a share `prob` of the log-mels x [n, frames, mels] (dB): each chosen view's bands
    are normalised by their own mean and std over frames, then scaled and shifted by a mix
    λ·own + (1 - λ)·partner's of those statistics, λ ~ Beta(α, α), the partner another view of x.
    Returns the new log-mels and which views were chosen."""
    n = x.shape[0]
    chosen = (torch.rand(n, generator=gen) < prob) if n > 1 else torch.zeros(n, dtype=torch.bool)
    if not chosen.any():
        return x, chosen
    others = torch.randint(n - 1, (n,), generator=gen)
    others = others + (others >= torch.arange(n)).long()  # any view but itself
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=gen)))
    lam = torch.from_numpy(rng.beta(FREQ_MIXSTYLE_ALPHA, FREQ_MIXSTYLE_ALPHA, n).astype(np.float32))
    rows = torch.nonzero(chosen).flatten()
    mu = x.mean(dim=1, keepdim=True)  # [n, 1, mels]
    sig = (x.var(dim=1, keepdim=True) + 1e-6).sqrt()
    lam = lam[rows].to(x.device)[:, None, None]
    partner = others[rows].to(x.device)
    rows = rows.to(x.device)
    mu_mix = lam * mu[rows] + (1 - lam) * mu[partner]
    sig_mix = lam * sig[rows] + (1 - lam) * sig[partner]
    out = x.clone()
    out[rows] = torch.clamp((x[rows] - mu[rows]) / sig[rows] * sig_mix + mu_mix, min=float(SILENCE_DB))
    return out, chosen


@dataclass
class Mixture:
    """Which clip views of a batch were mixed: view i with view `partner[i]`, holding `share[i]` of
    the mixture's energy (share 1 and partner i for a view left alone)."""

    partner: torch.Tensor  # [n] long
    share: torch.Tensor  # [n] float
    mixed: torch.Tensor  # [n] bool
    gain: torch.Tensor  # [n] float: view i's power gain in the mixture (its partner's is 1 - gain)


def mix_views(x: torch.Tensor, prob: float, gen: torch.Generator) -> tuple[torch.Tensor, Mixture]:
    """Mixes a share `prob` of the log-mels x [n, frames, mels] (dB) with another view of x, in the
    power domain: gains w and 1 - w, w uniform in [0.2, 0.8]. Returns the new log-mels and the
    mixture, whose energy shares weight the targets."""
    n = x.shape[0]
    partner = torch.arange(n)
    share = torch.ones(n)
    mixed = (torch.rand(n, generator=gen) < prob) if n > 1 else torch.zeros(n, dtype=torch.bool)
    if not mixed.any():
        return x, Mixture(partner, share, mixed, share.clone())
    others = torch.randint(n - 1, (n,), generator=gen)
    others = others + (others >= torch.arange(n)).long()  # any view but itself
    partner = torch.where(mixed, others, partner)
    w = (0.2 + 0.6 * torch.rand(n, generator=gen)).to(x.device)
    # float32 exp, not float64 `10 ** x`: the mixing of 32 views takes 7 ms instead of 58 (one thread),
    # and its log-mels differ by at most 8e-6 dB
    power = torch.exp(x.float() * (math.log(10.0) / 10))
    energy = power.sum(dim=(1, 2), dtype=torch.float64)
    other = partner.to(x.device)
    rows = torch.nonzero(mixed).flatten().to(x.device)  # only these are mixed
    mix = w[rows, None, None] * power[rows] + (1 - w[rows])[:, None, None] * power[other[rows]]
    out = x.clone()
    out[rows] = (10 * torch.log10(mix)).to(x.dtype)
    ea, eb = w * energy, (1 - w) * energy[other]
    share = torch.where(mixed, (ea / (ea + eb)).float().cpu(), share)
    return torch.clamp(out, min=float(SILENCE_DB)), Mixture(partner, share, mixed, torch.where(mixed, w.cpu(), 1.0))


def hear_mixtures(data: DistillData, rows: np.ndarray, mixture: Mixture,
                  temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's (probabilities [m, 10], standardised embeddings [m, 1024]) of the m mixed views
    among bank rows `rows`, each heard as a waveform: sqrt(gain) * its view + sqrt(1 - gain) * its
    partner's, the power gains `mix_views` gave their log-mels."""
    audio, embeddings = data.bank.audio16k, []
    for i in torch.nonzero(mixture.mixed).flatten().tolist():
        gain, partner = float(mixture.gain[i]), int(mixture.partner[i])
        wave = (math.sqrt(gain) * np.asarray(audio[rows[i]], np.float32)
                + math.sqrt(1.0 - gain) * np.asarray(audio[rows[partner]], np.float32))
        embeddings.append(data.teacher.pooled(wave)[0])
    emb = np.stack(embeddings)
    probs = data.head.probabilities(emb, temperature)
    return torch.from_numpy(probs), torch.from_numpy(standardised(emb, data.embed_mean, data.embed_std))


def batch_loss(model, aux: nn.Module | None, data: DistillData, rows: torch.Tensor, cfg,
               device, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, logits, labels) of a batch of bank rows; labels are -1 on negative views."""
    order = np.sort(rows.numpy())  # sorted reads from the memory-mapped bank
    x = torch.from_numpy(np.asarray(data.bank.logmels[order], np.float32)).to(device)
    idx = torch.from_numpy(order)
    y = torch.from_numpy(np.asarray(data.bank.label)[order]).to(device)
    is_clip = y >= 0
    clip_pos = torch.nonzero(is_clip.cpu()).flatten()
    mixture = None
    if getattr(cfg, "view_mixup", 0.0) and gen is not None and len(clip_pos) > 1:
        mixed_x, mixture = mix_views(x[clip_pos.to(device)], cfg.view_mixup, gen)
        x = x.clone()
        x[clip_pos.to(device)] = mixed_x
    if getattr(cfg, "freq_mixstyle", 0.0) and gen is not None:
        x, _ = freq_mixstyle(x, cfg.freq_mixstyle, gen)
    heard = None  # the teacher's targets for the mixed views, when it hears them
    if mixture is not None and data.teacher is not None and mixture.mixed.any():
        heard = hear_mixtures(data, order[clip_pos.numpy()], mixture, cfg.temperature)
    x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
    h, logits = hidden_and_logits(model, x)
    loss = torch.zeros((), device=device)
    if is_clip.any():
        lc, yc = logits[is_clip], y[is_clip]
        if mixture is None:
            ce = F.cross_entropy(lc, yc, label_smoothing=cfg.label_smoothing)
        else:
            s = mixture.share.to(device)
            ce_a = F.cross_entropy(lc, yc, label_smoothing=cfg.label_smoothing, reduction="none")
            ce_b = F.cross_entropy(lc, yc[mixture.partner.to(device)], label_smoothing=cfg.label_smoothing,
                                   reduction="none")
            ce = (s * ce_a + (1 - s) * ce_b).mean()
        loss = loss + (1 - cfg.distill) * ce
        if cfg.distill:
            t = cfg.temperature
            teacher = data.teacher_probs[idx].to(device)[is_clip]
            if heard is not None:
                teacher = teacher.clone()
                teacher[mixture.mixed.to(device)] = heard[0].to(device)
            elif mixture is not None:
                s = mixture.share.to(device)[:, None]
                teacher = s * teacher + (1 - s) * teacher[mixture.partner.to(device)]
            kd = F.kl_div(F.log_softmax(lc / t, dim=1), teacher, reduction="batchmean") * t * t
            loss = loss + cfg.distill * kd
    if cfg.negatives and (~is_clip).any():
        oe = -F.log_softmax(logits[~is_clip], dim=1).mean(dim=1)  # cross-entropy to uniform
        loss = loss + cfg.negatives * oe.mean()
    if aux is not None and cfg.embed_weight:
        keep = torch.ones(len(y), dtype=torch.bool)
        targets = data.embed_targets[idx]
        if heard is not None:  # the mixture's own embedding
            targets[clip_pos[mixture.mixed]] = heard[1]
        elif mixture is not None:
            keep[clip_pos[mixture.mixed]] = False
        if keep.any():
            k = keep.to(device)
            loss = loss + cfg.embed_weight * F.mse_loss(aux(h[k]), targets[keep].to(device))
    return loss, logits, y


def train_epoch(model, aux, data: DistillData, train_idx: list[int], cfg, device, optimizer,
                scheduler, gen: torch.Generator, progress=None) -> tuple[float, float]:
    """One pass over this epoch's views; returns the mean loss and the accuracy on clip views."""
    model.train()
    if aux is not None:
        aux.train()
    rows = draw_epoch(data, train_idx, cfg.negative_share if cfg.negatives else 0.0, gen)
    total, correct, clips, seen = 0.0, 0, 0, 0
    task = progress.add_task("train (views)", total=len(rows)) if progress else None
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        loss, logits, y = batch_loss(model, aux, data, batch, cfg, device, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        seen += len(batch)
        mask = y >= 0
        correct += (logits.argmax(1)[mask] == y[mask]).sum().item()
        clips += int(mask.sum())
        if progress:
            progress.update(task, advance=len(batch),
                            description=f"train (views) loss {total / seen:.3f} acc {correct / max(clips, 1):.3f}")
    if scheduler is not None:
        scheduler.step()
    if progress:
        progress.remove_task(task)
    return total / max(seen, 1), correct / max(clips, 1)
