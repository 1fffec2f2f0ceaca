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
DEFAULT_SYNTHETIC_SIZE = "default"  # the size of the demo runs and of the quick start (launcher.QUICK_START)
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
    """The run list as a table (fractions as percent, problems and errors in one column).

    A value a run does not have (no result yet, a broken folder's λ) is an empty cell, not
    "None": numbers are written as text for that reason ("64.58", "0.3")."""

    def num(value: float | None, scale: float = 1.0, digits: int | None = None) -> str:
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return ""
        v = scale * value
        return f"{v:.{digits}f}" if digits is not None else f"{v:g}"

    records = []
    for r in rows:
        records.append(
            {
                "run": r.run_id,
                "state": r.state,
                "demo": r.is_demo,
                "UA %": num(r.UA, 100, 2),
                "WA %": num(r.WA, 100, 2),
                "λ": num(r.lam),
                "α": num(r.alpha),
                "corpus": r.corpus or "",
                "features": r.features or "",
                "epochs": num(r.epochs),
                "progress %": round(100 * (r.progress or 0.0)),
                "problem": r.problem or r.error or "",
                "sweep": r.sweep_id or "",
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
    finished runs when no such pair exists. Only runs of the paper's objective form the pair
    (another objective's λ weighs another term; objectives.py).
    """
    done = [r for r in rows if is_finished(r)]
    paper = [r for r in done if (r.objective or "center") == "center"]
    baselines = [r for r in paper if r.lam == 0]
    centers = [r for r in paper if r.lam is not None and r.lam > 0]
    for same_features in (True, False):
        for b in centers:
            for a in baselines:
                if a.corpus == b.corpus and (a.features == b.features or not same_features):
                    return a.run_id, b.run_id
    if len(done) >= 2:
        return done[1].run_id, done[0].run_id
    return (done[0].run_id, None) if done else (None, None)


def quick_start_text(
    preset: dict, store: RunStore | None = None, rows: Iterable[RunSummary] = ()
) -> str:
    """The Home page's description of the quick start, from the preset itself (so it cannot
    drift from what the button launches), with a measured time when earlier runs allow."""
    from ser_lab.corpora.synthetic import SIZES
    from ser_lab.launcher import QUICK_START_ALPHA, QUICK_START_LAMBDA

    size = (preset.get("corpus_options") or {}).get("size", "default")
    spec = SIZES.get(size)
    corpus = f"the built-in synthetic corpus (size {size}"
    if spec is not None:
        corpus += f": {spec.utterances} utterances of {spec.speakers} speakers"
    corpus += ")"
    folds = preset.get("folds") or []
    n_folds = int(preset.get("n_folds", 5))
    which = "one speaker-independent fold" if len(folds) == 1 else f"{len(folds) or n_folds} folds"
    text = (
        f"Train a **baseline** (λ = 0) and a **center-loss** run (λ = {QUICK_START_LAMBDA:g}, "
        f"α = {QUICK_START_ALPHA:g}) side by side on {corpus}: {which} of {n_folds}, "
        f"{preset.get('epochs')} epochs, batch {preset.get('batch_size')}, learning rate "
        f"{preset.get('lr'):g}."
    )
    rate = None
    if store is not None:
        rate, _ = seconds_per_utterance(store, rows, preset.get("features", "mel"))
    if spec is not None and rate is not None:
        seconds = train_estimate(
            spec.utterances, n_folds, len(folds) or n_folds, int(preset.get("epochs", 1)), rate
        )
        text += f" About {format_duration(seconds)} here (measured on earlier runs)."
    return text + (
        " Then open **Compare**: it says in plain words what the pair shows. "
        "(Two pre-trained demo runs are there already.)"
    )


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


# The Train page's overlaid charts: one chart per quantity group, one color per run, one line
# style per quantity. "intra_inter" is derived (intra_dist / inter_dist of the same epoch).
CURVE_GROUPS: dict[str, tuple[str, ...]] = {
    "losses": ("softmax_loss", "center_loss", "total_loss"),
    "accuracy": ("val_UA", "train_UA"),
    "distances": ("intra_dist", "inter_dist"),
    "ratio": ("intra_inter",),
}
CURVE_TITLES = {
    "losses": "losses",
    "accuracy": "accuracy (%)",
    "distances": "feature distances (units of z, training set)",
    "ratio": "intra / inter, scale-free (lower: tighter classes)",
}
LC_NOTE = (
    "Why L_c can rise while the classes get tighter: L_c = mean ‖z − c‖² is measured in units "
    "of z², and the softmax loss keeps pushing the feature norm up (larger z give more "
    "confident scores), so every distance in z grows, the baseline's most of all (nothing "
    "holds its z back). The intra / inter ratio divides that scale out: read it, not L_c, to "
    "see whether center loss makes the classes tighter."
)


def curves_frame(records_by_run: dict[str, list[dict]]) -> pd.DataFrame:
    """Long table (run, epoch, group, metric, value) of several runs' metrics.jsonl for the
    overlaid charts: each metric averaged over the folds that reached that epoch (n_folds
    says how many), plus the scale-free intra / inter ratio of every epoch."""
    rows = []
    for run_id, records in records_by_run.items():
        per_epoch: dict[tuple[str, int], list[float]] = {}
        for r in records:
            epoch = r.get("epoch")
            if not isinstance(epoch, int):
                continue
            values = dict(r)
            intra, inter = r.get("intra_dist"), r.get("inter_dist")
            if isinstance(intra, (int, float)) and isinstance(inter, (int, float)) and inter > 0:
                values["intra_inter"] = intra / inter
            for keys in CURVE_GROUPS.values():
                for key in keys:
                    v = values.get(key)
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        per_epoch.setdefault((key, epoch), []).append(float(v))
        for (key, epoch), vals in per_epoch.items():
            group = next(g for g, keys in CURVE_GROUPS.items() if key in keys)
            rows.append(
                {
                    "run": run_id,
                    "epoch": epoch,
                    "group": group,
                    "metric": key,
                    "value": float(np.mean(vals)),
                    "n_folds": len(vals),
                }
            )
    columns = ["run", "epoch", "group", "metric", "value", "n_folds"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["run", "metric", "epoch"]).reset_index(drop=True)


def seconds_per_utterance(store: RunStore, rows: Iterable[RunSummary], features: str) -> tuple[
    float | None, int
]:
    """(median wall seconds per training utterance per epoch, training and validation
    included; how many finished runs it comes from) over the 5 newest finished runs with
    these features; (None, 0) without any. Measured from the times of consecutive epochs in
    metrics.jsonl and the training-set size in config.json."""
    rates = []
    for r in rows:
        if len(rates) >= 5:
            break
        if not is_finished(r) or r.features != features:
            continue
        try:
            run = Run(Path(store.root) / r.run_id)
            sizes = {
                int(f["fold"]): int(f["train"])
                for f in (run.config.get("data") or {}).get("folds") or []
            }
            records = run.read_metrics()
        except (RunError, KeyError, TypeError, ValueError):
            continue
        gaps = []
        last: dict[int, float] = {}
        for rec in sorted(records, key=lambda x: (x.get("fold", 0), x.get("epoch", 0))):
            fold, t = rec.get("fold", 0), rec.get("time")
            if not isinstance(t, (int, float)):
                continue
            if fold in last and sizes.get(fold):
                gaps.append((t - last[fold]) / sizes[fold])
            last[fold] = t
        if gaps:
            rates.append(float(np.median(gaps)))
    if not rates:
        return None, 0
    return float(np.median(rates)), len(rates)


def train_estimate(
    n_utterances: int,
    n_folds: int,
    folds_trained: int,
    epochs: int,
    rate: float | None,
    *,
    val_fraction: float = 0.15,
) -> float | None:
    """Estimated wall seconds of a run: epochs × folds trained × training utterances per fold
    × the measured seconds per utterance (None without a measurement)."""
    if rate is None or n_utterances <= 0 or n_folds < 1:
        return None
    n_train = n_utterances * (1 - 1 / n_folds) * (1 - val_fraction)
    return rate * n_train * epochs * folds_trained


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


# ----------------------------------------------------------------------------- maps of two runs


@dataclass(eq=False)
class MapPair:
    """Two runs' maps of one fold as the Compare page draws them.

    normalised: each map divided by its OWN mean inter-center distance on the map (`unit_a`,
    `unit_b`, in map units), so both panels show the shape of z, not its size (the center loss
    shrinks z as a whole: intra- and inter-class distances both fall). Not normalised: both
    maps in their raw units (for PCA, units of z). Either way B is then turned onto A by a
    RIGID Procrustes fit (rotation, reflection, translation; never a scale: `rotation.scale`
    is 1), so no rescaling is hidden in the alignment.
    """

    a: Any
    b: Any
    normalised: bool
    unit_a: float
    unit_b: float
    rotation: Any  # Similarity2D, B onto A, scale 1

    def describe(self) -> str:
        """What the panels show, in one sentence."""
        if self.normalised:
            return (
                "Scale-free: each map is drawn in units of its own mean distance between class "
                f"centers (A divided by {self.unit_a:.3g}, B by {self.unit_b:.3g} map units), so "
                "the panels compare the shape of the classes, not the overall size of z."
            )
        return (
            "Raw units: both maps in their own projection's units (for PCA, units of z), so "
            "the overall size of z is compared too (center loss usually shrinks it)."
        )


def _similarity(fold_map: Any, transform: Any) -> Any:
    """`fold_map` with `transform` applied to every coordinate and to the placing of new
    points (composed into its `alignment`)."""
    from dataclasses import replace as _replace

    from ser_lab.analysis import compose

    total = transform if fold_map.alignment is None else compose(fold_map.alignment, transform)
    return _replace(
        fold_map,
        xy=transform.apply(fold_map.xy),
        centers_xy=transform.apply(fold_map.centers_xy),
        class_means_xy={k: transform.apply(v) for k, v in fold_map.class_means_xy.items()},
        alignment=total,
    )


def map_unit(fold_map: Any) -> float:
    """The mean pairwise distance between the class centers on a map (its natural unit)."""
    from ser_lab.discriminability import mean_pairwise_distance

    unit = mean_pairwise_distance(np.asarray(fold_map.centers_xy, dtype=np.float64))
    if not math.isfinite(unit) or unit <= 1e-12:
        raise RunError(
            f"run {fold_map.run_id}: its class centers coincide on the map, so the map has no "
            "scale to normalise by"
        )
    return unit


def compare_maps(map_a: Any, map_b: Any, *, normalised: bool = True) -> MapPair:
    """The two maps of the Compare page (see `MapPair`): optionally each scaled by its own
    mean inter-center distance, then B rigidly aligned onto A on their shared utterances."""
    from ser_lab.projection import Similarity2D, align_to

    unit_a, unit_b = map_unit(map_a), map_unit(map_b)
    if normalised:
        map_a = _similarity(map_a, Similarity2D(np.eye(2), 1.0 / unit_a, np.zeros(2)))
        map_b = _similarity(map_b, Similarity2D(np.eye(2), 1.0 / unit_b, np.zeros(2)))
    _, rotation = align_to(map_a.xy, map_a.utt_ids, map_b.xy, map_b.utt_ids, allow_scale=False)
    return MapPair(map_a, _similarity(map_b, rotation), normalised, unit_a, unit_b, rotation)


def frames_on_map(
    run: Run, fold: int, shown: Any, best_epoch: int | None, splits: Iterable[str] | None = None
) -> list[dict]:
    """A run's per-epoch snapshots of z placed on the map the page shows (`shown`: the same
    projection, scale and alignment), oldest first, and as the LAST frame the shown map itself
    (the kept model, of the best-validation epoch) on the same utterances: so the animation
    ends exactly on the main picture. [] when the fold has no snapshots.

    A frame: {"key", "label", "epoch", "xy", "labels", "split", "utt_ids", "centers_xy"}.
    """
    keep = None if splits is None else set(splits)
    frames = []
    last = None
    for epoch in run.list_snapshots(fold):
        snap = run.load_snapshot(fold, epoch)
        mask = np.ones(len(snap["z"]), dtype=bool)
        if keep is not None:
            mask = np.isin(np.asarray(snap["split"]).astype(str), list(keep))
        if not mask.any():
            continue
        frames.append(
            {
                "key": str(epoch),
                "label": str(epoch),
                "epoch": int(epoch),
                "xy": shown.transform(np.asarray(snap["z"])[mask]),
                "labels": np.asarray(snap["labels"])[mask],
                "split": np.asarray(snap["split"]).astype(str)[mask],
                "utt_ids": np.asarray(snap["utt_ids"]).astype(str)[mask],
                "centers_xy": shown.transform(np.asarray(snap["centers"])),
            }
        )
        last = frames[-1]
    if last is None:
        return []
    index = {u: i for i, u in enumerate(np.asarray(shown.utt_ids).astype(str))}
    pick = np.array([index[u] for u in last["utt_ids"] if u in index], dtype=int)
    kept = {
        "key": "kept",
        "label": "kept",
        "epoch": best_epoch,
        "xy": np.asarray(shown.xy)[pick],
        "labels": np.asarray(shown.labels)[pick],
        "split": np.asarray(shown.split).astype(str)[pick],
        "utt_ids": np.asarray(shown.utt_ids).astype(str)[pick],
        "centers_xy": np.asarray(shown.centers_xy),
    }
    return [*frames, kept]


def common_frames(frames_a: list[dict], frames_b: list[dict]) -> list[str]:
    """The frame keys both runs have, in A's order."""
    keys_b = {f["key"] for f in frames_b}
    return [f["key"] for f in frames_a if f["key"] in keys_b]


def best_epoch(comparison: dict, side: str, fold: int) -> int | None:
    """The best-validation epoch of the model a side's map shows (from results.json, which the
    trainer writes from model.pt's best_epoch); None if unknown."""
    for f in comparison[side.lower()]["folds"]:
        if f.get("fold") == fold and f.get("best_epoch"):
            return int(f["best_epoch"])
    return None


def fold_spread(comparison: dict, side: str, fold: int) -> dict[str, float] | None:
    """Test intra-class and inter-center distance of one fold of a side, in units of z."""
    for f in comparison[side.lower()]["discriminability"]["folds"]:
        if f.get("fold") == fold and f.get("test"):
            return {"intra": float(f["test"]["intra"]), "inter": float(f["test"]["inter"])}
    return None


def comparison_rows(comparison: dict) -> list[dict[str, Any]]:
    """The rows of `ser_lab.analysis.compare_rows` (the one comparison table, the one
    `python -m ser_lab compare` prints) as plain records: key, metric, A, B, diff (B − A;
    accuracies in percent; None where undefined), unit, better. The Compare page's table,
    the panel that reads it and `python -m ser_lab compare --json` all use these rows."""
    from ser_lab.analysis import compare_rows

    def scaled(value: float | None, scale: float) -> float | None:
        return None if value is None else value * scale

    rows = []
    for r in compare_rows(comparison):
        scale = 100.0 if r.percent else 1.0
        rows.append(
            {
                "key": r.key,
                "metric": r.metric,
                "A": scaled(r.a, scale),
                "B": scaled(r.b, scale),
                "diff": scaled(r.diff, scale),
                "unit": "%" if r.percent else "",
                "better": r.better,
            }
        )
    return rows


def compare_table(comparison: dict) -> pd.DataFrame:
    """`comparison_rows` (the table `python -m ser_lab compare` prints) as a frame with
    A, B and B − A columns (accuracies in percent)."""
    table = pd.DataFrame(comparison_rows(comparison), columns=["metric", "A", "B", "diff"])
    return table.rename(columns={"diff": "B − A"})


# The metrics the panel reads out, in this order (the paper's claim is about the first two
# discriminability numbers: center loss makes z tighter and more separable).
READ_KEYS = ("UA", "WA", "test_intra_inter", "test_fisher", "knn_UA", "test_silhouette")
READ_NAMES = {
    "UA": "UA",
    "WA": "WA",
    "test_intra_inter": "test intra/inter ratio",
    "test_fisher": "test Fisher criterion",
    "knn_UA": "5-NN UA of z",
    "test_silhouette": "test silhouette",
}
# |B − A| below this is "unchanged" (percentage points for accuracies, relative for the rest)
SAME_PCT_POINTS = 0.05
SAME_RELATIVE = 0.005
CHANCE_MARGIN = 5.0  # UA within this many points of 100 / n_classes counts as chance level


@dataclass(frozen=True)
class MetricMove:
    """How one metric moved from A to B, and whether that is the better direction."""

    key: str
    name: str
    a: float
    b: float
    diff: float
    unit: str
    better: str  # "higher" or "lower"
    direction: str  # "rose", "fell", "unchanged" or "undefined"

    @property
    def improved(self) -> bool | None:
        """True if B is better than A on this metric, False if worse, None if no change."""
        if self.direction in ("unchanged", "undefined"):
            return None
        return (self.direction == "rose") == (self.better == "higher")

    def text(self) -> str:
        def num(v: float, signed: bool = False) -> str:
            if self.unit == "%":
                return f"{v:{'+' if signed else ''}.1f}" + (" points" if signed else " %")
            return f"{v:{'+' if signed else ''}.3f}"

        if self.direction == "undefined":
            return f"{self.name}: not defined for one of the runs"
        verdict = {True: "better", False: "worse", None: "no change"}[self.improved]
        if self.direction == "unchanged":
            return f"{self.name} unchanged at {num(self.b)} ({self.better} is better)"
        return (
            f"{self.name} {self.direction} from {num(self.a)} to {num(self.b)} "
            f"({num(self.diff, True)}): {verdict}, since {self.better} is better"
        )


@dataclass(frozen=True)
class ComparisonReading:
    """A comparison read out in plain words (see `read_comparison`)."""

    verdict: str  # "supports", "contradicts", "mixed" or "not tested"
    headline: str
    moves: list[MetricMove]
    facts: list[str]  # how many test utterances and folds, what B fixes and breaks, caveats
    center_side: str | None  # "A" or "B": the center-loss side, when the pair is one

    def lines(self) -> list[str]:
        return [m.text() for m in self.moves]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "center_side": self.center_side,
            "metrics": [
                {**asdict(m), "improved": m.improved, "text": m.text()} for m in self.moves
            ],
            "facts": list(self.facts),
        }


