"""Train: launch a run in its own process and watch runs train (losses, accuracy, distances)."""

import json

import streamlit as st
import torch

from ser_lab.app import access, figures, run_tables
from ser_lab.app import corpus as app_corpus
from ser_lab.choices import LR_SCHEDULES, NORMALISATIONS, PROTOCOLS
from ser_lab.config import OBJECTIVES, TrainConfig
from ser_lab.errors import SerLabError
from ser_lab.experiments import launcher
from ser_lab.learn import objectives as obj
from ser_lab.runs import RunStore


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    return RunStore(root).list()


@st.cache_data(show_spinner=False, max_entries=8)
def corpus_size(key: str) -> int:
    return len(app_corpus.CorpusChoice.from_dict(json.loads(key)).load())


store = RunStore()
corpus = app_corpus.current_corpus(st.session_state)
policy = access.policy()
st.title("Train")
if policy.shared:
    st.info(
        "Shared mode: starting, stopping and resuming trainings are switched off on this server; "
        "the runs below can be watched.",
        icon=":material/lock:",
    )
rows = [r for r in list_runs(str(store.root), run_tables.store_signature(store)) if r.state != "broken"]
by_id = {r.run_id: r for r in rows}
active_ids = [r.run_id for r in rows if run_tables.is_active(r)]

# ----------------------------------------------------------------------------- new run

devices = ["auto", "cpu"]
if torch.cuda.is_available():
    devices.append("cuda")
if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
    devices.append("mps")

# Presets fill the form; "quick" is the Home page's quick-start preset (launcher.QUICK_START,
# read through TrainConfig so its unset fields show their defaults) on the corpus in use;
# "paper" is TrainConfig's own defaults: the paper's batch and learning rate, and `epochs` as
# a maximum with early stopping after `patience` epochs without a better validation UA.
QUICK, PAPER = TrainConfig(**launcher.QUICK_START), TrainConfig()
PRESETS = {
    "quick": dict(
        epochs=QUICK.epochs,
        patience=QUICK.patience,
        augment=QUICK.augment,
        refit=QUICK.refit,
        normalise=QUICK.normalise,
        lr_schedule=QUICK.lr_schedule,
        n_folds=QUICK.n_folds,
        which="first fold only" if QUICK.folds else "all folds",
        batch_size=QUICK.batch_size,
        lr=QUICK.lr,
        snapshot_every=QUICK.snapshot_every,
    ),
    "paper": dict(
        epochs=PAPER.epochs,
        patience=PAPER.patience,
        augment=PAPER.augment,
        refit=PAPER.refit,
        normalise=PAPER.normalise,
        lr_schedule=PAPER.lr_schedule,
        n_folds=PAPER.n_folds,
        which="all folds",
        batch_size=PAPER.batch_size,
        lr=PAPER.lr,
        snapshot_every=1,
    ),
}
PRESET_HELP = {
    "quick": "quick: the Home page's quick-start settings (one fold, few epochs)",
    "paper": f"paper: up to {PAPER.epochs} epochs with early stopping (patience {PAPER.patience}), "
    f"{PAPER.n_folds} folds, batch {PAPER.batch_size}, Adam {PAPER.lr:g}",
}

