"""Training: the paper's recipe, one fold at a time, into a run folder.

Read top to bottom, this is the recipe:
  1. load the corpus manifest and its features (from the feature cache after the first pass);
  2. split it into folds (speaker-independent by default; the paper's stratified protocol and
     IEMOCAP's leave-one-session-out are options); each fold has train / validation / test;
  3. per fold: normalise per frequency bin (`cfg.normalise`: each speaker with its own
     statistics, or every utterance with the training part's; features.normalise); train the CNN-BiGRU with
     Adam (lr 3e-4, batch 32) on L = L_s + lambda * L_c, updating the centers after every batch
     (or on another objective of objectives.py; `train_step` is the one step of every caller);
     after every epoch score the validation part and keep the weights of the best validation UA
     (the test fold is never used to choose anything); with `lr_schedule = "plateau"` the
     learning rate is halved after `lr_patience` epochs without a better one (`epoch_lr`);
  4. optionally (`refit`) train the fold again from the same start on train + validation for
     the epoch count validation chose, and keep that last epoch instead (`refit_fold`);
  5. score the kept weights on the test fold, save model, centers and embeddings;
  6. pool the folds into results.json.

Choices the paper leaves open: at most `epochs` with early stopping after `patience` epochs
without a better validation UA, the paper's constant learning rate (a plateau schedule is an
option), model selection on the validation UA of a speaker-disjoint validation part of the
training part, inverse-frequency class weights, log spectrograms normalised per frequency bin
and speaker, center initialisation from the first batch mean (see losses.py). Batches group utterances of similar length (bucketing) so
little compute is spent on padding; the model masks padding, so results do not depend on it.

A run can be stopped (SIGTERM / Ctrl-C: marked interrupted) or killed (the lock is released by
the OS; the listing shows it interrupted) and resumed from its last completed epoch: after each
epoch the fold's full training state is written atomically to fold_k/last.pt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ser_lab import procs
from ser_lab.choices import DEVICES
from ser_lab.config import TrainConfig
from ser_lab.data.features import FeatureConfig, NormStats, normalise
from ser_lab.errors import ConfigError, CorpusError, Interrupted, NonFiniteError, SerLabError
from ser_lab.learn.losses import class_weights
from ser_lab.learn.metrics import scores, scores_from_confusion
from ser_lab.learn.model import CnnBiGru, ModelConfig, min_frames, to_channels_last
from ser_lab.learn.objectives import (
    Objective,
    make_objective,
    model_options,
)
from ser_lab.learn.parallel import resolve_parallel_folds, threads_per_fold

# ----------------------------------------------------------------------------- finiteness


def check_finite(loss: torch.Tensor, model, objective, *, cfg: TrainConfig, fold: int,
                 epoch: int, batch: int) -> None:
    """NonFiniteError unless a training step's loss, and the weights and centers after it, are
    all finite. Called after every step; one device sync (a single sum over everything).

    The run then stops as failed with this message, and keeps its last good state: last.pt
    of the previous epoch, the metrics so far and the best model so far are never overwritten
    with NaN. A diverging step is almost always lambda or the learning rate set too large.
    """
    parts = [p.detach().float().sum() for p in model.parameters()]
    parts.append(objective.centers.detach().float().sum())
    total = loss.detach().float() + torch.stack(parts).sum()
    if bool(torch.isfinite(total)):
        return
    value = float(loss.detach())
    what = f"the loss is {value}" if not np.isfinite(value) else (
        f"the loss was {value:.4g} but the weights or centers after the step are not finite"
    )
    raise NonFiniteError(
        f"training diverged at fold {fold}, epoch {epoch}, batch {batch}: {what}; "
        f"lambda = {cfg.lam:g} or the learning rate = {cfg.lr:g} is probably too large. "
        f"The run stopped and keeps its last good state (the epochs before {epoch}); "
        "train again with a smaller lambda or learning rate"
    )


def require_finite(values: np.ndarray, what: str) -> None:
    """NonFiniteError naming `what` if `values` holds a NaN or an infinity."""
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise NonFiniteError(f"{what}: {bad} value(s) are NaN or infinite")


def failure_message(exc: BaseException, run_id: str) -> str:
    """The one line a failed run records in status.json and the CLI prints."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {exc.filename}" if exc.filename else ""
        return (
            f"disk full ({exc.strerror}){where}: the run stopped after its last completed epoch; "
            f"free some space, then resume it with: python -m ser_lab train --resume {run_id}"
        )
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where} (resume with: python -m ser_lab train --resume {run_id})"
    if isinstance(exc, SerLabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- devices, seeds


def select_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; or exactly what was asked (error if unavailable)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available")
    if name not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {name!r}")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    # Same seed, same numbers on CPU: refuse nondeterministic kernels (warn on GPU-only ones).
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_rng(seed: int, fold: int, epoch: int, stream: int | None = None) -> np.random.Generator:
    """The batch order and masks of an epoch depend only on (seed, fold, epoch[, stream]):
    resuming repeats them; a `stream` (the refit pass's) draws apart from the selection pass."""
    return np.random.default_rng([seed, fold, epoch] + ([] if stream is None else [stream]))


# ----------------------------------------------------------------------------- batches


def make_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Positions into `lengths` grouped into batches of similar length (bucketing).

    Training (rng given): shuffle, sort by length within pools of 50 batches, cut into batches,
    shuffle the batch order — random batches that still carry little padding.
    Evaluation (rng None): simply sorted by length.
    """
    order = np.argsort(lengths, kind="stable")
    if rng is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(features: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (T_i, F) arrays into (B, T_max, F) and their true lengths (B,)."""
    lengths = np.array([len(f) for f in features])
    x = np.zeros((len(features), lengths.max(), features[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(features):
        x[i, : len(f)] = f
    return torch.from_numpy(x), torch.from_numpy(lengths)


def spec_augment(
    x: torch.Tensor, lengths: torch.Tensor, rng: np.random.Generator,
    n_masks: int = 2, max_bins: int = 12, max_frames: int = 20,
) -> None:
    """Mask random frequency bands and time spans of each utterance in place (to 0, the mean).

    SpecAugment (Park et al., Interspeech 2019) without time warping. Not in the paper, which
    is silent on augmentation; it matters on small corpora (EmoDB trains on ~220 utterances a
    fold) and is applied identically to the baseline and to center loss. Masks are drawn from
    an rng seeded by (seed, fold, epoch, batch), so a resumed run draws the same masks.
    """
    n_bins = x.shape[2]
    for i, length in enumerate(lengths.tolist()):
        for _ in range(n_masks):
            width = int(rng.integers(0, max_bins + 1))
            start = int(rng.integers(0, n_bins - width + 1))
            x[i, :, start : start + width] = 0.0
            span = int(rng.integers(0, min(max_frames, length // 10) + 1))
            t0 = int(rng.integers(0, length - span + 1))
            x[i, t0 : t0 + span, :] = 0.0


# ----------------------------------------------------------------------------- one step


@dataclass
class StepResult:
    z: torch.Tensor  # (B, D), still attached to this step's graph
    logits: torch.Tensor  # (B, C)
    losses: dict[str, torch.Tensor]  # the objective's parts: softmax_loss, its extra term, total_loss


def _no_timer(stage: str):
    return contextlib.nullcontext()


def train_step(
    model: torch.nn.Module,
    objective: Objective,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    lengths: torch.Tensor | None,
    y: torch.Tensor,
    weights: torch.Tensor,
    device: torch.device,
    *,
    timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
) -> StepResult:
    """One optimisation step on one mini-batch: the single step of the trainer, the Learn page's
    toy and the speed benches. Forward (bf16 autocast on CUDA), the objective's loss parts,
    backward of their total, the optimiser step, then the objective's per-batch update (the
    paper's alpha rule: after the weights moved, from the batch's z before the step).
    `lengths` None: a model whose forward takes x alone (the toy). `timer(stage)`, if given, is a
    context manager wrapped around each stage (bench/train_speed.py times them)."""
    clock = timer or _no_timer
    with clock("forward (all)"):
        with autocast(device):
            x = x.to(device, non_blocking=True)
            z, logits = model(x) if lengths is None else model(x, lengths)
    with clock("loss"):
        losses = objective.loss(z, logits, y, weights)
    with clock("backward (all)"):
        optimiser.zero_grad(set_to_none=True)
        losses["total_loss"].backward()
    with clock("optimiser (Adam)"):
        optimiser.step()
    with clock("center update"):
        objective.after_step(z, y, weights)
    return StepResult(z, logits, losses)


# ----------------------------------------------------------------------------- one fold


@dataclass
class FoldData:
    """A fold's normalised features and labels, by part."""

    features: list[np.ndarray]  # every utterance of the corpus, normalised with train stats
    labels: np.ndarray
    utt_ids: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    norm: NormStats


def prepare_fold(
    feats: list[np.ndarray], labels: np.ndarray, utt_ids: list[str], fold,
    speakers: np.ndarray | None = None, how: str = "corpus",
) -> FoldData:
    """The fold's features standardised per bin (`how`: see ser_lab.data.features.normalise).
    `norm`, the training part's statistics, is kept either way (model.pt records it)."""
    norm = NormStats.fit([feats[i] for i in fold.train])
    require_finite(np.concatenate([norm.mean, norm.std]), f"fold {fold.index} normalisation statistics")
    normalised = normalise(feats, how, norm, speakers)
    return FoldData(normalised, labels, utt_ids, fold.train, fold.val, fold.test, norm)


@torch.no_grad()
def predict(
    model: CnnBiGru, features: list[np.ndarray], idx: np.ndarray, device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """z (N, 64) and class probabilities (N, C) for features[idx], in the order of idx."""
    model.eval()
    n = len(idx)
    z_out = np.zeros((n, model.cfg.feature_dim), dtype=np.float32)
    p_out = np.zeros((n, model.cfg.n_classes), dtype=np.float32)
    lengths = np.array([len(features[i]) for i in idx])
    for pos in make_batches(lengths, batch_size, None):
        x, lens = pad_batch([features[i] for i in idx[pos]])
        with autocast(device):
            z, logits = model(x.to(device, non_blocking=True), lens)
        z_out[pos] = z.float().cpu().numpy()
        p_out[pos] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return z_out, p_out


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the GRU itself stays float32), nothing elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def center_distances(z: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> tuple[float, float]:
    """Mean intra-class distance ||z - c_y|| and mean pairwise distance between centers."""
    intra = float(np.linalg.norm(z - centers[labels], axis=1).mean())
    present = np.unique(labels)
    c = centers[present]
    d = np.linalg.norm(c[:, None] - c[None], axis=2)
    k = len(present)
    inter = float(d.sum() / (k * (k - 1))) if k > 1 else 0.0
    return intra, inter


@dataclass
class FoldState:
    """Everything needed to continue a fold after its last completed epoch."""

    epoch: int = 0  # epochs completed
    best_val_ua: float = -1.0
    best_epoch: int = 0
    best_model: dict | None = None
    best_centers: torch.Tensor | None = None
    lr_drops: list[int] = field(default_factory=list)  # epochs after which the rate was halved


LR_FACTOR = 0.5  # the plateau schedule's factor at each drop


def epoch_lr(cfg: TrainConfig, lr_drops: list[int], epoch: int) -> float:
    """The learning rate of `epoch`: cfg.lr, times LR_FACTOR for each plateau drop made after
    an earlier epoch. A function of the drops alone, so a resumed fold and the refit pass (which
    replays the selection pass's drops) train each epoch at the same rate."""
    return cfg.lr * LR_FACTOR ** sum(1 for d in lr_drops if d < epoch)


def plateau_drop(state: FoldState, cfg: TrainConfig) -> bool:
    """The plateau schedule (ReduceLROnPlateau on validation UA, mode max): `lr_patience`
    epochs without a better validation UA since the best epoch or the last drop."""
    if cfg.lr_schedule != "plateau":
        return False
    since = max(state.best_epoch, state.lr_drops[-1] if state.lr_drops else 0)
    return state.epoch - since >= cfg.lr_patience


def set_lr(optimiser: torch.optim.Optimizer, lr: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = lr


def save_fold_state(path, model, objective: Objective, optimiser, state: FoldState) -> None:
    from ser_lab.fileio import atomic_torch_save

    atomic_torch_save(
        path,
        {
            "epoch": state.epoch,
            "best_val_ua": state.best_val_ua,
            "best_epoch": state.best_epoch,
            "best_model": state.best_model,
            "best_centers": state.best_centers,
            "lr_drops": list(state.lr_drops),
            "model": model.state_dict(),
            "objective": objective.state_dict(),
            "optimiser": optimiser.state_dict(),
        },
    )


def load_fold_state(path, model, objective: Objective, optimiser) -> FoldState:
    """Restore a fold from its last.pt. The file is read with torch's safe loader (a file that
    tries to run code is refused, never executed); a damaged or foreign one is a RunError
    naming it, so `train --resume` stops with one clear line instead of a traceback."""
    import pickle
    import zipfile
    from pathlib import Path

    from ser_lab.errors import RunError
    from ser_lab.runs import _unpickling_reason

    path = Path(path)
    where = f"run {path.parent.parent.name}: {path.parent.name.replace('_', ' ')} last.pt"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RunError(
            f"{where} (the resume state) was refused: it is corrupt or holds objects other than "
            f"tensors and plain values ({_unpickling_reason(e)}); delete it to train the fold "
            "again from its first epoch"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise RunError(
            f"{where} (the resume state) is corrupt or unreadable ({type(e).__name__}: {e}); "
            "delete it to train the fold again from its first epoch"
        ) from None
    try:
        model.load_state_dict(blob["model"])
        # last.pt files written before objectives existed hold the paper's centers as "center_loss"
        objective.load_state_dict(blob["objective"] if "objective" in blob else {"centers": blob["center_loss"]})
        optimiser.load_state_dict(blob["optimiser"])
        return FoldState(
            blob["epoch"], blob["best_val_ua"], blob["best_epoch"], blob["best_model"],
            blob["best_centers"], [int(d) for d in blob.get("lr_drops", [])],  # none before schedules
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise RunError(
            f"{where} (the resume state) does not fit this run ({type(e).__name__}: {e}); "
            "delete it to train the fold again from its first epoch"
        ) from None


def train_fold(
    cfg: TrainConfig,
    data: FoldData,
    labels_names: tuple[str, ...],
    fold_k: int,
    run,
    device: torch.device,
    report: Callable[[dict], None],
    timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
) -> dict:
    """Train one fold; returns its test scores. Writes metrics, model and embeddings to `run`.
    With `cfg.refit`, the epoch count chosen on validation is then trained again from the same
    start on train + validation (`refit_fold`), and that model is the one scored and saved.
    `timer` is handed to every `train_step` (bench/train_speed.py times its stages; it only
    reads clocks, so results are the same with it as without)."""
    n_classes = len(labels_names)
    model, objective, optimiser = new_fold_model(cfg, data, n_classes, fold_k, device)
    weights = class_weights(data.labels[data.train], n_classes).to(device)

    fold_dir = run.fold_dir(fold_k)
    state_path = fold_dir / "last.pt"
    state = FoldState()
    if state_path.exists():
        state = load_fold_state(state_path, model, objective, optimiser)
        model.to(device)
    drop_metrics_after(run, fold_k, state.epoch)

    snapshot_idx = snapshot_subset(cfg, data, fold_k)

    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if should_stop(state, cfg):  # a resumed fold that had already stopped early
            break
        lr = epoch_lr(cfg, state.lr_drops, epoch)
        set_lr(optimiser, lr)
        train_z, train_pred, sums, train_time = train_epoch(
            cfg, model, objective, optimiser, data, data.train, weights, fold_k, epoch, device,
            lambda b, n, epoch=epoch: report({"fold": fold_k, "epoch": epoch, "batch": b, "n_batches": n}),
            timer=timer,
        )
        centers = objective.centers.float().cpu().numpy()
        train_scores = scores(data.labels[data.train], train_pred, labels_names)
        val_z, val_p = predict(model, data.features, data.val, device)
        val_scores = scores(data.labels[data.val], val_p.argmax(1), labels_names)
        intra, inter = center_distances(train_z, data.labels[data.train], centers)
        val_intra, _ = center_distances(val_z, data.labels[data.val], centers)
        record = {
            "fold": fold_k,
            "epoch": epoch,
            **{k: v / len(data.train) for k, v in sums.items()},
            "train_UA": train_scores["UA"],
            "train_WA": train_scores["WA"],
            "val_UA": val_scores["UA"],
            "val_WA": val_scores["WA"],
            "intra_dist": intra,
            "inter_dist": inter,
            "val_intra_dist": val_intra,
            "lr": lr,
            "train_time_s": train_time,
            "utt_per_s": len(data.train) / train_time,
            "time": time.time(),
        }
        if val_scores["UA"] > state.best_val_ua:
            state.best_val_ua, state.best_epoch = val_scores["UA"], epoch
            state.best_model = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state.best_centers = objective.centers.detach().cpu().clone()
        state.epoch = epoch
        if plateau_drop(state, cfg):
            state.lr_drops.append(epoch)
        if snapshot_idx is not None and (epoch % cfg.snapshot_every == 0 or epoch == 1):
            save_snapshot(run, fold_k, epoch, model, data, snapshot_idx, centers, device)
        # Metrics line first, then the resume state: a kill in between repeats this epoch on
        # resume, and drop_metrics_after removes the line it would otherwise duplicate.
        run.append_metrics(record)
        save_fold_state(state_path, model, objective, optimiser, state)
        report({"fold": fold_k, "epoch": epoch, "epoch_done": True, "metrics": record})

    model.load_state_dict(state.best_model)
    centers = state.best_centers.numpy().astype(np.float32)
    if cfg.refit:
        model, centers = refit_fold(cfg, data, n_classes, fold_k, run, device, state, report, timer)
    return finish_fold(cfg, data, labels_names, fold_k, run, device, model, centers, state)


def new_fold_model(cfg: TrainConfig, data: FoldData, n_classes: int, fold_k: int, device: torch.device):
    """A fold's network, objective and Adam, from the fold's seed (the same start every time)."""
    seed_everything(cfg.seed * 1000 + fold_k)
    model = CnnBiGru(ModelConfig(n_bins=data.features[0].shape[1], n_classes=n_classes,
                                 **model_options(cfg.objective_config()))).to(device)
    if cfg.channels_last and device.type == "cpu":
        to_channels_last(model)  # before Adam, so its moment buffers share the layout
    objective = make_objective(cfg.objective_config(), n_classes, model.cfg.feature_dim, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return model, objective, optimiser


def train_epoch(
    cfg: TrainConfig, model, objective: Objective, optimiser, data: FoldData, part: np.ndarray,
    weights: torch.Tensor, fold_k: int, epoch: int, device: torch.device,
    on_batch: Callable[[int, int], None], *, timer=None, stream: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float], float]:
    """One pass over the utterances `part` in length-bucketed random batches: z and predicted
    class of each (in the order of `part`), the summed loss parts, and the seconds it took.
    Batch order and masks depend only on (seed, fold, epoch[, stream]), so a resumed epoch
    repeats them; `stream` keeps the refit pass's randomness apart from the selection pass's."""
    tag = [] if stream is None else [stream]
    lengths = np.array([len(data.features[i]) for i in part])
    rng = epoch_rng(cfg.seed, fold_k, epoch, stream)
    batches = make_batches(lengths, cfg.batch_size, rng)
    labels_t = torch.from_numpy(data.labels)
    model.train()
    sums = dict.fromkeys(objective.loss_keys, 0.0)
    pred = np.zeros(len(part), dtype=np.int64)
    z_out = np.zeros((len(part), model.cfg.feature_dim), dtype=np.float32)
    t0 = time.perf_counter()
    for b, pos in enumerate(batches):
        idx = part[pos]
        x, lens = pad_batch([data.features[i] for i in idx])
        if cfg.augment:
            spec_augment(x, lens, np.random.default_rng([cfg.seed, fold_k, epoch, b, *tag]))
        y = labels_t[idx].to(device)
        step = train_step(model, objective, optimiser, x, lens, y, weights, device, timer=timer)
        check_finite(step.losses["total_loss"], model, objective, cfg=cfg, fold=fold_k, epoch=epoch, batch=b + 1)
        for key, value in step.losses.items():
            sums[key] += float(value.detach()) * len(idx)
        pred[pos] = step.logits.argmax(1).cpu().numpy()
        z_out[pos] = step.z.detach().float().cpu().numpy()
        on_batch(b + 1, len(batches))
    return z_out, pred, sums, time.perf_counter() - t0


REFIT_STREAM = 1  # the refit pass's random stream (batch order, masks)


def refit_epochs(state: FoldState) -> int:
    """How long the refit trains: the epoch count that validation chose (at least one)."""
    return max(state.best_epoch, 1)


def refit_fold(
    cfg: TrainConfig, data: FoldData, n_classes: int, fold_k: int, run, device: torch.device,
    state: FoldState, report: Callable[[dict], None], timer=None,
) -> tuple[CnnBiGru, np.ndarray]:
    """Train the fold again on all of its non-test data (train + validation), from the same
    start, for the number of epochs validation chose; returns that model and its centers.

    Nothing is chosen here (the validation part is now training data): the model of the last
    epoch is the result. Resumable like the selection pass: after each epoch the state is
    written atomically to fold_k/refit.pt and a line appended to fold_k/refit.jsonl."""
    from ser_lab import fileio

    model, objective, optimiser = new_fold_model(cfg, data, n_classes, fold_k, device)
    part = np.concatenate([data.train, data.val])
    weights = class_weights(data.labels[part], n_classes).to(device)
    target = refit_epochs(state)
    fold_dir = run.fold_dir(fold_k)
    state_path, log_path = fold_dir / "refit.pt", fold_dir / "refit.jsonl"
    done = FoldState()
    if state_path.exists():
        done = load_fold_state(state_path, model, objective, optimiser)
        model.to(device)
    fileio.keep_jsonl(log_path, lambda r: r.get("epoch", 0) <= done.epoch)  # epochs to train again
    for epoch in range(done.epoch + 1, target + 1):
        lr = epoch_lr(cfg, state.lr_drops, epoch)  # the selection pass's rate at this epoch
        set_lr(optimiser, lr)
        z, pred, sums, seconds = train_epoch(
            cfg, model, objective, optimiser, data, part, weights, fold_k, epoch, device,
            lambda b, n, epoch=epoch: report({"fold": fold_k, "epoch": state.epoch, "refit_epoch": epoch,
                                              "refit_epochs": target, "batch": b, "n_batches": n}),
            timer=timer, stream=REFIT_STREAM,
        )
        fit = scores(data.labels[part], pred, tuple(range(n_classes)))
        fileio.append_jsonl(log_path, {
            "fold": fold_k, "epoch": epoch, **{k: v / len(part) for k, v in sums.items()},
            "train_UA": fit["UA"], "train_WA": fit["WA"], "lr": lr, "train_time_s": seconds, "time": time.time(),
        })
        done.epoch = epoch
        save_fold_state(state_path, model, objective, optimiser, done)
    return model, objective.centers.float().cpu().numpy().astype(np.float32)


def should_stop(state: FoldState, cfg: TrainConfig) -> bool:
    """Early stopping: `patience` epochs in a row without a better validation UA."""
    return cfg.patience > 0 and state.epoch - state.best_epoch >= cfg.patience


def stop_reason(state: FoldState, cfg: TrainConfig) -> str:
    """Why a finished fold stopped training, in words (recorded in results.json)."""
    if state.epoch < cfg.epochs and should_stop(state, cfg):
        reason = (
            f"early stop after epoch {state.epoch}: no better validation UA for {epoch_count(cfg.patience)} "
            f"(best at epoch {state.best_epoch})"
        )
    else:
        reason = f"reached the maximum of {epoch_count(cfg.epochs)} (best validation UA at epoch {state.best_epoch})"
    used = [d for d in state.lr_drops if d < state.epoch]  # a drop after the last epoch changed nothing
    if used:
        reason += f"; learning rate halved after epoch{'s' if len(used) > 1 else ''} " + ", ".join(map(str, used))
    if cfg.refit:
        reason += f"; then trained again on train + validation for {epoch_count(refit_epochs(state))}"
    return reason


def epoch_count(n: int) -> str:
    """`n` epochs, in words ("1 epoch", "20 epochs")."""
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def drop_metrics_after(run, fold_k: int, epoch: int) -> None:
    """Forget metric lines of epochs that a resumed fold will train again (exactly once per
    epoch). Under the run's metrics lock: folds training in parallel append meanwhile."""
    run.rewrite_metrics(lambda r: not (r.get("fold") == fold_k and r.get("epoch", 0) > epoch))


def finish_fold(
    cfg, data, labels_names, fold_k, run, device, model, centers: np.ndarray, state: FoldState,
) -> dict:
    """Score the kept weights (best validation UA, or the refit's last epoch) and save model,
    centers and embeddings."""
    parts = {"train": data.train, "val": data.val, "test": data.test}
    z_all, p_all, split = [], [], []
    for name, idx in parts.items():
        z, p = predict(model, data.features, idx, device)
        z_all.append(z)
        p_all.append(p)
        split += [name] * len(idx)
    order = np.concatenate(list(parts.values()))
    z_all, p_all = np.concatenate(z_all), np.concatenate(p_all)
    preds = p_all.argmax(1)
    test_mask = np.array(split) == "test"
    test_scores = scores(data.labels[order][test_mask], preds[test_mask], labels_names)

    run.save_model(
        fold_k,
        {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "centers": torch.from_numpy(centers),
            "norm": data.norm.to_dict(),
            "normalise": cfg.normalise,
            "label_names": list(labels_names),
            "feature_config": FeatureConfig(kind=cfg.features).to_dict(),
            "model_config": model.cfg.to_dict(),
            "best_epoch": state.best_epoch,
            "epochs_trained": state.epoch,
            "refit_epochs": refit_epochs(state) if cfg.refit else 0,
            "stop_reason": stop_reason(state, cfg),
            "format_version": 1,
        },
    )
    run.save_embeddings(
        fold_k,
        z=z_all,
        labels=data.labels[order],
        preds=preds,
        probs=p_all,
        utt_ids=np.array([data.utt_ids[i] for i in order]),
        split=np.array(split),
        centers=centers,
        label_names=np.array(labels_names),
    )
    for name in ("last.pt", "refit.pt"):  # the resume states: the fold is done
        (run.fold_dir(fold_k) / name).unlink(missing_ok=True)
    return {
        "fold": fold_k, **test_scores, "best_epoch": state.best_epoch, "epochs_trained": state.epoch,
        "refit_epochs": refit_epochs(state) if cfg.refit else 0,
        "stop_reason": stop_reason(state, cfg), "n_test": int(test_mask.sum()),
    }


def snapshot_subset(cfg: TrainConfig, data: FoldData, fold_k: int) -> np.ndarray | None:
    """A fixed subset of train and test utterances whose z is saved every N epochs."""
    if cfg.snapshot_every <= 0:
        return None
    rng = np.random.default_rng([cfg.seed, fold_k, 7])
    n_train = min(len(data.train), cfg.snapshot_size * 2 // 3)
    n_test = min(len(data.test), cfg.snapshot_size - n_train)
    return np.concatenate(
        [np.sort(rng.choice(data.train, n_train, replace=False)),
         np.sort(rng.choice(data.test, n_test, replace=False))]
    )


def save_snapshot(run, fold_k, epoch, model, data: FoldData, idx, centers, device) -> None:
    z, _ = predict(model, data.features, idx, device)
    test = set(data.test.tolist())
    run.save_snapshot(
        fold_k,
        epoch,
        z=z,
        labels=data.labels[idx],
        utt_ids=np.array([data.utt_ids[i] for i in idx]),
        split=np.array(["test" if i in test else "train" for i in idx]),
        centers=centers,
    )


# ----------------------------------------------------------------------------- the whole run


def check_data(cfg: TrainConfig) -> None:
    """Every check of `load_data` that decodes no audio: the corpus source, its listing (names,
    labels, audio headers) and its split. Run before a run folder is made (`new_run`, the
    classical baseline's `new_classical_run`), so bad input leaves no failed run behind; the
    built-in corpus is listed as it will be generated, without generating it."""
    from ser_lab.data.corpora import check_corpus_listing
    from ser_lab.data.splits import make_folds

    manifest = check_corpus_listing(cfg.corpus, cfg.root, classes=cfg.classes, **cfg.corpus_options)
    if manifest is not None:  # e.g. more folds than speakers
        make_folds(manifest, cfg.protocol, cfg.n_folds, cfg.seed, cfg.val_fraction)


def load_data(cfg: TrainConfig, progress: Callable[[int, int], None] | None = None):
    """Manifest, features (cached), class ids and folds for a config."""
    from ser_lab.data.corpora import load_corpus
    from ser_lab.data.features import FeatureCache, extract_corpus
    from ser_lab.data.splits import make_folds

    manifest = load_corpus(cfg.corpus, cfg.root, classes=cfg.classes, **cfg.corpus_options)
    feature_cfg = FeatureConfig(kind=cfg.features)
    corpus_features = extract_corpus(
        manifest, feature_cfg, cache=FeatureCache(), workers=cfg.workers, progress=progress
    )
    manifest, feats = corpus_features.manifest, corpus_features.features
    manifest, feats = drop_non_finite(manifest, feats)
    shortest = min_frames()
    keep = [i for i, f in enumerate(feats) if len(f) >= shortest]
    if len(keep) < len(feats):
        manifest = manifest.subset(keep)
        feats = [feats[i] for i in keep]
    if not feats:  # every file had a usable header but none could be decoded
        first = manifest.problems[-1] if manifest.problems else None
        example = f", e.g. {first.reason}" if first else ""
        raise CorpusError(
            f"no usable audio for corpus {cfg.corpus!r} in {manifest.root}: "
            f"{len(manifest.problems)} file(s) refused{example}"
        )
    folds = make_folds(manifest, cfg.protocol, cfg.n_folds, cfg.seed, cfg.val_fraction)
    return manifest, feats, folds


def drop_non_finite(manifest, feats: list[np.ndarray]):
    """Utterances whose features hold a NaN or infinity (e.g. cached before the decoder bounded
    samples) are left out and listed in the manifest's problems, never trained on."""
    from ser_lab.data.corpora.base import Problem

    bad = [i for i, f in enumerate(feats) if not np.isfinite(f).all()]
    if not bad:
        return manifest, feats
    keep = [i for i in range(len(feats)) if i not in set(bad)]
    out = manifest.subset(keep)
    out.problems += [
        Problem(manifest.utterances[i].path, "features hold NaN or infinite values") for i in bad
    ]
    return out, [feats[i] for i in keep]


def train_run(
    run,
    *,
    progress: Callable[[dict], None] | None = None,
    feature_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train (or resume) every fold of a run folder created by RunStore.create.

    The caller holds the run's lock. Folds already finished are skipped; a fold with a
    last.pt continues after its last completed epoch. Returns the results dict.
    """
    cfg = TrainConfig.from_dict(run.config["train"]).validate()
    device = select_device(cfg.device)
    started = time.time()
    run.update_status(
        state="running", pid=os.getpid(), pid_started=procs.start_time(os.getpid()),
        started=started, error=None, device=str(device), problem=None, folds_active=None,
    )
    stop = {"requested": False}
    previous = install_stop_handlers(stop)
    try:
        manifest, feats, folds = load_data(cfg, feature_progress)
        fold_ids = cfg.folds if cfg.folds is not None else list(range(len(folds)))
        if any(k >= len(folds) for k in fold_ids):
            raise ConfigError(f"fold indices {fold_ids} out of range: the split has {len(folds)} folds")
        record_data(run, manifest, folds, fold_ids)
        labels = manifest.label_ids()
        utt_ids = [u.utt_id for u in manifest.utterances]
        total_epochs = len(fold_ids) * cfg.epochs
        done_before = {r["fold"] for r in run.read_metrics()}  # only to estimate ETA
        clock = {"t": time.time(), "epochs": 0, "last_status": 0.0}
        finished = set(run.folds_done())
        fold_results = {k: fold_result_from_disk(run, k, manifest.labels) for k in fold_ids if k in finished}
        todo = [k for k in fold_ids if k not in finished]
        budget = torch.get_num_threads()
        n_parallel = resolve_parallel_folds(cfg.parallel_folds, len(todo), budget, device.type)
        map_problems: list[str] = []

        def note_map_problem(problem: str | None) -> None:
            if problem:
                print(f"warning: {problem}", file=sys.stderr, flush=True)
                map_problems.append(problem)
                run.update_status(problem="; ".join(map_problems))

        if n_parallel > 1:
            del feats  # every worker reads the corpus from the feature cache itself
            fold_results.update(train_parallel(
                run, cfg, fold_ids, todo, n_parallel, threads_per_fold(n_parallel, budget),
                stop=stop, clock=clock, progress=progress, resumed=bool(done_before),
                note_map_problem=note_map_problem,
            ))
        for n, k in enumerate(fold_ids):
            if k in fold_results:
                continue
            data = prepare_fold(feats, labels, utt_ids, folds[k], manifest.speakers(), cfg.normalise)

            def report(event: dict, n=n) -> None:
                if stop["requested"]:
                    raise Interrupted()
                now = time.time()
                if event.get("epoch_done"):
                    clock["epochs"] += 1
                frac = event["batch"] / event["n_batches"] if "batch" in event else 1.0
                if "refit_epoch" in event:  # the selection's epochs are done: hold the bar there
                    frac = 1.0
                done = n * cfg.epochs + event["epoch"] - 1 + frac
                if event.get("epoch_done") or now - clock["last_status"] > 1.0:
                    rate = (now - clock["t"]) / max(clock["epochs"] + (0 if event.get("epoch_done") else frac), 1e-9)
                    run.update_status(
                        fold=event["fold"], epoch=event["epoch"], n_folds=len(fold_ids),
                        n_epochs=cfg.epochs, progress=done / total_epochs,
                        eta_s=rate * (total_epochs - done) if clock["epochs"] or frac > 0.2 else None,
                        refit=refit_status(event),
                    )
                    clock["last_status"] = now
                if progress:
                    progress({**event, "total_epochs": total_epochs, "fold_pos": n,
                              "resumed": bool(done_before), "done_epochs": done})

            fold_results[k] = train_fold(cfg, data, manifest.labels, k, run, device, report)
            del data
            note_map_problem(cache_fold_maps(run, cfg, k))
            if progress:
                progress({"fold_done": True, "fold": k, "stop_reason": fold_results[k]["stop_reason"]})
        fold_results = [fold_results[k] for k in fold_ids]
        results = pool_results(fold_results, manifest.labels)
        run.write_results(results)
        run.update_status(state="done", progress=1.0, finished=time.time(), eta_s=0, folds_active=None, refit=None)
        return results
    except Interrupted:
        run.update_status(state="interrupted", finished=time.time(), error=None)
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded in the run folder
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        error = None if state == "interrupted" else failure_message(exc, run.run_id)
        run.update_status(state=state, finished=time.time(), error=error)
        raise
    finally:
        restore_stop_handlers(previous)


def refit_status(event: dict) -> dict | None:
    """status.json's `refit` entry: which refit epoch a fold is in (None outside a refit)."""
    if "refit_epoch" not in event:
        return None
    return {"fold": event["fold"], "epoch": event["refit_epoch"], "epochs": event["refit_epochs"]}


def train_parallel(
    run, cfg: TrainConfig, fold_ids: list[int], todo: list[int], n_parallel: int, threads: int,
    *, stop: dict, clock: dict, progress, resumed: bool, note_map_problem,
) -> dict[int, dict]:
    """`train_run`'s folds `todo` in `n_parallel` worker processes (`ser_lab.learn.parallel`), with
    progress and ETA across the folds in status.json and the same progress events as a
    sequential run (`done_epochs` counts the epochs of every fold)."""
    from ser_lab.learn.parallel import train_folds_parallel

    total_epochs = len(fold_ids) * cfg.epochs
    pos = {k: n for n, k in enumerate(fold_ids)}
    fold_epochs = {k: float(cfg.epochs) for k in fold_ids if k not in todo}  # epochs done per fold
    in_epoch: dict[int, float] = {}  # fraction of the current epoch of each fold in training
    active: dict[int, int] = {}  # fold -> epoch in training
    refitting: dict[int, dict] = {}  # fold -> its refit epoch, for the folds in their refit pass

    def write_status(event: dict, done: float) -> None:
        now = time.time()
        worked = clock["epochs"] + sum(in_epoch.values())  # epochs trained in this process
        rate = (now - clock["t"]) / max(worked, 1e-9)  # wall seconds per epoch, all folds together
        run.update_status(
            fold=event["fold"], epoch=event["epoch"], n_folds=len(fold_ids), n_epochs=cfg.epochs,
            progress=done / total_epochs,
            eta_s=rate * (total_epochs - done) if clock["epochs"] or worked > 0.2 else None,
            folds_active=[{"fold": k, "epoch": e, **({"refit": refitting[k]} if k in refitting else {})}
                          for k, e in sorted(active.items())],
            refit=refit_status(event),
        )
        clock["last_status"] = now

    def on_event(event: dict) -> None:
        k = event["fold"]
        frac = event["batch"] / event["n_batches"] if "batch" in event else 1.0
        if event.get("epoch_done"):
            clock["epochs"] += 1
            in_epoch[k] = 0.0
        else:
            in_epoch[k] = frac
        if "refit_epoch" in event:  # the selection's epochs are done: hold its count there
            in_epoch[k], frac = 0.0, 1.0
        fold_epochs[k] = event["epoch"] - 1 + frac
        active[k] = event["epoch"]
        if "refit_epoch" in event:
            refitting[k] = {"epoch": event["refit_epoch"], "epochs": event["refit_epochs"]}
        done = sum(fold_epochs.values())
        if event.get("epoch_done") or time.time() - clock["last_status"] > 1.0:
            write_status(event, done)
        if progress:
            progress({**event, "total_epochs": total_epochs, "fold_pos": pos[k], "resumed": resumed,
                      "done_epochs": done})

    def on_fold_done(k: int, result: dict, problem: str | None) -> None:
        fold_epochs[k] = float(cfg.epochs)
        active.pop(k, None)
        refitting.pop(k, None)
        in_epoch.pop(k, None)
        note_map_problem(problem)
        write_status({"fold": k, "epoch": result.get("epochs_trained")}, sum(fold_epochs.values()))
        if progress:
            progress({"fold_done": True, "fold": k, "stop_reason": result["stop_reason"]})

    return train_folds_parallel(
        run, todo, n_parallel, threads, should_stop=lambda: stop["requested"],
        on_event=on_event, on_fold_done=on_fold_done, worker_main=fold_worker_main,
    )


def cache_fold_maps(run, cfg: TrainConfig, fold_k: int) -> str | None:
    """Compute and cache the maps the app shows first of a finished fold (Compare's and
    Explore's PCA and UMAP, `ser_lab.analysis.maps.precompute_maps`), so that opening the run hits
    the cache instead of making its user wait. Returns None, or the one line why not: a map
    is a convenience, never a reason to fail a trained run (the page computes it when opened)."""
    if not cfg.precompute_maps:
        return None
    try:
        from ser_lab.analysis.maps import precompute_maps

        precompute_maps(run, fold_k)
    except Exception as exc:  # noqa: BLE001 - recorded in status.json, training goes on
        reason = failure_message(exc, run.run_id)
        return f"fold {fold_k}: maps not precomputed ({reason}); Compare computes them when opened"
    return None


def install_stop_handlers(stop: dict):
    """SIGTERM (the app's stop button) and SIGINT stop the run after the current batch."""
    if not _in_main_thread():
        return None

    def handler(signum, frame):
        stop["requested"] = True

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_stop_handlers(previous) -> None:
    if previous:
        for sig, h in previous.items():
            signal.signal(sig, h)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def record_data(run, manifest, folds, fold_ids) -> None:
    """Add the data fingerprint and split sizes to config.json (once)."""
    config = dict(run.config)
    if "data" in config:
        return
    config["data"] = {
        "fingerprint": manifest.fingerprint(),
        "n_utterances": len(manifest),
        "labels": list(manifest.labels),
        "counts": manifest.counts_by_label(),
        "n_speakers": len(manifest.counts_by_speaker()),
        "n_problems": len(manifest.problems),
        "folds": [
            {"fold": k, "train": len(folds[k].train), "val": len(folds[k].val), "test": len(folds[k].test)}
            for k in fold_ids
        ],
    }
    run.write_config(config)


def fold_result_from_disk(run, k: int, labels: tuple[str, ...]) -> dict:
    emb = run.load_embeddings(k)
    test = emb["split"] == "test"
    s = scores(emb["labels"][test], emb["preds"][test], labels)
    model = run.load_model(k)
    out = {"fold": k, **s, "best_epoch": int(model.get("best_epoch", 0)), "n_test": int(test.sum())}
    for key in ("epochs_trained", "refit_epochs", "stop_reason"):
        if key in model:
            out[key] = model[key]
    return out


def pool_results(fold_results: list[dict], labels: tuple[str, ...]) -> dict:
    """Per-fold scores, their mean and sample std (`ser_lab.analysis.stats.mean_std`; None for one
    fold), and the scores of all folds' test predictions pooled."""
    from ser_lab.analysis.stats import mean_std

    pooled_cm = np.sum([np.array(r["confusion"]) for r in fold_results], axis=0)
    ua = mean_std(r["UA"] for r in fold_results)
    wa = mean_std(r["WA"] for r in fold_results)
    return {
        "labels": list(labels),
        "folds": fold_results,
        "pooled": scores_from_confusion(pooled_cm, labels),
        "mean": {"UA": ua.mean, "WA": wa.mean, "UA_std": ua.std, "WA_std": wa.std},
    }


def new_run(cfg: TrainConfig, store=None, name: str | None = None):
    """Create a queued run folder for a config (recording versions); train it with train_run."""
    from ser_lab.runs import RunStore

    cfg.validate()
    select_device(cfg.device)  # a device this machine lacks fails here, before any folder
    check_data(cfg)  # and a wrong path, an empty folder or an impossible split
    store = store or RunStore()
    # The settings are recorded once; listings read their columns from "train"
    # (ser_lab.runs.config_columns).
    config = {"train": cfg.to_dict()}
    return store.create(config, name=name)


def fold_worker_main(run_dir: str, threads: int, parent_pid: int, tasks, events, stop) -> None:
    """One worker process of `ser_lab.learn.parallel.train_folds_parallel`: the run's data once, then
    folds from `tasks` until a None (or a stop). It lives here, not in parallel.py, because it
    needs the trainer: parallel.py stays free of trainer imports (no import cycle)."""
    from ser_lab.learn.parallel import _picklable, _watch_parent

    _watch_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)  # NUMBA: the UMAP maps, imported later
    import torch

    from ser_lab.runs import Run

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    pid = os.getpid()
    k = None
    try:
        run = Run(run_dir)
        cfg = TrainConfig.from_dict(run.config["train"]).validate()
        device = select_device(cfg.device)
        manifest, feats, folds = load_data(cfg)
        labels = manifest.label_ids()
        utt_ids = [u.utt_id for u in manifest.utterances]

        def report(event: dict) -> None:
            if stop.is_set():
                raise Interrupted()
            events.put(("event", event))

        while not stop.is_set():
            k = tasks.get()
            if k is None:
                break
            events.put(("start", pid, k))
            data = prepare_fold(feats, labels, utt_ids, folds[k], manifest.speakers(), cfg.normalise)
            result = train_fold(cfg, data, manifest.labels, k, run, device, report)
            del data
            problem = cache_fold_maps(run, cfg, k)
            events.put(("done", pid, k, result, problem))
    except Interrupted:
        events.put(("interrupted", pid, k))
    except BaseException as exc:  # noqa: BLE001 - every failure is the parent's to record
        events.put(("failed", pid, _picklable(exc)))
    finally:
        events.close()
        events.join_thread()  # every message reaches the parent before the process ends
