"""Take a run's results out of SER Lab: CSV, the Embedding Projector, TensorBoard, ONNX.

`export_run(run, fmt, out_dir, fold=None)` writes one fold of a finished run (the lowest
finished fold unless `fold` is given; TensorBoard: every fold unless `fold` is given) into
`out_dir`, for a tool other than SER Lab:

- "csv": points.csv, one row per utterance (utt_id, audio_path relative to the corpus root,
  speaker, label, split, pred, prob_<class>..., z0..z63), and centers.csv (label, z0..z63),
  for pandas or any dataframe viewer. audio_path and speaker come from the run's corpus and
  are left empty (with a note) when that corpus is not on this machine.
- "projector": tensors.tsv (one z per line, then one line per class center), metadata.tsv
  (header row utt_id, split, label, pred; split "center" for the centers) and
  projector_config.pbtxt: `tensorboard --logdir OUT` opens them in the Embedding Projector.
- "tensorboard": a logdir OUT/<run_id>/fold_<k>/ per fold with the per-epoch scalars of
  metrics.jsonl (`SCALARS`: L_s, L_c, total, train/val UA and WA, intra/inter distances) and
  the fold's embeddings with metadata (the projector files above). Needs the optional
  `tensorboard` package (requirements-export.txt).
- "onnx": model.onnx (log spectrogram in, z and logits out) and model.json beside it with
  everything needed to score a clip without SER Lab: feature settings and a recipe, the
  normalisation statistics (applied inside the graph), labels, centers, the minimum length.

The ONNX graph is `SingleClipGraph`: the fold's CnnBiGru for ONE clip at its full length,
exported with torch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`,
opset 17). CnnBiGru masks padding and runs its GRU on packed sequences; for one unpadded clip
every mask is all ones and the packed GRU is the plain GRU over all frames, so the graph
computes exactly what CnnBiGru.forward(x, [T]) does (a test checks onnxruntime against PyTorch
on clips of several lengths). torch 2.13's default exporter (`dynamo=True`, which needs
onnxscript) fails on this model: decomposing the bidirectional `aten.gru` raises a shape error.

The run folder stays the source of truth: everything here is derived from what
`ser_lab.runs.Run` reads (embeddings, metrics, model), and can be written again at any time.
Every export is built in a hidden staging folder inside `out_dir` and moved into place file by
file (a TensorBoard fold's folder is replaced whole), so an export that fails leaves
no half-written file. `TensorBoardLive` is the `train --tensorboard` hook: it writes each
epoch's scalars as training reports them (through `train_run`'s progress events).

Also here, for the app's download buttons and shareable links: `confusion_csv`,
`clip_result_json`, `export_zip` and `read_view` (a page's choices from its URL, checked).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ser_lab
from ser_lab import fileio
from ser_lab.errors import ConfigError, RunError, SerLabError

FORMATS = ("csv", "projector", "tensorboard", "onnx")
ONNX_OPSET = 17
TENSORBOARD_HINT = "pip install -r requirements-export.txt"
# metrics.jsonl key -> TensorBoard tag (one definition for the export and the live writer)
SCALARS = {
    "softmax_loss": "loss/L_s",
    "center_loss": "loss/L_c",
    "total_loss": "loss/total",
    "train_UA": "UA/train",
    "val_UA": "UA/val",
    "train_WA": "WA/train",
    "val_WA": "WA/val",
    "intra_dist": "distance/intra",
    "inter_dist": "distance/inter",
    "val_intra_dist": "distance/val_intra",
}
# How to compute the input of model.onnx with librosa (the same numbers as
# ser_lab.data.features.compute_features; a test checks it).
MEL_RECIPE = (
    "S = librosa.feature.melspectrogram(y=samples, sr=16000, n_fft=1024, win_length=640, "
    "hop_length=160, window='hann', center=True, pad_mode='constant', power=2.0, n_mels=128, "
    "fmin=0, fmax=8000, htk=False, norm='slaney'); x = np.log(S + 1e-10).T[None]"
)
STFT_RECIPE = (
    "S = np.abs(librosa.stft(samples, n_fft=1024, win_length=640, hop_length=160, "
    "window='hann', center=True, pad_mode='constant')) ** 2; x = np.log(S + 1e-10).T[None]"
)


@dataclass
class ExportResult:
    """What an export wrote: the files (final paths) and notes for the user."""

    format: str
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- entry point


def export_run(run: Any, fmt: str, out_dir: str | os.PathLike, fold: int | None = None) -> ExportResult:
    """Write a run's fold (see the module docstring for each format) into `out_dir`."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    run = _as_run(run)
    if fmt == "tensorboard":
        folds = [_check_fold(run, fold)] if fold is not None else _finished_folds(run)
        return export_tensorboard(run, folds, out_dir)
    k = _check_fold(run, fold) if fold is not None else _finished_folds(run)[0]
    writer = {"csv": export_csv, "projector": export_projector_tsv, "onnx": export_onnx}[fmt]
    return writer(run, k, out_dir)