# closed while something trains (also after a reload), so the running run is in view
with st.expander("New run", expanded=not (st.session_state.get("watch") or active_ids)):
    st.caption(f"Corpus: **{corpus.label()}** (change it on the home page or the Corpus page)")
    preset = st.radio(
        "preset", list(PRESETS), horizontal=True, format_func=PRESET_HELP.get, key="train_preset"
    )
    p = PRESETS[preset]
    objective = st.selectbox(
        "objective",
        OBJECTIVES,
        format_func=obj.LABELS.get,
        help="λ weighs the extra term of every arm but AM-Softmax (ser_lab/learn/objectives.py)",
    )
    arm_settings = {}  # the chosen arm's own settings only
    if obj.SETTINGS[objective]:
        cols = st.columns(4)
        for col, (field, label, default, step) in zip(cols, obj.SETTINGS[objective]):
            arm_settings[field] = float(
                col.number_input(label, min_value=0.0, value=default, step=step)
            )
    c1, c2, c3, c4 = st.columns(4)
    name = c1.text_input("name", value="", placeholder="optional")
    features = c2.radio(
        "features",
        ["mel", "stft"],
        horizontal=True,
        format_func=lambda k: {"mel": "Mel (128)", "stft": "STFT (513)"}[k],
    )
    lam = c3.number_input(
        "λ (center-loss weight)",
        min_value=0.0,
        max_value=100.0,
        value=0.3,
        step=0.05,
        help="0 trains the softmax-only baseline",
    )
    alpha = c4.slider("α (center update rate)", 0.0, 1.0, 0.5, 0.05)
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input(
        "epochs",
        min_value=1,
        max_value=500,
        value=p["epochs"],
        key=f"epochs-{preset}",
        help="the most epochs a fold trains; early stopping usually ends it sooner",
    )
    n_folds = c2.number_input(
        "folds", min_value=2, max_value=20, value=p["n_folds"], key=f"folds-{preset}"
    )
    options = ["all folds", "first fold only"]
    which = c3.radio(
        "train", options, horizontal=True, index=options.index(p["which"]), key=f"which-{preset}"
    )
    protocol = c4.selectbox(
        "protocol",
        PROTOCOLS,
        index=PROTOCOLS.index("speaker"),
        format_func=lambda p: {
            "paper": "paper (stratified)",
            "speaker": "speaker-independent",
            "session": "leave one session out",
        }[p],
    )
    c1, c2, c3, c4 = st.columns(4)
    seed = c1.number_input("seed", min_value=0, max_value=2**31 - 1, value=0)
    device = c2.selectbox("device", devices)
    batch_size = c3.number_input(
        "batch size", min_value=1, max_value=512, value=p["batch_size"], key=f"batch-{preset}"
    )
    lr = c4.number_input(
        "learning rate",
        min_value=1e-6,
        max_value=1.0,
        value=p["lr"],
        format="%.5f",
        key=f"lr-{preset}",
    )
    c1, c2, c3 = st.columns([1, 1, 2])
    augment = c2.checkbox(
        "SpecAugment",
        value=p["augment"],
        key=f"augment-{preset}",
        help="time and frequency masks on training batches (off in the quick start: see README)",
    )
    patience = c1.number_input(
        "patience (epochs)",
        min_value=0,
        max_value=500,
        value=p["patience"],
        key=f"patience-{preset}",
        help="stop a fold after this many epochs without a better validation UA (0 = never)",
    )
    snapshot_every = c3.number_input(
        "z snapshot every N epochs (0 = none; for the training animation)",
        min_value=0,
        max_value=100,
        value=p["snapshot_every"],
        key=f"snap-{preset}",
    )
    d1, d2, d3 = st.columns(3)
    normalise = d1.selectbox(
        "normalisation",
        NORMALISATIONS,
        index=NORMALISATIONS.index(p["normalise"]),
        key=f"normalise-{preset}",
        format_func={"corpus": "per corpus (training part)", "speaker": "per speaker"}.get,
        help="standardise each frequency bin with the statistics of the fold's training part, or "
        "of each speaker's own utterances (a clip you upload later: its own)",
    )
    refit = d2.checkbox(
        "refit on train + validation",
        value=p["refit"],
        key=f"refit-{preset}",
        help="after early stopping, train each fold again from the same start on its training and "
        "validation parts for the epoch count validation chose, and keep that model (about twice "
        "the training time)",
    )
    lr_schedule = d3.selectbox(
        "learning-rate schedule",
        LR_SCHEDULES,
        index=LR_SCHEDULES.index(p["lr_schedule"]),
        key=f"lr-schedule-{preset}",
        help="the paper's constant rate, or halve it after "
        f"{TrainConfig.lr_patience} epochs without a better validation UA (plateau)",
    )
    folds_trained = 1 if which == "first fold only" else int(n_folds)
    rate, n_rate = run_tables.seconds_per_utterance(store, rows, features)
    n_utts = None
    if corpus.available():
        try:
            n_utts = corpus_size(corpus.key())
        except SerLabError:
            n_utts = None
    estimate = (
        run_tables.train_estimate(n_utts, int(n_folds), folds_trained, int(epochs), rate,
                                  refit=bool(refit), patience=int(patience))
        if n_utts
        else None
    )
    if estimate is not None:
        stopping = (
            f" Early stopping (patience {int(patience)}) usually ends a fold sooner."
            if 0 < int(patience) < int(epochs)
            else ""
        )
        st.caption(
            f":material/schedule: Estimated time: about **{run_tables.format_duration(estimate)}** "
            f"({folds_trained} fold(s) × {int(epochs)} epochs on {n_utts} utterances, at the "
            f"speed of the last {n_rate} finished {features} run(s) on this machine; plus a "
            "few seconds to start, and more if other runs train at the same time)." + stopping
            + (" Includes the refit on train + validation." if refit else "")
        )
    else:
        st.caption(
            ":material/schedule: No time estimate yet: it needs one finished run with these "
            "features on this machine"
            + ("" if n_utts else " and the corpus in the cache")
            + "."
        )
    launch = st.button(
        "Start training", type="primary", key="start_training", disabled=policy.shared
    )

