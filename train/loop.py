"""The training loop: read it top to bottom.

Settings live in `TrainConfig`, written to `config.json` in the run folder. Every epoch writes
`last.pt` (everything needed to resume) and, when validation loss improves, `best.pt` (the
checkpoint the paper keeps). Checkpoints hold only tensors and plain values, so they load with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from realtime_sed.constants import DATA_DIR, N_FRAMES
from realtime_sed.errors import SedError
from train import distill, views
from train.architectures import build_cnn, count_trainable
from train.teacher import load_teacher
from train.data import (SILENCE_DB, LogMelCache, Split, build_cache, content_frames, fold_split, random_split,
                        read_metadata)


NOT_FLAGS = ("cache_dir",)  # fields whose flag exists but never belongs in a recipe's command


@dataclass
class TrainConfig:
    model: str = "convdb"
    data: str = DATA_DIR
    out: str = "runs/convdb"
    split: str = "random"  # "random" (the paper's) or "fold" (official)
    test_fold: int | None = None
    val_fold: int | None = None
    seed: int = 0
    epochs: int = 200
    patience: int | None = 25  # epochs without a better validation loss before stopping
    batch_size: int = 32
    lr: float = 1e-3
    conv_dropout: float = 0.1
    dense_dropout: float = 0.5
    # Recipe beyond the paper (all off = the paper's recipe). Applied to cached log-mels, training only.
    time_shift: bool = False  # move short clips to a random place inside the 4 s window
    gain_db: float = 0.0  # random gain in [-gain_db, +gain_db]
    mix_prob: float = 0.0  # chance of mixing in another training clip as background noise
    spec_masks: int = 0  # SpecAugment: this many time masks and this many frequency masks
    label_smoothing: float = 0.0
    schedule: str = "constant"  # "constant" or "cosine"
    # Which checkpoint is the run's result (best.pt): "best", the lowest validation loss (the
    # paper's), or "last", the last epoch. It does not change training, so a finished run may switch.
    keep: str = "best"
    cache_dir: str = field(default_factory=lambda: os.environ.get("SED_CACHE", ".cache/realtime-sed"))
    device: str = "auto"
    threads: int | None = None
    train_on_all: bool = False  # final model: train on every clip for a fixed epoch count
    # Distillation and negatives (train.distill), on a bank of cached waveform views (train.views).
    views: int = 0  # augmented views per clip (view 0 clean); 0 = train on the clean log-mels
    teacher: str = "../shared/teacher/yamnet.tflite"
    head_views: str = "clean"  # which views of the training clips fit the teacher's head: clean|all
    distill: float = 0.0  # weight of the teacher's probabilities against the hard label
    temperature: float = 1.0
    embed_weight: float = 0.0  # auxiliary regression of the teacher's 1024-d embedding (training only)
    negatives: float = 0.0  # outlier-exposure weight on views of sounds that are none of the ten
    negative_share: float = 0.25  # negative views per epoch, as a share of the training clips
    view_mixup: float = 0.0  # share of clip views mixed with another, targets mixed alike (train.distill)
    mixup_teacher: bool = False  # the teacher hears each mixture instead of its targets being mixed
    freq_mixstyle: float = 0.0  # share of views given a mix of their own and another view's band statistics
    # A final model (train_on_all) never trains on the negatives of this fold group, so that
    # `realtime-sed calibrate RUN` can choose its own thresholds on sounds it has not learnt to reject.
    hold_out_negatives: int | None = None
    esc_data: str = "../shared/data/ESC-50-other"
    synthetic_per_kind: int = 40
    view_workers: int = 1  # processes that build the view bank (once; it is cached)

    def to_argv(self, always: tuple[str, ...] = ("model",)) -> list[str]:
        """The `realtime-sed train` flags that make this config: every field that differs from its
        default (and those in `always`), as `--field-name VALUE`; True booleans as bare flags.
        `tests/test_train_flags.py` holds every field to a flag of the same name."""
        argv: list[str] = []
        for f in fields(self):
            value, default = getattr(self, f.name), f.default if f.default is not MISSING else f.default_factory()
            if f.name not in always and (value == default or f.name in NOT_FLAGS):
                continue
            flag = "--" + f.name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not False and value is not None:
                argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return argv

    @property
    def recipe(self) -> str:
        """The recipe in words, as cards and results tables name it."""
        changes = (
            (self.time_shift, "time-shift"),
            (self.gain_db, f"gain±{self.gain_db:g}dB"),
            (self.mix_prob, f"mix p={self.mix_prob:g}"),
            (self.spec_masks, f"specaugment x{self.spec_masks}"),
            (self.label_smoothing, f"label-smoothing {self.label_smoothing:g}"),
            (self.schedule != "constant", f"{self.schedule} lr"),
            (self.views, f"{self.views} cached views per clip"),
            (self.distill, f"distillation α={self.distill:g} T={self.temperature:g}"),
            (self.head_views != "clean", f"the teacher's head fitted on {self.head_views} views"),
            (self.embed_weight, f"embedding regression β={self.embed_weight:g}"),
            (self.view_mixup, f"view mixup p={self.view_mixup:g} " + ("(the teacher hears each mixture)"
                                                                   if self.mixup_teacher else "(targets mixed alike)")),
            (self.freq_mixstyle, f"freq-mixstyle p={self.freq_mixstyle:g}"),
            (self.negatives, f"outlier exposure λ={self.negatives:g} on {self.negative_share:g} negatives"),
            (self.keep == "last", "last epoch kept"),
            (self.hold_out_negatives is not None,
             f"the negatives of fold group {self.hold_out_negatives} held out for its thresholds"),
            ((self.conv_dropout, self.dense_dropout) != (0.1, 0.5),
             f"dropout {self.conv_dropout:g} after each conv, {self.dense_dropout:g} before the dense layer"),
        )
        parts = [text for on, text in changes if on]
        return ", ".join(parts) or "paper (no augmentation)"


def view_bank(cfg: TrainConfig, cache: LogMelCache, workers: int) -> views.ViewBank:
    """The run's bank of views: read from the cache, or built there once in `workers` processes."""
    negatives = views.all_negatives(cfg.esc_data, cfg.synthetic_per_kind, cfg.seed)
    settings = views.ViewSettings(n_views=cfg.views, seed=cfg.seed)
    return views.bank_for(cache.clips, settings, negatives, cfg.cache_dir, cfg.teacher, workers,
                          with_audio=cfg.mixup_teacher)