def _as_run(run: Any) -> Any:
    """A `ser_lab.runs.Run` for a Run or a run folder path."""
    from ser_lab.runs import Run

    if isinstance(run, (str, os.PathLike)):
        run = Run(Path(run))
    if not hasattr(run, "load_embeddings") or not hasattr(run, "dir"):
        raise ConfigError(f"expected a run or a run folder path, got {type(run).__name__}")
    if not Path(run.dir).is_dir():
        raise RunError(f"no run folder at {run.dir}")
    return run


def _finished_folds(run: Any) -> list[int]:
    folds = run.folds_done()
    if not folds:
        raise RunError(f"run {run.run_id} has no finished fold to export (not trained yet?)")
    return folds


def _check_fold(run: Any, fold: Any) -> int:
    if not isinstance(fold, (int, np.integer)) or isinstance(fold, bool) or fold < 0:
        raise ConfigError(f"a fold index must be a non-negative int, got {fold!r}")
    done = run.folds_done()
    if int(fold) not in done:
        have = ", ".join(map(str, done)) or "none"
        raise RunError(f"run {run.run_id} has no finished fold {fold} (finished folds: {have})")
    return int(fold)


@contextlib.contextmanager
def _staging(out_dir: str | os.PathLike, depth: int = 1) -> Iterator[Path]:
    """A private folder inside out_dir to write an export into; on success its entries at
    `depth` (1: its files; 2: e.g. <run_id>/fold_k) replace the same-named entries of out_dir,
    on failure it is removed and out_dir is untouched."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the export destination {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as e:
        raise ConfigError(f"cannot write the export into {out}: {e.strerror or e}") from None
    try:
        yield tmp
        for entry in sorted(tmp.glob("/".join(["*"] * depth))):
            dest = out / entry.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                old = dest.parent / f".old-{entry.name}-{secrets.token_hex(4)}"
                dest.rename(old)
                entry.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(entry, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _moved(paths: list[Path], staging: Path, out_dir: str | os.PathLike) -> list[Path]:
    return [Path(out_dir) / p.relative_to(staging) for p in paths]


# ----------------------------------------------------------------------------- csv


def export_csv(run: Any, fold: int, out_dir: str | os.PathLike) -> ExportResult:
    """points.csv (one row per utterance of the fold) and centers.csv (one row per class)."""
    from ser_lab.analysis.maps import load_fold

    run = _as_run(run)
    emb = load_fold(run, fold)
    names = [str(n) for n in emb["label_names"]]
    audio, note = corpus_lookup(run, fold)
    dim = emb["z"].shape[1]
    z_cols = [f"z{i}" for i in range(dim)]
    points = _csv_text(
        ["utt_id", "audio_path", "speaker", "label", "split", "pred",
         *(f"prob_{n}" for n in names), *z_cols],
        (
            [u, *audio.get(u, ("", "")), names[y], s, names[p],
             *(_float(v) for v in probs), *(_float(v) for v in z)]
            for u, y, s, p, probs, z in zip(
                emb["utt_ids"], emb["labels"], emb["split"], emb["preds"], emb["probs"],
                emb["z"], strict=True,
            )
        ),
    )
    centers = _csv_text(
        ["label", *z_cols],
        ([n, *(_float(v) for v in c)] for n, c in zip(names, emb["centers"], strict=True)),
    )
    with _staging(out_dir) as tmp:
        files = [tmp / "points.csv", tmp / "centers.csv"]
        fileio.atomic_write_text(files[0], points)
        fileio.atomic_write_text(files[1], centers)
    return ExportResult("csv", Path(out_dir), _moved(files, tmp, out_dir), [note] if note else [])


def corpus_lookup(run: Any, fold: int) -> tuple[dict[str, tuple[str, str]], str | None]:
    """{utt_id: (audio path relative to the corpus root, speaker)} of the run's corpus, and a
    note when it is unavailable or differs from the data the run was trained on. The corpus
    is never generated here: a synthetic corpus no longer in the cache is just unavailable."""
    from ser_lab.app.corpus import CorpusChoice
    from ser_lab.app.explore import corpus_matches

    try:
        choice = CorpusChoice.from_run(run)
        if not choice.available():
            return {}, (
                f"the run's corpus ({choice.label()}) is not on this machine: "
                "audio_path and speaker are left empty"
            )
        manifest = choice.load()
        same = corpus_matches(run, fold, manifest)
    except SerLabError as e:
        return {}, f"the run's corpus cannot be read ({e}): audio_path and speaker are left empty"
    base = Path(manifest.root)
    base = base.parent if base.is_file() else base
    lookup = {
        u.utt_id: (Path(os.path.relpath(u.path, base)).as_posix(), str(u.speaker))
        for u in manifest.utterances
    }
    note = None
    if not same:
        note = (
            "the corpus on this machine differs from the one the run was trained on "
            "(its fingerprint does not match): audio_path may not be the audio the model heard"
        )
    return lookup, note


def _csv_text(header: list[str], rows: Any) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _float(value: float) -> str:
    """A float32 value in the shortest form that reads back to the same float32."""
    return str(np.float32(value))


# ----------------------------------------------------------------------------- projector


def export_projector_tsv(run: Any, fold: int, out_dir: str | os.PathLike) -> ExportResult:
    """The Embedding Projector's tensors.tsv, metadata.tsv and projector_config.pbtxt."""
    run = _as_run(run)
    with _staging(out_dir) as tmp:
        files = _write_projector(run, fold, tmp)
    return ExportResult("projector", Path(out_dir), _moved(files, tmp, out_dir))


