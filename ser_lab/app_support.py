"""What the app's pages need that is not drawing: settings, run tables, lookups, aggregations.

Pages stay thin (read inputs, call ser_lab, draw), and everything here can be tested without
Streamlit. Nothing in this module imports Streamlit; figures are in `ser_lab.figures`.

- the corpus in use (`CorpusChoice`), kept in the session and in a small settings file
  (<cache>/app_settings.json) so every page and every new tab uses the same one;
- the run list as a table, the default Compare pair, status texts;
- per-run lookups (metrics, predictions by utterance, a run's corpus, snapshot frames of two
  runs on a shared orientation);
- the sensitivity table of a sweep (UA / WA per fold, their mean and spread per λ or α).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_lab import fileio, paths
from ser_lab.corpora import CORPORA, REGISTRY
from ser_lab.corpora.base import Manifest
from ser_lab.corpora.labels import CLASS_SETS
from ser_lab.errors import ConfigError, CorpusError, RunError, SerLabError
from ser_lab.runs import ACTIVE_STATES, Run, RunStore, RunSummary

SETTINGS_NAME = "app_settings.json"
DEFAULT_SYNTHETIC_SIZE = "medium"  # the size of the demo runs and of the quick start
SESSION_KEY = "corpus"


# ----------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class PageInfo:
    """One page of the app: what `app.py` registers with st.navigation and what the home
    page's guide links to (the one list of pages)."""

    path: str  # the page's script, relative to the app folder (ser_lab.paths.app_dir)
    title: str
    icon: str
    url_path: str
    blurb: str  # one line for the home page's guide
    default: bool = False


PAGES: tuple[PageInfo, ...] = (
    PageInfo("app_pages/home.py", "Home", ":material/home:", "home",
             "the corpus in use, the runs so far, a quick start", default=True),
    PageInfo("app_pages/train.py", "Train", ":material/model_training:", "train",
             "launch runs, watch losses, accuracy and distances live"),
    PageInfo("app_pages/compare.py", "Compare", ":material/compare:", "compare",
             "two runs' maps of z, confusion matrices, discriminability"),
    PageInfo("app_pages/explore.py", "Explore a clip", ":material/graphic_eq:", "explore",
             "upload or record audio, see where it lands"),
    PageInfo("app_pages/sensitivity.py", "Sensitivity", ":material/tune:", "sensitivity",
             "sweep λ and α, accuracy with error bars"),
    PageInfo("app_pages/corpus.py", "Corpus", ":material/folder_open:", "corpus",
             "classes, speakers, problems, every utterance"),
    PageInfo("app_pages/learn.py", "Learn", ":material/school:", "learn",
             "the two losses, and a live 2-D toy"),
)


def page(url_path: str) -> PageInfo:
    """The page registered under `url_path` (KeyError for an unknown one)."""
    return next(p for p in PAGES if p.url_path == url_path)


# ----------------------------------------------------------------------------- the corpus in use