def prepare_distillation(cfg: TrainConfig, cache: LogMelCache, split: Split) -> distill.DistillData:
    """The view bank (built once, cached) and the teacher's head fitted on this run's training part."""
    if cfg.split == "random" and not cfg.train_on_all:
        raise SedError("--views needs --split fold (or --train-on-all): views mix clips within a fold, "
                       "and a random split puts test clips in every fold")
    bank = view_bank(cfg, cache, cfg.view_workers)
    teacher = load_teacher(cfg.teacher) if cfg.mixup_teacher else None
    kept_out = cfg.test_fold if cfg.split == "fold" and not cfg.train_on_all else cfg.hold_out_negatives
    return distill.prepare(bank, split.train, split.val, split.test, kept_out,
                           cfg.temperature, cfg.head_views, cfg.seed, teacher)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_split(cfg: TrainConfig, cache: LogMelCache) -> Split:
    if cfg.train_on_all:
        everything = list(range(len(cache.clips)))
        return Split(everything, [], [], "all clips (final model)")
    if cfg.split == "random":
        return random_split(len(cache.clips), cfg.seed)
    if cfg.split == "fold":
        if cfg.test_fold is None:
            raise ValueError("--split fold needs --test-fold")
        return fold_split(cache.clips, cfg.test_fold, cfg.seed, cfg.val_fold)
    raise ValueError(f"unknown split {cfg.split!r}")