if launch:
    try:
        policy.check("starting a training")
        cfg = TrainConfig(
            **corpus.train_fields(),
            features=features,
            lam=float(lam),
            alpha=float(alpha),
            objective=objective,
            **arm_settings,
            epochs=int(epochs),
            patience=int(patience),
            augment=bool(augment),
            refit=bool(refit),
            normalise=normalise,
            lr_schedule=lr_schedule,
            n_folds=int(n_folds),
            folds=[0] if which == "first fold only" else None,
            protocol=protocol,
            seed=int(seed),
            device=device,
            batch_size=int(batch_size),
            lr=float(lr),
            snapshot_every=int(snapshot_every),
        )
        run = launcher.launch_training(cfg, store, name=name.strip() or None)
    except SerLabError as exc:
        st.error(f"Not started: {exc}")
    else:
        st.session_state["watch"] = [run.run_id] + [
            r for r in st.session_state.get("watch", []) if r != run.run_id
        ]
        st.success(f"Started `{run.run_id}` in its own process: closing this tab does not stop it.")
        rows = [r for r in RunStore(store.root).list() if r.state != "broken"]
        by_id = {r.run_id: r for r in rows}

# ----------------------------------------------------------------------------- watch runs

watch = [r for r in st.session_state.get("watch", []) if r in by_id]
default = watch + [r for r in active_ids if r not in watch]
if not default and rows:
    # nothing training: the newest baseline / center-loss pair, overlaid (the ablation)
    default = [i for i in run_tables.default_pair(rows) if i is not None] or [rows[0].run_id]

st.header("Runs")
selected = st.multiselect(
    "runs to show", list(by_id), default=default[:4], format_func=lambda i: run_tables.run_label(by_id[i])
)
any_active = any(run_tables.is_active(by_id[i]) for i in selected)