def _lams(side: dict) -> list[float | None]:
    return [c.get("lam") for c in side.get("configs") or []]


def _center_side(comparison: dict) -> str | None:
    """"B" when every run of A is a baseline (λ = 0) and every run of B has λ > 0, "A" for
    the reverse, None otherwise (two baselines, two center-loss runs, unknown λ, or a run of
    another objective than the paper's, objectives.py: its λ weighs another term)."""
    la, lb = _lams(comparison["a"]), _lams(comparison["b"])
    if not la or not lb or None in la or None in lb:
        return None
    configs = [*(comparison["a"].get("configs") or []), *(comparison["b"].get("configs") or [])]
    if any(c.get("objective", "center") != "center" for c in configs):
        return None
    if all(v == 0 for v in la) and all(v > 0 for v in lb):
        return "B"
    if all(v > 0 for v in la) and all(v == 0 for v in lb):
        return "A"
    return None


def _move(row: dict) -> MetricMove:
    def num(value: float | None) -> float:
        return math.nan if value is None else float(value)

    a, b, diff = num(row["A"]), num(row["B"]), num(row["diff"])
    if not (math.isfinite(a) and math.isfinite(b)):
        direction = "undefined"
    else:
        tol = SAME_PCT_POINTS if row["unit"] == "%" else SAME_RELATIVE * max(abs(a), abs(b), 1e-12)
        direction = "unchanged" if abs(diff) < tol else ("rose" if diff > 0 else "fell")
    return MetricMove(
        key=row["key"],
        name=READ_NAMES[row["key"]],
        a=a,
        b=b,
        diff=diff,
        unit=row["unit"],
        better=row["better"],
        direction=direction,
    )