def augment(x: torch.Tensor, lengths: torch.Tensor, pool: torch.Tensor, cfg: TrainConfig,
            gen: torch.Generator) -> torch.Tensor:
    """Training-only changes to a batch of log-mels [b, frames, mels]; never in the exported graph."""
    b = x.shape[0]
    dev = x.device
    if cfg.time_shift:
        room = N_FRAMES - torch.from_numpy(content_frames(lengths.numpy()))
        shifts = (torch.rand(b, generator=gen) * (room + 1)).long()
        for i in torch.nonzero(shifts).flatten().tolist():
            x[i] = torch.roll(x[i], int(shifts[i]), dims=0)
    if cfg.mix_prob:
        chosen = torch.rand(b, generator=gen) < cfg.mix_prob
        if chosen.any():
            idx = torch.randint(len(pool), (int(chosen.sum()),), generator=gen)
            noise = pool[idx].to(dev)
            rel_db = (torch.rand(len(idx), 1, 1, generator=gen) * -15 - 5).to(dev)  # -20..-5 dB
            on_dev = chosen.to(dev)  # the mask lives where the batch does (GPU training)
            x[on_dev] = 10 * torch.log10(10 ** (x[on_dev] / 10) + 10 ** ((noise + rel_db) / 10))
    if cfg.gain_db:
        gain = ((torch.rand(b, 1, 1, generator=gen) * 2 - 1) * cfg.gain_db).to(dev)
        x = torch.clamp(x + gain, min=SILENCE_DB)
    for _ in range(cfg.spec_masks):
        fill = x.mean(dim=(1, 2), keepdim=True)
        t0 = torch.randint(0, N_FRAMES - 20, (b,), generator=gen)
        tw = torch.randint(0, 21, (b,), generator=gen)
        f0 = torch.randint(0, x.shape[2] - 12, (b,), generator=gen)
        fw = torch.randint(0, 13, (b,), generator=gen)
        frames = torch.arange(N_FRAMES)[None, :]
        bands = torch.arange(x.shape[2])[None, :]
        tmask = ((frames >= t0[:, None]) & (frames < (t0 + tw)[:, None])).to(dev)[:, :, None]
        fmask = ((bands >= f0[:, None]) & (bands < (f0 + fw)[:, None])).to(dev)[:, None, :]
        x = torch.where(tmask | fmask, fill, x)
    return x