def show_run(run_id: str) -> bool:
    """Draw one run; returns whether it is still training."""
    try:
        run = store.get(run_id)
        status = run.live_status()
    except SerLabError as exc:
        st.error(f"{run_id}: {exc}")
        return False
    state = status.get("state")
    active = state in ("queued", "running")
    icon = {
        "done": ":material/check_circle:",
        "running": ":material/hourglass_top:",
        "queued": ":material/hourglass_top:",
        "failed": ":material/error:",
        "interrupted": ":material/pause_circle:",
    }.get(state, ":material/help:")
    st.subheader(f"{icon} {run_id}")
    cfg = run.config.get("train", {})
    st.caption(
        f"{state} · {cfg.get('corpus')} / {cfg.get('features')} · "
        f"{cfg.get('objective', 'center')} · λ={cfg.get('lam')} α={cfg.get('alpha')} · {cfg.get('epochs')} epochs · "
        f"protocol {cfg.get('protocol')} · device {status.get('device') or cfg.get('device')}"
    )
    progress = float(status.get("progress") or 0.0)
    st.progress(min(max(progress, 0.0), 1.0), text=run_tables.progress_text(status) or state)
    buttons = st.container(horizontal=True)
    stop = active and buttons.button(
        "Stop", icon=":material/stop:", key=f"stop-{run_id}", disabled=policy.shared
    )
    if stop and not policy.allows("stopping a training"):
        st.error(policy.refusal("stopping a training"))
    elif stop:
        if launcher.stop_run(run):
            st.toast(f"Stopping {run_id} after its current batch…")
        else:
            st.warning("No training process found for this run.")
    if state in ("interrupted", "failed") and buttons.button(
        "Resume", icon=":material/play_arrow:", key=f"resume-{run_id}", disabled=policy.shared
    ):
        try:
            policy.check("resuming a training")
            launcher.resume_run(run, store)
        except SerLabError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    if state == "failed":
        st.error(f"Training failed: {status.get('error') or 'see the log below'}")
    if status.get("problem"):
        st.warning(status["problem"])
    if state in ("failed", "interrupted", "queued"):
        tail = launcher.log_tail(run)
        if tail:
            with st.expander("log (train.log)"):
                st.code(tail, language=None)
    results = run.read_results() if state == "done" else None
    if results:
        m = results["mean"]
        c1, c2, c3 = st.columns(3)
        c1.metric("test UA", run_tables.pct(m["UA"]), help="mean over folds of the unweighted accuracy")
        c2.metric("test WA", run_tables.pct(m["WA"]), help="mean over folds of the weighted accuracy")
        c3.metric("folds", len(results.get("folds", [])))
    return active


def run_legend_names(ids: list[str]) -> dict[str, str]:
    """Short legend names: the run's name and λ (the id when names repeat)."""
    names = {}
    for i in ids:
        r = by_id[i]
        base = r.name or i
        lam = "" if r.lam is None else (" (baseline)" if r.lam == 0 else f" (λ={r.lam:g})")
        names[i] = base + lam
    if len(set(names.values())) < len(names):
        names = {i: i for i in ids}
    return names


def curves(ids: list[str]) -> None:
    """The selected runs' curves overlaid: one chart per quantity, one color per run."""
    records = {}
    for i in ids:
        try:
            records[i] = store.get(i).read_metrics()
        except SerLabError:
            continue
    frame = run_tables.curves_frame(records)
    if frame.empty:
        st.caption("No epoch finished yet.")
        return
    names = run_legend_names([i for i in ids if i in records])
    several_folds = (frame["n_folds"] > 1).any()
    st.subheader("Curves of the selected runs")
    st.caption(
        "One color per run, one line style per quantity"
        + ("; values averaged over the folds that reached each epoch" if several_folds else "")
        + "."
    )
    c1, c2 = st.columns(2)
    for col, group in ((c1, "losses"), (c2, "accuracy"), (c1, "ratio"), (c2, "distances")):
        col.plotly_chart(
            figures.overlay_figure(
                frame, group, run_tables.CURVE_GROUPS[group], run_tables.CURVE_TITLES[group], names
            ),
            key=f"curves-{group}",
        )
    st.info(run_tables.LC_NOTE, icon=":material/lightbulb:")


def live_view() -> None:
    still = [show_run(i) for i in selected]
    curves(selected)
    if any_active and not any(still):
        st.rerun(scope="app")  # everything finished: redraw the page without the refresh timer


if not selected:
    st.info("No run selected. Start one above, or press Quick start on the home page.")
else:
    st.fragment(run_every=2 if any_active else None)(live_view)()
    if any_active:
        st.caption("Refreshing every 2 s while a run trains.")