def _differences(comparison: dict) -> list[str]:
    """Settings (other than λ and α) in which the two sides differ."""
    keys = ("corpus", "features", "objective", "epochs", "n_folds", "protocol", "seed")
    # a run from before objectives existed has none recorded: it trained the paper's "center"
    defaults = {"objective": "center"}

    def values(side: dict, k: str) -> set[str]:
        return {json.dumps(c.get(k, defaults.get(k))) for c in side.get("configs") or []}

    out = []
    for k in keys:
        va, vb = values(comparison["a"], k), values(comparison["b"], k)
        if va and vb and va != vb:
            out.append(f"{k} ({', '.join(sorted(va))} vs {', '.join(sorted(vb))})")
    return out


def read_comparison(comparison: dict) -> ComparisonReading:
    """Read a `compare_runs` result for the user: which metrics moved which way and by how
    much (UA, WA, test intra/inter, Fisher, 5-NN UA, silhouette), over how many test
    utterances and folds, and whether the pair supports the paper's claim.

    The claim (Dai et al.): center loss makes z more discriminative, read here as a LOWER test
    intra/inter ratio AND a HIGHER test Fisher criterion for the center-loss run than for the
    baseline (both numbers are scale-free, so the shrink of z under the center loss cannot
    fake them). "supports": both hold; "contradicts": neither; "mixed": one; "not tested":
    the pair is not a baseline (λ = 0) against a center-loss run (λ > 0).
    """
    rows = {r["key"]: r for r in comparison_rows(comparison)}
    moves = [_move(rows[k]) for k in READ_KEYS]
    by_key = {m.key: m for m in moves}
    center = _center_side(comparison)
    a, b = comparison["a"], comparison["b"]
    n_test = [sum(int(f.get("n_test") or 0) for f in s["folds"]) for s in (a, b)]
    n_folds = [len(s["folds"]) for s in (a, b)]
    facts = []
    if n_test[0] == n_test[1] and n_folds[0] == n_folds[1]:
        facts.append(
            f"Measured on {n_test[0]} test utterances over {n_folds[0]} "
            f"fold{'s' if n_folds[0] != 1 else ''} per side."
        )
    else:
        facts.append(
            f"Measured on {n_test[0]} test utterances over {n_folds[0]} fold(s) for A, "
            f"{n_test[1]} over {n_folds[1]} for B."
        )
    changed = comparison.get("changed") or {}
    if changed.get("n_shared"):
        facts.append(
            f"Of the {changed['n_shared']} test utterances both scored, B gets "
            f"{changed['n_fixed']} right that A got wrong and {changed['n_broken']} wrong that "
            "A got right."
        )
    if 0 < min(n_test) < 200:
        facts.append(
            f"With about {min(n_test)} test utterances one utterance is worth "
            f"{100 / min(n_test):.1f} points of WA: differences of a few points can be chance."
        )
    chance = 100.0 / max(len(comparison["labels"]), 1)
    at_chance = [
        s for s, m in (("A", by_key["UA"].a), ("B", by_key["UA"].b)) if m < chance + CHANCE_MARGIN
    ]
    if at_chance:
        facts.insert(
            0,
            f"{' and '.join(at_chance)} {'is' if len(at_chance) == 1 else 'are'} at chance level "
            f"(UA within {CHANCE_MARGIN:g} points of {chance:.0f} % with "
            f"{len(comparison['labels'])} classes): such a model has not learnt the classes, "
            "so its feature-space numbers mean little.",
        )
    differ = _differences(comparison)
    if differ:
        facts.append("The two sides differ in more than λ and α: " + "; ".join(differ) + ".")

    if center is None:
        verdict = "not tested"
        headline = (
            "This pair is not a baseline (λ = 0) against a center-loss run (λ > 0), so it does "
            "not test the paper's claim; the numbers below only say how B differs from A."
        )
    else:
        ratio, fisher = by_key["test_intra_inter"], by_key["test_fisher"]
        sign = 1 if center == "B" else -1  # the moves are B − A; read them center − baseline
        tighter = ratio.direction != "undefined" and sign * ratio.diff < 0
        separable = fisher.direction != "undefined" and sign * fisher.diff > 0
        side = f"the center-loss run ({center})"
        if tighter and separable:
            verdict = "supports"
            headline = (
                f"This pair supports the paper's claim: {side} has the lower test intra/inter "
                "ratio (tighter classes) and the higher test Fisher criterion (better separated)."
            )
        elif not tighter and not separable:
            verdict = "contradicts"
            headline = (
                f"This pair does NOT support the paper's claim: {side} has neither the lower test "
                "intra/inter ratio nor the higher test Fisher criterion; its z is not more "
                "discriminative than the baseline's here."
            )
        else:
            verdict = "mixed"
            good = "the lower intra/inter ratio" if tighter else "the higher Fisher criterion"
            bad = "the higher Fisher criterion" if tighter else "the lower intra/inter ratio"
            headline = (
                f"This pair does NOT clearly support the paper's claim: {side} has {good} but "
                f"not {bad}."
            )
        if at_chance:
            headline += " But read it with care: a run is at chance level (see below)."
        if center == "A":
            headline += " (Here A is the center-loss run: \"rose\" and \"fell\" below read B − A.)"
    return ComparisonReading(verdict, headline, moves, facts, center)