def run_epoch(model, x_all, y_all, len_all, idx, cfg, device, optimizer=None, scheduler=None,
              gen=None, pool=None, progress=None):
    """One pass over `idx`. With an optimizer it trains (shuffled, augmented), else it evaluates."""
    training = optimizer is not None
    model.train(training)
    if training:
        order = torch.as_tensor(idx)[torch.randperm(len(idx), generator=gen)]
    else:
        order = torch.as_tensor(idx)
    total_loss, correct, seen = 0.0, 0, 0
    task = progress.add_task("train" if training else "val", total=len(order)) if progress else None
    with torch.set_grad_enabled(training):
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            x = x_all[batch].to(device)
            y = y_all[batch].to(device)
            if training:
                x = augment(x.clone(), len_all[batch], pool, cfg, gen)
            x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing if training else 0.0)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(batch)
            if progress:
                progress.update(task, advance=len(batch),
                                description=f"{'train' if training else 'val'} "
                                            f"loss {total_loss / seen:.3f} acc {correct / seen:.3f}")
    if training and scheduler is not None:
        scheduler.step()
    if progress:
        progress.remove_task(task)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Trains one model and returns its run folder (with best.pt, last.pt, history.json)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    clips, missing = read_metadata(cfg.data)
    if missing:
        print(f"{len(missing)} clips listed in the CSV have no audio (e.g. {', '.join(missing[:3])})")
    cache = build_cache(clips, cfg.cache_dir, progress=progress)
    if cache.failed:
        print(f"skipped {len(cache.failed)} unreadable clips: "
              + ", ".join(name for name, _ in cache.failed[:10]))
    split = make_split(cfg, cache)
    print(f"{cfg.model}: {split.description}; train {len(split.train)}, val {len(split.val)}, "
          f"test {len(split.test)}; recipe: {cfg.recipe}; device {device}")

    x_all = torch.from_numpy(np.array(cache.logmels))  # into memory: epochs read it many times
    y_all = torch.tensor([c.label for c in cache.clips])
    len_all = torch.from_numpy(cache.lengths.astype(np.float32))
    pool = x_all[torch.as_tensor(split.train)]  # background-noise pool: training clips only

    model = build_cnn(cfg.model, cfg.conv_dropout, cfg.dense_dropout).to(device)
    model = model.to(memory_format=torch.channels_last)
    distilled = aux = None
    if cfg.views:  # the teacher and the negatives speak through a bank of cached views
        distilled = prepare_distillation(cfg, cache, split)
        print(f"teacher head: val ACC {distilled.teacher_report['val_acc']:.3f}, "
              f"test ACC {distilled.teacher_report['test_acc']:.3f}; "
              f"{len(distilled.negative_rows)} negative views to draw from")
        if cfg.embed_weight:
            aux = distill.make_aux_head().to(device)
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
                 if cfg.schedule == "cosine" else None)
    gen = torch.Generator().manual_seed(cfg.seed)
    # best_epoch: the kept checkpoint (best.pt); lowest_val_*: what patience counts from. They differ
    # with --keep last, where a run still stops by validation loss but keeps its last epoch.
    state = {"epoch": 0, "best_epoch": 0, "lowest_val_loss": math.inf, "lowest_val_epoch": 0, "history": []}

    if resume and (out / "last.pt").exists():
        ckpt = torch.load(out / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        if aux is not None:
            aux.load_state_dict(ckpt["aux"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and "scheduler" in ckpt:
            scheduler.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"].cpu())  # map_location moved it to the device
        state = {"epoch": ckpt["epoch"], "best_epoch": ckpt["best_epoch"],
                 # checkpoints from before --keep kept the lowest validation loss as the best epoch
                 "lowest_val_loss": ckpt.get("lowest_val_loss", ckpt.get("best_val_loss")),
                 "lowest_val_epoch": ckpt.get("lowest_val_epoch", ckpt["best_epoch"]),
                 "history": json.loads((out / "history.json").read_text())}
        print(f"resumed after epoch {state['epoch']} (lowest val loss {state['lowest_val_loss']:.4f})")
        if cfg.keep == "last" and state["best_epoch"] != state["epoch"]:
            torch.save({"model": model.state_dict(), "epoch": state["epoch"]}, out / "best.pt")
            state["best_epoch"] = state["epoch"]

    def patience_ran_out() -> bool:
        return bool(cfg.patience and not cfg.train_on_all
                    and state["epoch"] - state["lowest_val_epoch"] >= cfg.patience)

    bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                       transient=True)
        bar.start()
    try:
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if patience_ran_out():  # a resumed run that had already stopped early
                break
            t0 = time.perf_counter()
            if distilled is not None:
                tr_loss, tr_acc = distill.train_epoch(model, aux, distilled, split.train, cfg, device,
                                                      optimizer, scheduler, gen, bar)
            else:
                tr_loss, tr_acc = run_epoch(model, x_all, y_all, len_all, split.train, cfg, device,
                                            optimizer, scheduler, gen, pool, bar)
            seconds = time.perf_counter() - t0
            if split.val:
                va_loss, va_acc = run_epoch(model, x_all, y_all, len_all, split.val, cfg, device,
                                            progress=bar)
            else:
                va_loss, va_acc = tr_loss, tr_acc  # train_on_all: nothing held out
            state["history"].append({"epoch": epoch, "train_loss": tr_loss, "train_acc": tr_acc,
                                     "val_loss": va_loss, "val_acc": va_acc, "seconds": seconds})
            lower = va_loss < state["lowest_val_loss"]
            if lower:
                state["lowest_val_loss"], state["lowest_val_epoch"] = va_loss, epoch
            improved = lower or cfg.train_on_all or cfg.keep == "last"
            if improved:
                state["best_epoch"] = epoch
                torch.save({"model": model.state_dict(), "epoch": epoch}, out / "best.pt")
            state["epoch"] = epoch
            ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": gen.get_state(), **{k: state[k] for k in
                                                     ("epoch", "best_epoch", "lowest_val_loss",
                                                      "lowest_val_epoch")}}
            if scheduler is not None:
                ckpt["scheduler"] = scheduler.state_dict()
            if aux is not None:
                ckpt["aux"] = aux.state_dict()
            torch.save(ckpt, out / "last.pt.tmp")
            os.replace(out / "last.pt.tmp", out / "last.pt")
            (out / "history.json").write_text(json.dumps(state["history"], indent=1))
            line = (f"epoch {epoch:3d}  train loss {tr_loss:.4f} acc {tr_acc:.3f}  "
                    f"val loss {va_loss:.4f} acc {va_acc:.3f}  {seconds:.1f}s"
                    + ("  *" if improved else ""))
            (bar.console.print if bar else print)(line)
            with open(out / "log.txt", "a") as log:
                log.write(line + "\n")
            if patience_ran_out():
                print(f"stopping: no better validation loss for {cfg.patience} epochs")
                break
    finally:
        if bar:
            bar.stop()
    meta = {"model": cfg.model, "parameters": count_trainable(model), "split": split.description,
            "train": split.train, "val": split.val, "test": split.test,
            "clip_names": [c.name for c in cache.clips], "skipped": cache.failed,
            "best_epoch": state["best_epoch"], "epochs_run": state["epoch"]}
    if distilled is not None:
        meta["teacher"] = distilled.teacher_report
    (out / "run.json").write_text(json.dumps(meta))
    return out