@dataclass
class CorpusChoice:
    """Which corpus the app works on: an adapter name, its root, the class set, options."""

    name: str = "synthetic"
    root: str | None = None
    classes: str = "paper"
    options: dict = field(default_factory=lambda: {"size": DEFAULT_SYNTHETIC_SIZE})

    def validate(self) -> CorpusChoice:
        if self.name not in CORPORA:
            raise ConfigError(f"unknown corpus {self.name!r}; valid names: {', '.join(CORPORA)}")
        if self.classes not in CLASS_SETS:
            raise ConfigError(f"classes must be one of {', '.join(CLASS_SETS)}, got {self.classes!r}")
        if REGISTRY[self.name].needs_root and not (self.root or "").strip():
            raise CorpusError(
                f"corpus {self.name!r} needs a root folder (only 'synthetic' has none)"
            )
        if not isinstance(self.options, dict):
            raise ConfigError(f"corpus options must be a dict, got {type(self.options).__name__}")
        return self

    @property
    def is_synthetic(self) -> bool:
        return self.name == "synthetic"

    def label(self) -> str:
        """One line for captions: what the corpus is and where it is."""
        if self.is_synthetic:
            size = self.options.get("size", "default")
            where = f" at {self.root}" if self.root else ""
            return f"built-in synthetic corpus (size {size}){where}: SYNTHETIC speech"
        classes = "4 paper classes" if self.classes == "paper" else "all classes"
        return f"{self.name} at {self.root} ({classes})"

    def train_fields(self) -> dict[str, Any]:
        """The TrainConfig fields that select this corpus."""
        return {
            "corpus": self.name,
            "root": str(Path(self.root).expanduser().resolve()) if self.root else None,
            "classes": self.classes,
            "corpus_options": dict(self.options),
        }

    def key(self) -> str:
        """A stable string for cache keys."""
        return json.dumps(asdict(self), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CorpusChoice:
        if not isinstance(d, dict):
            raise ConfigError(f"a corpus choice must be a dict, got {type(d).__name__}")
        return cls(
            name=str(d.get("name", "synthetic")),
            root=d.get("root") or None,
            classes=str(d.get("classes", "paper")),
            options=dict(d.get("options") or {}),
        ).validate()

    @classmethod
    def from_run(cls, run: Run) -> CorpusChoice:
        """The corpus a run was trained on (from its config.json)."""
        train = run.config.get("train") or {}
        return cls(
            name=str(train.get("corpus", "synthetic")),
            root=train.get("root"),
            classes=str(train.get("classes", "paper")),
            options=dict(train.get("corpus_options") or {}),
        )

    def load(self) -> Manifest:
        """The manifest (the synthetic corpus is generated into the cache on first use)."""
        from ser_lab.corpora import load_corpus

        self.validate()
        return load_corpus(self.name, self.root, classes=self.classes, **self.options)

    def available(self) -> bool:
        """Whether loading needs no generation (a synthetic corpus already in the cache, or a
        real corpus root that exists)."""
        if self.is_synthetic and not self.root:
            from ser_lab.corpora.synthetic import default_root

            try:
                root = default_root(
                    self.options.get("size", "default"), self.options.get("seed", 0)
                )
            except SerLabError:
                return False
            return (root / "metadata.csv").is_file()
        return bool(self.root) and Path(self.root).expanduser().exists()


def settings_path() -> Path:
    return paths.cache_dir() / SETTINGS_NAME


def load_corpus_choice() -> CorpusChoice:
    """The saved corpus choice, or the built-in corpus if none (or an unreadable one) is saved."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
        return CorpusChoice.from_dict(data["corpus"])
    except (OSError, ValueError, KeyError, TypeError, SerLabError):
        return CorpusChoice()


def save_corpus_choice(choice: CorpusChoice) -> None:
    fileio.atomic_write_json(settings_path(), {"corpus": choice.validate().to_dict()})


def current_corpus(state: MutableMapping) -> CorpusChoice:
    """The corpus of this session (a page's st.session_state), read from the settings file the
    first time so a new tab starts with the last choice."""
    raw = state.get(SESSION_KEY)
    if isinstance(raw, dict):
        try:
            return CorpusChoice.from_dict(raw)
        except SerLabError:
            pass
    choice = load_corpus_choice()
    state[SESSION_KEY] = choice.to_dict()
    return choice


def set_corpus(state: MutableMapping, choice: CorpusChoice) -> None:
    """Make `choice` the corpus of this session and of new sessions."""
    save_corpus_choice(choice)
    state[SESSION_KEY] = choice.to_dict()


def corpus_tables(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The Corpus page's tables: utterances, counts per class and per speaker, problems."""
    utts = pd.DataFrame(
        [
            {
                "utt_id": u.utt_id,
                "label": u.label,
                "speaker": u.speaker,
                "group": u.group,
                "duration_s": round(u.duration, 2),
                "path": u.path,
            }
            for u in manifest.utterances
        ]
    )
    by_class = pd.DataFrame(
        {
            "label": list(manifest.counts_by_label()),
            "count": list(manifest.counts_by_label().values()),
        }
    )
    by_speaker = (
        utts.groupby(["speaker", "label"]).size().reset_index(name="count")
        if len(utts)
        else pd.DataFrame(columns=["speaker", "label", "count"])
    )
    problems = pd.DataFrame(
        [{"path": p.path, "reason": p.reason} for p in manifest.problems],
        columns=["path", "reason"],
    )
    return {
        "utterances": utts,
        "by_class": by_class,
        "by_speaker": by_speaker,
        "problems": problems,
    }


# ----------------------------------------------------------------------------- runs


def store_signature(store: RunStore) -> tuple:
    """Modification times of every run's status, results and config: changes whenever a run
    is created, progresses, finishes or is deleted. The key of cached run listings."""
    out = []
    for run_id in store.ids():
        d = Path(store.root) / run_id
        stamps = []
        for name in ("status.json", "results.json", "config.json"):
            try:
                stamps.append((d / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        out.append((run_id, *stamps))
    return tuple(out)


def run_signature(run_dir: str | os.PathLike) -> list:
    """Modification times of a run's results, status and per-fold files: part of the cache
    key of everything computed from a run (a re-trained or resumed run gets fresh maps)."""
    d = Path(run_dir)
    files = [d / "results.json", d / "status.json"]
    files += sorted(d.glob("fold_*/embeddings.npz")) + sorted(d.glob("fold_*/snapshots"))
    out = []
    for f in files:
        try:
            out.append([f.relative_to(d).as_posix(), f.stat().st_mtime_ns])
        except OSError:
            out.append([f.relative_to(d).as_posix(), 0])
    return out


def is_active(row: RunSummary) -> bool:
    return row.state in ACTIVE_STATES


def is_finished(row: RunSummary) -> bool:
    return row.state == "done" and row.UA is not None


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f} %"


def run_label(row: RunSummary) -> str:
    """How a run is named in selectors: id, λ/α, result, demo mark."""
    parts = [row.run_id]
    if row.lam is not None:
        alpha = f", α={row.alpha:g}" if row.alpha is not None else ""
        kind = "baseline" if row.lam == 0 else f"λ={row.lam:g}{alpha}"
        parts.append(kind)
    if row.corpus:
        parts.append(f"{row.corpus}/{row.features or '?'}")
    if row.UA is not None:
        parts.append(f"UA {pct(row.UA)}")
    elif row.state != "done":
        parts.append(row.state)
    label = " · ".join(parts)
    return f"[demo] {label}" if row.is_demo else label


def runs_frame(rows: Iterable[RunSummary]) -> pd.DataFrame:
    """The run list as a table (fractions as percent, problems and errors in one column)."""
    records = []
    for r in rows:
        records.append(
            {
                "run": r.run_id,
                "state": r.state,
                "demo": r.is_demo,
                "UA %": None if r.UA is None else round(100 * r.UA, 2),
                "WA %": None if r.WA is None else round(100 * r.WA, 2),
                "λ": r.lam,
                "α": r.alpha,
                "corpus": r.corpus,
                "features": r.features,
                "epochs": r.epochs,
                "progress %": round(100 * (r.progress or 0.0)),
                "problem": r.problem or r.error,
                "sweep": r.sweep_id,
            }
        )
    columns = [
        "run",
        "state",
        "problem",
        "demo",
        "UA %",
        "WA %",
        "λ",
        "α",
        "corpus",
        "features",
        "epochs",
        "progress %",
        "sweep",
    ]
    return pd.DataFrame(records, columns=columns)


def default_pair(rows: list[RunSummary]) -> tuple[str | None, str | None]:
    """The Compare page's default: the newest finished baseline (λ = 0) and the newest finished
    center-loss run (λ > 0) on the same corpus (and the same features when possible).

    `rows` come newest first (as `RunStore.list` returns them). Falls back to the two newest
    finished runs when no such pair exists.
    """
    done = [r for r in rows if is_finished(r)]
    baselines = [r for r in done if r.lam == 0]
    centers = [r for r in done if r.lam is not None and r.lam > 0]
    for same_features in (True, False):
        for b in centers:
            for a in baselines:
                if a.corpus == b.corpus and (a.features == b.features or not same_features):
                    return a.run_id, b.run_id
    if len(done) >= 2:
        return done[1].run_id, done[0].run_id
    return (done[0].run_id, None) if done else (None, None)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "–"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_text(status: dict) -> str:
    """e.g. "fold 0 (1 of 1) · epoch 3/8 · 37 % · ETA 1 min 20 s"."""
    parts = []
    n_folds = status.get("n_folds")
    to_train = f" ({n_folds} to train)" if n_folds else ""
    active = status.get("folds_active")
    if status.get("state") in ACTIVE_STATES and isinstance(active, list) and len(active) > 1:
        # folds training in parallel processes (ser_lab.parallel): each with its epoch
        n_epochs = status.get("n_epochs") or "?"
        each = ", ".join(f"{a.get('fold')} (epoch {a.get('epoch')}/{n_epochs})" for a in active
                         if isinstance(a, dict))
        parts.append(f"folds {each} in parallel{to_train}")
    else:
        if status.get("fold") is not None:
            parts.append(f"fold {status['fold']}{to_train}")
        if status.get("epoch") is not None:
            parts.append(f"epoch {status['epoch']}/{status.get('n_epochs') or '?'}")
    progress = status.get("progress")
    if isinstance(progress, (int, float)):
        parts.append(f"{100 * progress:.0f} %")
    if status.get("state") in ACTIVE_STATES:
        eta = status.get("eta_s")
        parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA: estimating…")
        if status.get("state") == "queued":
            parts.insert(0, "starting (reading the corpus and its features)")
    return " · ".join(parts)


METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "losses": ("softmax_loss", "center_loss", "triplet_loss", "supcon_loss", "total_loss"),
    "accuracy": ("val_UA", "val_WA", "train_UA"),
    "distances": ("intra_dist", "inter_dist", "val_intra_dist"),
}


def metrics_frame(records: list[dict]) -> pd.DataFrame:
    """metrics.jsonl as a long table (fold, epoch, metric, value) for line charts."""
    rows = []
    for r in records:
        for group, keys in METRIC_GROUPS.items():
            for key in keys:
                value = r.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append(
                        {
                            "fold": r.get("fold", 0),
                            "epoch": r.get("epoch"),
                            "group": group,
                            "metric": key,
                            "value": float(value),
                        }
                    )
    return pd.DataFrame(rows, columns=["fold", "epoch", "group", "metric", "value"])


def common_folds(run_a: Run, run_b: Run) -> list[int]:
    return sorted(set(run_a.folds_done()) & set(run_b.folds_done()))


def predictions(run: Run, fold: int) -> pd.DataFrame:
    """One row per utterance of a fold: utt_id, split, label, pred, p(pred), indexed by utt_id."""
    emb = run.load_embeddings(fold)
    names = np.asarray(emb["label_names"]).astype(str)
    probs = np.asarray(emb["probs"])
    preds = np.asarray(emb["preds"])
    frame = pd.DataFrame(
        {
            "utt_id": np.asarray(emb["utt_ids"]).astype(str),
            "split": np.asarray(emb["split"]).astype(str),
            "label": names[np.asarray(emb["labels"])],
            "pred": names[preds],
            "p_pred": probs[np.arange(len(preds)), preds],
        }
    )
    return frame.set_index("utt_id", drop=False)


def map_points(fold_map: Any, splits: Iterable[str]) -> pd.DataFrame:
    """The map's points of the given splits (utt_id, split, label, pred, correct, x, y)."""
    df = fold_map.to_dataframe()
    return df[df["split"].isin(list(splits))].reset_index(drop=True)


def align_snapshot_frames(frames_a: list[dict], frames_b: list[dict]) -> list[dict]:
    """Run B's snapshot frames turned (rotation, reflection, translation, scale) onto run A's
    last frame, fitted on the utterances the two last frames share: side-by-side animations
    then show the same orientation. Frames of B are returned unchanged if they share too few."""
    from ser_lab.projection import align_to

    if not frames_a or not frames_b:
        return frames_b
    ref, last = frames_a[-1], frames_b[-1]
    try:
        _, transform = align_to(ref["xy"], ref["utt_ids"], last["xy"], last["utt_ids"])
    except SerLabError:
        return frames_b
    return [
        {**f, "xy": transform.apply(f["xy"]), "centers_xy": transform.apply(f["centers_xy"])}
        for f in frames_b
    ]


def common_epochs(frames_a: list[dict], frames_b: list[dict]) -> list[int]:
    return sorted({f["epoch"] for f in frames_a} & {f["epoch"] for f in frames_b})


def compare_table(comparison: dict) -> pd.DataFrame:
    """The rows of `ser_lab.analysis.compare_rows` (the table `python -m ser_lab compare`
    prints) as a frame with A, B and B − A columns (accuracies in percent)."""
    from ser_lab.analysis import compare_rows

    def scaled(value: float | None, scale: float) -> float | None:
        return None if value is None else value * scale

    rows = []
    for r in compare_rows(comparison):
        scale = 100.0 if r.percent else 1.0
        rows.append(
            {"metric": r.metric, "A": scaled(r.a, scale), "B": scaled(r.b, scale),
             "B − A": scaled(r.diff, scale)}
        )
    return pd.DataFrame(rows, columns=["metric", "A", "B", "B − A"])


# ----------------------------------------------------------------------------- audio lookups


def corpus_matches(run: Run, fold: int, manifest: Manifest) -> bool:
    """Whether `manifest` still holds the data the run was trained on.

    The trainer records a fingerprint of the utterances it used (ids, labels, speakers,
    groups, durations). The same fingerprint of the manifest's utterances that appear in the
    fold's embeddings must match it; it does not when the corpus was regenerated (e.g. a new
    version of the synthetic generator) or edited, and then its audio is not what the model
    heard. True when the run recorded no fingerprint (nothing to check).
    """
    recorded = (run.config.get("data") or {}).get("fingerprint")
    if not recorded:
        return True
    used = set(np.asarray(run.load_embeddings(fold)["utt_ids"]).astype(str).tolist())
    keep = [i for i, u in enumerate(manifest.utterances) if u.utt_id in used]
    return len(keep) == len(used) and manifest.subset(keep).fingerprint() == recorded


CORPUS_CHANGED = (
    "The corpus on this machine differs from the one this run was trained on (regenerated or "
    "edited since: its fingerprint does not match), so this audio may not be what the model heard."
)


def utterance_paths(manifest: Manifest) -> dict[str, str]:
    return {u.utt_id: u.path for u in manifest.utterances}


def spectrogram(path: str | os.PathLike | bytes, kind: str = "mel") -> tuple[np.ndarray, float]:
    """(log spectrogram (frames, bins), duration s) of an audio file, as the model sees it
    (before normalisation)."""
    from ser_lab.audio import load_audio
    from ser_lab.features import FeatureConfig, compute_features

    clip = load_audio(path if isinstance(path, bytes) else str(path))
    return compute_features(clip.samples, FeatureConfig(kind=kind)), clip.duration


def read_bytes(path: str | os.PathLike | None) -> bytes | None:
    """The file's bytes for an audio player, or None if it is gone."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


# ----------------------------------------------------------------------------- sweeps


def sweep_points(store: RunStore, sweep_id: str) -> list[dict]:
    """The points of a sweep's manifest (all of them, started or not); [] without one."""
    from ser_lab.sweep import read_manifest

    try:
        manifest = read_manifest(store, sweep_id)
    except SerLabError:
        return []
    return list((manifest or {}).get("points") or [])


def sweep_options(store: RunStore, rows: Iterable[RunSummary]) -> list[str]:
    """Every sweep of the store (with a manifest, or seen on a run), newest first."""
    from ser_lab.sweep import list_sweeps, read_manifest

    created: dict[str, str] = {}
    for r in rows:
        if r.sweep_id and (r.created or "") > created.get(r.sweep_id, ""):
            created[r.sweep_id] = r.created or ""
    for sweep_id in list_sweeps(store):
        try:
            manifest = read_manifest(store, sweep_id) or {}
        except SerLabError:
            manifest = {}
        created[sweep_id] = max(created.get(sweep_id, ""), str(manifest.get("created") or ""))
    return sorted(created, key=lambda s: (created[s], s), reverse=True)


def sweep_frame(store: RunStore, rows: Iterable[RunSummary], sweep_id: str | None) -> pd.DataFrame:
    """One row per (run, fold) of a sweep (or of every finished run when sweep_id is None):
    run, state, λ, α, seed, fold, UA, WA (fractions; NaN while a run has no result)."""
    records = []
    for r in rows:
        if sweep_id is not None and r.sweep_id != sweep_id:
            continue
        if sweep_id is None and not is_finished(r):
            continue
        base = {
            "run": r.run_id,
            "state": r.state,
            "lam": r.lam,
            "alpha": r.alpha,
            "seed": r.seed,
            "features": r.features,
            "corpus": r.corpus,
        }
        results = None
        if r.state == "done":
            try:
                results = Run(Path(store.root) / r.run_id).read_results()
            except RunError:
                results = None
        folds = (results or {}).get("folds") or []
        if not folds:
            records.append({**base, "fold": None, "UA": np.nan, "WA": np.nan})
        for f in folds:
            records.append(
                {
                    **base,
                    "fold": f.get("fold"),
                    "UA": f.get("UA", np.nan),
                    "WA": f.get("WA", np.nan),
                }
            )
    columns = ["run", "state", "lam", "alpha", "seed", "features", "corpus", "fold", "UA", "WA"]
    return pd.DataFrame(records, columns=columns)


def with_objective(store: RunStore, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (one row per run and fold, as sweep_frame) plus each run's "objective" and the
    value of that objective's main hyper-parameter ("main_value", objectives.MAIN_PARAMETER),
    read from its config (runs from before objectives existed are the paper's "center")."""
    from ser_lab.objectives import MAIN_PARAMETER, ObjectiveConfig

    names, values = {}, {}
    for run_id in frame["run"].unique():
        try:
            train = Run(Path(store.root) / run_id).config.get("train", {})
        except RunError:
            train = {}
        names[run_id] = name = train.get("objective", "center")
        param = MAIN_PARAMETER.get(name, "lam")
        values[run_id] = train.get(param, getattr(ObjectiveConfig(), param))
    return frame.assign(objective=frame["run"].map(names), main_value=frame["run"].map(values))


def objective_sensitivity(frame: pd.DataFrame, objective: str) -> tuple[str, pd.DataFrame]:
    """(parameter, curve): UA / WA against the main hyper-parameter of `objective`, over the
    rows of a `with_objective` frame trained with it; the curve as `sensitivity` computes it."""
    from ser_lab.objectives import MAIN_PARAMETER

    param = MAIN_PARAMETER[objective]
    rows = frame[frame["objective"] == objective]
    # sensitivity's own aggregation, on the main value put in its λ column (no α filter).
    curve = sensitivity(rows.assign(lam=rows["main_value"]), "lam").rename(columns={"lam": param})
    return param, curve


def sensitivity(frame: pd.DataFrame, axis: str, fixed: float | None = None) -> pd.DataFrame:
    """Mean, sample std (over folds and seeds; NaN for a single unit) and count of UA and WA
    per value of `axis` ("lam" or "alpha"), in percent: `ser_lab.stats.sensitivity_curve`
    (the sweep report's curves), with its rule for the baseline.

    For the λ curve, `fixed` is the α the center-loss runs must have (the λ = 0 point is the
    baseline at that α, else at its smallest α). For the α curve, `fixed` is the λ (> 0).
    None: every finished run, pooled.
    """
    from ser_lab.stats import sensitivity_curve

    if axis not in ("lam", "alpha"):
        raise ConfigError(f"axis must be 'lam' or 'alpha', got {axis!r}")
    columns = [axis, "UA_mean", "UA_std", "WA_mean", "WA_std", "n"]
    records = frame.dropna(subset=["UA"]).to_dict("records")
    held = {"lam": "alpha", "alpha": "lam"}[axis]
    points = sensitivity_curve(records, axis, {} if fixed is None else {held: fixed})
    out = []
    for p in points:
        row = {axis: p.value, "n": p.metrics["UA"].n}
        for m in ("UA", "WA"):
            ms = p.metrics[m]
            row[f"{m}_mean"] = 100 * ms.mean
            row[f"{m}_std"] = np.nan if ms.std is None else 100 * ms.std
        out.append(row)
    return pd.DataFrame(out, columns=columns)


def parse_values(text: str, what: str, *, integer: bool = False) -> list[float]:
    """ "0, 0.1, 0.3" -> [0.0, 0.1, 0.3] (ConfigError naming `what` on a bad entry)."""
    values = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(int(part) if integer else float(part))
        except ValueError:
            kind = "whole numbers" if integer else "numbers"
            raise ConfigError(
                f"{what}: expected {kind} separated by commas, got {part!r}"
            ) from None
    if not values:
        raise ConfigError(f"{what}: give at least one value")
    return values