def _write_projector(run: Any, fold: int, folder: Path) -> list[Path]:
    """tensors.tsv (no header: the fold's z, then the class centers), metadata.tsv (header
    utt_id, split, label, pred; split "center" and pred "-" on the center rows) and
    projector_config.pbtxt naming both. Tabs and newlines inside values become spaces."""
    from ser_lab.analysis.maps import load_fold

    emb = load_fold(run, fold)
    names = [str(n) for n in emb["label_names"]]
    vectors = np.concatenate([emb["z"], emb["centers"]])
    tensors = "".join("\t".join(_float(v) for v in row) + "\n" for row in vectors)
    rows = ["utt_id\tsplit\tlabel\tpred"]
    for u, s, y, p in zip(emb["utt_ids"], emb["split"], emb["labels"], emb["preds"], strict=True):
        rows.append("\t".join(_tsv_cell(v) for v in (u, s, names[y], names[p])))
    rows += [f"center:{_tsv_cell(n)}\tcenter\t{_tsv_cell(n)}\t-" for n in names]
    config = (
        "embeddings {\n"
        f'  tensor_name: "{run.run_id} fold {fold} z"\n'
        '  tensor_path: "tensors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "}\n"
    )
    files = [folder / "tensors.tsv", folder / "metadata.tsv", folder / "projector_config.pbtxt"]
    for path, text in zip(files, (tensors, "\n".join(rows) + "\n", config), strict=True):
        fileio.atomic_write_text(path, text)
    return files


def _tsv_cell(value: Any) -> str:
    return " ".join(str(value).replace("\t", " ").splitlines()) or " "


# ----------------------------------------------------------------------------- tensorboard


