"""Training loop: Adam, ReduceLROnPlateau, early stopping on the validation loss, fixed seeds, CPU."""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .augment import AugmentConfig, Augmenter, BandLayout
from .dataset import IGNORE, ChipSet, normalise
from .losses import get_loss
from .models import build_model


@dataclass
class TrainConfig:
    arch: str = "unet"
    base_filters: int = 16
    depth: int = 3
    dropout: float = 0.0
    loss: str = "bce_dice"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 16
    max_epochs: int = 30
    patience: int = 6  # early stopping: epochs without a better validation loss
    lr_patience: int = 2  # ReduceLROnPlateau
    lr_factor: float = 0.3
    min_lr: float = 1e-5
    augment: bool = True
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    threads: int = 2
    max_minutes: float | None = None  # wall-clock cap on training
    steps_per_epoch: int | None = None  # None = one pass over the training chips

    def to_dict(self) -> dict:
        d = asdict(self)
        d["aug"] = self.aug.to_dict()
        return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def to_tensors(chips: ChipSet, norm: dict):
    x = torch.from_numpy(normalise(chips.x, norm))
    y = torch.from_numpy((chips.y == 1).astype(np.float32))[:, None]
    w = torch.from_numpy((chips.y != IGNORE).astype(np.float32))[:, None]
    return x, y, w


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]) if len(x) else x[:, :1]


def train_model(train: ChipSet, val: ChipSet | None, norm: dict, cfg: TrainConfig, *, sar_bands: list[int],
                init_state: dict | None = None, log=print, layout: BandLayout | None = None):
    """Train from scratch (or from ``init_state``); return ``(model in eval mode, history dict)``.

    ``layout`` (from the recipe) turns on the pass/polarisation/terrain dropouts, the pass swap of the
    left-right flip and the level offsets of :mod:`.augment`."""
    seed_everything(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    xt, yt, wt = to_tensors(train, norm)
    xv, yv, wv = to_tensors(val, norm) if val is not None and len(val) else (None, None, None)
    model = build_model(cfg.arch, xt.shape[1], cfg.base_filters, cfg.depth, cfg.dropout)
    if init_state is not None:
        model.load_state_dict(init_state)
    loss_fn = get_loss(cfg.loss)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_factor,
                                                       patience=cfg.lr_patience, min_lr=cfg.min_lr)
    aug = Augmenter(cfg.aug, sar_bands, norm["std"], layout) if cfg.augment else None
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(xt)
    steps = cfg.steps_per_epoch or max(1, math.ceil(n / cfg.batch_size))
    best, best_state, best_epoch, bad = math.inf, None, -1, 0
    history = {"epochs": [], "stopped": "max_epochs"}
    t0 = time.perf_counter()
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot, cnt = 0.0, 0
        for s in range(steps):
            idx = perm[(s * cfg.batch_size) % n:][:cfg.batch_size]
            if len(idx) < 2:
                idx = perm[:cfg.batch_size]
            xb, yb, wb = xt[idx], yt[idx], wt[idx]
            if aug is not None:
                xb, yb, wb = aug(xb, yb, wb, gen)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb, wb)
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            cnt += len(idx)
        train_loss = tot / max(cnt, 1)
        if xv is not None:
            val_loss = float(loss_fn(predict_logits(model, xv), yv, wv))
        else:
            val_loss = train_loss
        sched.step(val_loss)
        elapsed = time.perf_counter() - t0
        history["epochs"].append({"epoch": epoch + 1, "train_loss": round(train_loss, 5),
                                  "val_loss": round(val_loss, 5), "lr": opt.param_groups[0]["lr"],
                                  "elapsed_s": round(elapsed, 1)})
        log(f"  epoch {epoch + 1:3d}  train {train_loss:.4f}  val {val_loss:.4f}  lr {opt.param_groups[0]['lr']:.1e}"
            f"  {elapsed:.0f}s")
        if val_loss < best - 1e-4:
            best, best_state, best_epoch, bad = val_loss, copy.deepcopy(model.state_dict()), epoch + 1, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                history["stopped"] = f"early stopping (no better validation loss for {cfg.patience} epochs)"
                break
        if cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes:
            history["stopped"] = f"time cap {cfg.max_minutes} min"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    history.update(best_epoch=best_epoch, best_val_loss=best, train_seconds=round(time.perf_counter() - t0, 1),
                   n_train_chips=n, n_val_chips=0 if xv is None else len(xv))
    model.eval()
    return model, history