def comparison_json(comparison: dict) -> dict[str, Any]:
    """The comparison table as one JSON-ready object (`python -m ser_lab compare --json`):
    the runs of each side, the rows of the table, what changed, and the plain reading."""

    changed = comparison.get("changed") or {}
    return _json_clean(
        {
            "a": {"runs": comparison["a"]["run_ids"], "configs": comparison["a"].get("configs")},
            "b": {"runs": comparison["b"]["run_ids"], "configs": comparison["b"].get("configs")},
            "labels": list(comparison["labels"]),
            "rows": comparison_rows(comparison),
            "changed": {
                k: changed.get(k)
                for k in ("n_shared", "n_fixed", "n_broken", "both_right", "both_wrong")
            },
            "reading": read_comparison(comparison).to_dict(),
        }
    )


def _json_clean(value: Any) -> Any:
    """`value` with every non-finite float as None (JSON has no NaN) and numpy scalars as
    Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


# ----------------------------------------------------------------------------- explore


def corpus_matches_choice(run_choice: CorpusChoice, current: CorpusChoice) -> bool:
    """Whether a run's corpus (`CorpusChoice.from_run`) is the corpus in use: same adapter,
    same folder, same class set (and the same size of the built-in corpus)."""
    if run_choice.name != current.name or run_choice.classes != current.classes:
        return False
    if run_choice.is_synthetic:
        size = lambda c: c.options.get("size", "default")  # noqa: E731
        return size(run_choice) == size(current)

    def where(c: CorpusChoice) -> str:
        return str(Path(c.root).expanduser().resolve()) if c.root else ""

    return where(run_choice) == where(current)


def default_explore_run(
    store: RunStore, rows: Iterable[RunSummary], current: CorpusChoice
) -> str | None:
    """The Explore page's default run: the finished center-loss run (λ > 0) with the best UA
    on the corpus in use; else the demo center-loss run; else the best center-loss run of any
    corpus; else the newest finished run. A run of another objective (objectives.py) is not
    a center-loss run, whatever its λ."""
    done = [r for r in rows if is_finished(r)]
    centers = [
        r for r in done if r.lam is not None and r.lam > 0 and (r.objective or "center") == "center"
    ]

    def on_current(r: RunSummary) -> bool:
        try:
            return corpus_matches_choice(CorpusChoice.from_run(Run(Path(store.root) / r.run_id)), current)
        except SerLabError:
            return False

    for pool in ([r for r in centers if on_current(r)], [r for r in centers if r.is_demo], centers):
        if pool:
            return max(pool, key=lambda r: r.UA or 0.0).run_id
    return done[0].run_id if done else None


# File-name schemes of the corpora whose names carry the emotion: (corpus, the adapter's own
# name pattern, its code table, the pattern group holding the code).
def _name_schemes() -> list[tuple[str, Any, dict[str, str], str]]:
    from ser_lab.corpora import cremad, emodb, ravdess
    from ser_lab.corpora.labels import CREMAD_CODES, EMODB_CODES, RAVDESS_CODES

    return [
        ("emodb", emodb.NAME, EMODB_CODES, "emotion"),
        ("ravdess", ravdess.NAME, RAVDESS_CODES, "emotion"),
        ("cremad", cremad.NAME, CREMAD_CODES, "emotion"),
    ]


def label_from_file_name(name: str) -> tuple[str, str] | None:
    """(corpus, emotion) when a file name follows EmoDB's, RAVDESS's or CREMA-D's naming
    scheme (parsed with the adapters' own patterns and code tables), else None."""
    stem = Path(name).stem
    for corpus, pattern, codes, group in _name_schemes():
        match = pattern.match(stem)
        if match is not None and match[group] in codes:
            return corpus, codes[match[group]]
    return None


@dataclass(frozen=True)
class ClipContext:
    """What is known about a clip on the Explore page: where it comes from (a corpus name,
    "recording" or None if unknown), its true label if known, and a warning when it does not
    come from the run's training corpus."""

    origin: str | None
    true_label: str | None
    how: str  # how the label is known ("" if it is not)
    warning: str | None


REAL_ON_SYNTHETIC = (
    "This run was trained on the built-in SYNTHETIC corpus, and this clip is {what}. A model "
    "trained on synthetic voices has never heard real speech: its answer says little about "
    "the clip's emotion. Train on a real corpus (e.g. EmoDB) to explore real speech."
)
OTHER_CORPUS = (
    "This clip is {what}, not from the run's training corpus ({corpus}): other speakers, "
    "recording conditions and perhaps language, so expect a weaker answer than the test UA."
)


def clip_context(
    name: str | None,
    kind: str,
    run_corpus: str,
    corpus_labels: dict[str, str] | None = None,
) -> ClipContext:
    """Where a clip on the Explore page comes from, its true label if known, and whether to
    warn that it is not from the run's training corpus.

    kind: "upload", "record" or "test" (a held-out test utterance of the run's own corpus);
    run_corpus: the adapter name the run was trained on; corpus_labels: {utt_id: label} of
    the run's corpus when it is on this machine (an uploaded file named like one of its
    utterances is taken to be that utterance)."""
    stem = Path(name).stem if name else ""
    if kind == "test" and corpus_labels and stem in corpus_labels:
        return ClipContext(run_corpus, corpus_labels[stem], "a held-out test utterance", None)
    if kind == "record":
        what = "a recording of real speech"
        warning = (
            REAL_ON_SYNTHETIC.format(what=what)
            if run_corpus == "synthetic"
            else OTHER_CORPUS.format(what=what, corpus=run_corpus)
        )
        return ClipContext("recording", None, "", warning)
    if corpus_labels and stem in corpus_labels:
        return ClipContext(
            run_corpus, corpus_labels[stem], f"its name is an utterance of {run_corpus}", None
        )
    parsed = label_from_file_name(name or "")
    if parsed is not None:
        corpus, label = parsed
        how = f"its name follows the {corpus} naming scheme"
        if corpus == run_corpus:
            return ClipContext(corpus, label, how, None)
        what = f"from {corpus} (real speech, by its name)"
        warning = (
            REAL_ON_SYNTHETIC.format(what=what)
            if run_corpus == "synthetic"
            else OTHER_CORPUS.format(what=what, corpus=run_corpus)
        )
        return ClipContext(corpus, label, how, warning)
    if run_corpus == "synthetic":
        return ClipContext(
            None,
            None,
            "",
            REAL_ON_SYNTHETIC.format(what="not an utterance of the built-in corpus (by its name)"),
        )
    return ClipContext(None, None, "", None)


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
        run = Run(Path(store.root) / r.run_id)
        try:
            train = run.config.get("train") or {}
        except RunError:
            train = {}
        base = {
            "run": r.run_id,
            "state": r.state,
            "lam": r.lam,
            "alpha": r.alpha,
            "seed": r.seed,
            "features": r.features,
            "corpus": _corpus_name(train) or r.corpus,
            "epochs": r.epochs,
            "patience": train.get("patience"),
            "lr": train.get("lr"),
            "batch_size": train.get("batch_size"),
        }
        results = None
        if r.state == "done":
            try:
                results = run.read_results()
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
    columns = ["run", "state", "lam", "alpha", "seed", "features", "corpus", "epochs", "patience", "lr"]
    columns += ["batch_size", "fold", "UA", "WA"]
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


def _corpus_name(train: dict) -> str | None:
    """The corpus of a run's train config, with the synthetic size ("synthetic/tiny"): runs on
    two sizes of the built-in corpus are on different data."""
    name = train.get("corpus")
    if name == "synthetic":
        size = (train.get("corpus_options") or {}).get("size", "default")
        return f"synthetic/{size}"
    return name


POOLED_SETTINGS = {
    "epochs": "epochs",
    "patience": "patience",
    "lr": "learning rate",
    "batch_size": "batch size",
    "corpus": "corpus",
    "features": "features",
}


def pooled_differences(frame: pd.DataFrame) -> list[str]:
    """The settings (other than λ, α and the seed) in which the finished runs of a sweep
    frame differ, e.g. ["epochs (3, 8)", "learning rate (0.0003, 0.001)"]: a curve that pools
    them mixes unlike runs."""
    done = frame.dropna(subset=["UA"]).drop_duplicates("run")
    out = []
    for column, name in POOLED_SETTINGS.items():
        values = {v for v in done[column] if v is not None and v == v}
        if len(values) > 1:
            ordered = sorted(values, key=lambda v: (not isinstance(v, (int, float)), v))
            out.append(f"{name} ({', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in ordered)})")
    return out


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands: state is "running" (its process is alive or one of its runs
    trains), "finished" (every planned point done), or "stopped" (nothing runs, some points
    are not done)."""

    state: str
    planned: int
    done: int
    failed: int
    training: int

    def text(self) -> str:
        of = f" of {self.planned}" if self.planned else ""
        if self.state == "running":
            return f"Running: {self.done}{of} runs done, {self.training} training now."
        if self.state == "finished":
            bad = f", {self.failed} failed" if self.failed else ""
            return f"Finished: all {self.done}{of} runs done{bad}."
        return (
            f"Stopped: {self.done}{of} runs done, {self.failed} failed or interrupted; "
            "nothing is training."
        )


def sweep_progress(
    store: RunStore, rows: Iterable[RunSummary], sweep_id: str, process_alive: bool
) -> SweepProgress:
    """The state of one sweep from its manifest, its run folders and whether its launcher
    process is alive."""
    runs = [r for r in rows if r.sweep_id == sweep_id]
    planned = len(sweep_points(store, sweep_id))
    done = sum(r.state == "done" for r in runs)
    failed = sum(r.state in ("failed", "interrupted") for r in runs)
    training = sum(is_active(r) for r in runs)
    if process_alive or training:
        state = "running"
    elif done >= max(planned, 1) or (not planned and runs and done == len(runs)):
        state = "finished"
    else:
        state = "stopped"
    return SweepProgress(state, planned, done, failed, training)


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


def demo_typicality(store: RunStore, comparison: dict[str, Any]) -> list[str]:
    """The recorded typicality notes of the demo runs in a comparison (ser_lab.demo.typicality:
    which quick-start seed the demo pair is and how it ranks among the bench's seeds)."""
    notes: list[str] = []
    for side in ("a", "b"):
        for run_id in comparison[side].get("run_ids", []):
            try:
                text = store.get(run_id).config.get("typicality")
            except (OSError, SerLabError):
                continue
            if isinstance(text, str) and text not in notes:
                notes.append(text)
    return notes