def _summary_writer(logdir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            f"the TensorBoard export needs the optional tensorboard package ({TENSORBOARD_HINT})"
        ) from None
    return SummaryWriter(log_dir=str(logdir), flush_secs=5)


def _add_scalars(writer: Any, record: dict) -> None:
    step = int(record["epoch"])
    for key, tag in SCALARS.items():
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            writer.add_scalar(tag, float(value), step, walltime=record.get("time"))


def export_tensorboard(run: Any, folds: Sequence[int], out_dir: str | os.PathLike) -> ExportResult:
    """OUT/<run_id>/fold_<k>/: the fold's per-epoch scalars and its embeddings (projector)."""
    run = _as_run(run)
    records = run.read_metrics()
    with _staging(out_dir, depth=2) as tmp:  # each OUT/<run_id>/fold_k is replaced whole
        files: list[Path] = []
        for k in folds:
            fold_dir = tmp / run.run_id / f"fold_{k}"
            writer = _summary_writer(fold_dir)
            try:
                for record in sorted(
                    (r for r in records if r.get("fold") == k and "epoch" in r),
                    key=lambda r: r["epoch"],
                ):
                    _add_scalars(writer, record)
            finally:
                writer.close()
            _write_projector(run, k, fold_dir)
            files += sorted(p for p in fold_dir.iterdir() if p.is_file())
        # a second export of a fold replaces it: its scalars are never doubled, other folds stay
    notes = [f"open it with: tensorboard --logdir {out_dir}"]
    return ExportResult("tensorboard", Path(out_dir), _moved(files, tmp, out_dir), notes)


class TensorBoardLive:
    """The `train --tensorboard LOGDIR` hook: a `train_run` progress callback that writes each
    epoch's scalars to LOGDIR/<run_id>/fold_<k>/ as it is reported, and on `close` the
    embeddings of the finished folds. The run folder stays the source of truth; a clean logdir
    can be rebuilt from it at any time with `export --format tensorboard`."""

    def __init__(self, logdir: str | os.PathLike, run: Any) -> None:
        self.root = Path(logdir) / run.run_id
        self.run = run
        self.writers: dict[int, Any] = {}
        try:  # fail before training, not after the first epoch
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"train --tensorboard needs the optional tensorboard package ({TENSORBOARD_HINT})"
            ) from None

    def __call__(self, event: dict) -> None:
        if not event.get("epoch_done"):
            return
        k = int(event["fold"])
        if k not in self.writers:
            self.writers[k] = _summary_writer(self.root / f"fold_{k}")
        _add_scalars(self.writers[k], event["metrics"])
        self.writers[k].flush()

    def close(self) -> None:
        """Close the event files and add the embeddings of every finished fold. Called in the
        CLI's `finally`: a problem here is printed, never raised over training's own error."""
        for writer in self.writers.values():
            writer.close()
        for k in self.run.folds_done():
            try:
                _write_projector(self.run, k, self.root / f"fold_{k}")
            except (SerLabError, OSError) as e:
                print(f"TensorBoard: no embeddings for fold {k}: {e}", file=sys.stderr)


# ----------------------------------------------------------------------------- onnx


def single_clip_graph(model: Any, norm: Any, per_clip: bool = False) -> Any:
    """The `SingleClipGraph` (eval mode) of a fold's CnnBiGru and its NormStats (`per_clip`: a
    model trained with per-speaker statistics standardises a clip with the clip's own)."""
    return _single_clip_graph_class()(model, norm, per_clip).eval()


@functools.cache
def _single_clip_graph_class() -> type:
    """Defined on first use: importing torch takes seconds, and the CLI imports this module."""
    import torch
    from torch import nn

    from ser_lab.data.features import STD_FLOOR

    class SingleClipGraph(nn.Module):
        """log spectrogram (1, T, F) -> (z (1, 64), logits (1, C)) for one unpadded clip of a fold:
        normalise with the fold's statistics, the CnnBiGru's CNN blocks with lengths taken from
        the input's own length (their masks are then all ones), its bidirectional GRU as a plain
        GRU over every step, FC1 + PReLU, FC2. Same numbers as CnnBiGru.forward(x_norm, [T])."""

        def __init__(self, model: Any, norm: Any, per_clip: bool = False) -> None:
            super().__init__()
            self.model = model
            self.per_clip = per_clip
            self.register_buffer("mean", torch.as_tensor(norm.mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(norm.std, dtype=torch.float32))

        def forward(self, log_spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            m = self.model
            if self.per_clip:  # NormStats.fit of the clip alone: population std, floored
                mean = log_spec.mean(dim=1, keepdim=True)
                std = ((log_spec - mean) ** 2).mean(dim=1, keepdim=True).sqrt().clamp(min=STD_FLOOR)
                x = (log_spec - mean) / std
            else:
                x = (log_spec - self.mean) / self.std  # (1, T, F)
            h = x.transpose(1, 2).unsqueeze(1)  # (1, 1, F, T)
            lengths = torch.ones(1, dtype=torch.long) * x.shape[1]
            for block in m.cnn:
                h, lengths = block(h, lengths)  # (1, C, F', T')
            b, c, f, t = h.shape
            seq = h.permute(0, 3, 1, 2).reshape(b, t, c * f)  # (1, T', C*F')
            _, h_n = m.gru(seq)  # (2, 1, 128): last forward and last backward outputs
            z = m.prelu(m.fc1(torch.cat([h_n[0], h_n[1]], dim=1)))  # (1, 64)
            return z, m.fc2(z)

    return SingleClipGraph


def export_onnx(run: Any, fold: int, out_dir: str | os.PathLike) -> ExportResult:
    """model.onnx and model.json (see the module docstring)."""
    import torch

    from ser_lab.data.features import FeatureConfig, NormStats
    from ser_lab.learn.evaluate import load_fold_model, normalisation
    from ser_lab.learn.model import min_frames

    run = _as_run(run)
    model, payload = load_fold_model(run, fold, "cpu")
    try:
        norm = NormStats.from_dict(payload["norm"])
        features = FeatureConfig.from_dict(payload["feature_config"])
        centers = np.asarray(payload["centers"].float().numpy(), dtype=np.float32)
        labels = [str(n) for n in payload["label_names"]]
    except (KeyError, TypeError, ValueError, AttributeError, SerLabError) as e:
        raise RunError(f"run {run.run_id}: fold {fold} model.pt is inconsistent ({e})") from None
    per_clip = normalisation(payload) == "speaker"
    graph = single_clip_graph(model, norm, per_clip)
    shortest = min_frames(model.cfg)
    example = torch.zeros(1, max(shortest, 200), model.cfg.n_bins)
    meta = {
        "format_version": 1,
        "run_id": run.run_id,
        "fold": fold,
        "best_epoch": int(payload.get("best_epoch", 0)),
        "ser_lab_version": ser_lab.__version__,
        "torch_version": torch.__version__,
        "exporter": f"torch.onnx.export(dynamo=False), opset {ONNX_OPSET}",
        "input": {
            "name": "log_spectrogram",
            "shape": [1, "frames", model.cfg.n_bins],
            "dtype": "float32",
            "min_frames": shortest,
            "what": "ONE clip's log power spectrogram (frames, bins) with a batch axis of 1, "
            "NOT normalised: the graph applies (x - mean) / std itself"
            + (" with the clip's own per-bin mean and std (the model was trained with each "
               "speaker's own statistics)" if per_clip else ""),
        },
        "outputs": {
            "z": "(1, 64) the learned feature (what the center loss acts on)",
            "logits": "(1, C) class scores; softmax gives the probabilities",
        },
        "audio": "decode to mono float32 at 16 kHz, drop exact-zero samples at both ends, "
        f"cut at {features.max_seconds} s",
        "features": features.to_dict(),
        "feature_recipe": MEL_RECIPE if features.kind == "mel" else STFT_RECIPE,
        "normalisation": {"applied_in_graph": True, "statistics": "per clip" if per_clip else "training part",
                          **({} if per_clip else norm.to_dict())},
        "labels": labels,
        "centers": centers.tolist(),
        "model_config": model.cfg.to_dict(),
    }
    with _staging(out_dir) as tmp:
        onnx_path, json_path = tmp / "model.onnx", tmp / "model.json"
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of dynamo=True, which cannot
            # export this GRU (module docstring); its batch-size GRU warning does not apply
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    graph, (example,), str(onnx_path), input_names=["log_spectrogram"],
                    output_names=["z", "logits"], dynamic_axes={"log_spectrogram": {1: "frames"}},
                    opset_version=ONNX_OPSET, dynamo=False,
                )
            except Exception as e:  # noqa: BLE001 - an exporter failure is one clear line
                raise RunError(f"ONNX export of run {run.run_id} fold {fold} failed: {e}") from None
        fileio.atomic_write_json(json_path, meta)
        files = [onnx_path, json_path]
    return ExportResult("onnx", Path(out_dir), _moved(files, tmp, out_dir))


# ----------------------------------------------------------------------------- for the app


def export_zip(run: Any, fmt: str, fold: int | None = None) -> tuple[bytes, list[str]]:
    """An export as the bytes of a zip file (for a download button) and its notes."""
    with tempfile.TemporaryDirectory(prefix="ser_lab-export-") as tmp:
        result = export_run(run, fmt, tmp, fold)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in result.files:
                zf.write(path, path.relative_to(tmp).as_posix())
        return buf.getvalue(), [n for n in result.notes if "--logdir" not in n]


def confusion_csv(matrix: Any, labels: Sequence[str]) -> str:
    """A confusion matrix as CSV: rows true class, columns predicted class."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(labels), len(labels)):
        raise ConfigError(f"a confusion matrix of {len(labels)} classes must be square, got {m.shape}")
    finite = np.isfinite(m)
    integral = bool(np.all(m[finite] == np.round(m[finite])))
    # an empty cell, not "nan", for a row-normalised class with no test utterance
    values = [
        "" if not ok else str(int(v)) if integral else repr(float(v))
        for v, ok in zip(m.ravel(), finite.ravel(), strict=True)
    ]
    n = len(labels)
    return _csv_text(
        ["true \\ predicted", *labels],
        ([labels[i], *values[i * n : (i + 1) * n]] for i in range(n)),
    )


def clip_result_json(pred: Any, *, run_id: str, clip: str, method: str | None = None,
                     map_xy: Any = None) -> str:
    """A `ClipPrediction` as JSON: what the run makes of the clip (no audio, no spectrogram)."""
    names = list(pred.label_names)
    result: dict[str, Any] = {
        "run_id": run_id,
        "clip": clip,
        "fold": pred.fold,
        "reference_fold": pred.reference_fold,
        "predicted": pred.predicted,
        "probabilities": {n: float(p) for n, p in zip(names, pred.probabilities, strict=True)},
        "center_distances": {
            n: float(d) for n, d in zip(names, pred.center_distances, strict=True)
        },
        "duration_s": float(pred.duration),
        "original_duration_s": float(pred.original_duration),
        "truncated": bool(pred.truncated),
        "z": [float(v) for v in pred.z],
        "neighbours": [
            {k: n.get(k) for k in ("utt_id", "label", "distance")} for n in pred.neighbours
        ],
    }
    if method is not None and map_xy is not None:
        result["map"] = {"method": method, "xy": [float(v) for v in np.asarray(map_xy)]}
    return json.dumps(result, indent=2) + "\n"


def read_view(
    query: Mapping[str, Any], allowed: Mapping[str, Sequence[str]], what: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """A page's choices from its URL's query parameters, checked against what exists now.

    `allowed[key]` are the valid values of a parameter and `what[key]` its name for the user.
    Returns the valid choices and one note per parameter that is not valid any more (a stale
    or edited link): the page then shows its default for it, never an error.
    """
    choices, notes = {}, []
    for key, options in allowed.items():
        raw = query.get(key)
        if raw is None:
            continue
        value = str(raw[-1] if isinstance(raw, (list, tuple)) and raw else raw)
        if value in [str(o) for o in options]:
            choices[key] = value
        else:
            shown = value if len(value) <= 60 else value[:57] + "..."
            notes.append(f"{what.get(key, key)} {shown!r} from the link is not available here")
    return choices, notes
