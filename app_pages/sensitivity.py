"""Sensitivity: launch a λ / α grid and see UA and WA against λ and against α as runs finish."""

import streamlit as st

from ser_lab.app import access, figures, run_tables
from ser_lab.app import corpus as app_corpus
from ser_lab.app import sweeps as app_sweeps
from ser_lab.config import TrainConfig
from ser_lab.errors import SerLabError
from ser_lab.experiments import launcher
from ser_lab.learn import objectives as obj
from ser_lab.runs import RunStore

ALL_RUNS = "(all finished runs)"


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    return RunStore(root).list()


@st.cache_data(show_spinner=False, max_entries=16)
def sweep_table(root: str, signature: tuple, sweep_id: str | None):
    store = RunStore(root)
    return app_sweeps.sweep_frame(store, list_runs(root, signature), sweep_id)


store = RunStore()
corpus = app_corpus.current_corpus(st.session_state)
policy = access.policy()
st.title("Sensitivity to λ and α")
if policy.shared:
    st.info(
        "Shared mode: launching, stopping and resuming sweeps are switched off on this server; "
        "the results so far can be browsed.",
        icon=":material/lock:",
    )
st.markdown(
    "The paper reports accuracy roughly flat for α between 0.1 and 0.9, and best at λ = 0.3 with much "
    "smaller or larger λ worse. Launch a grid here and watch the curves fill in; error bars are the "
    "standard deviation over folds and seeds."
)

# Presets fill the form. "small" trains in minutes on the built-in corpus (the quick-start
# settings, launcher.QUICK_START read through TrainConfig: batch, learning rate, epochs);
# "paper" is the paper's grid with TrainConfig's defaults (the paper's batch and learning
# rate; `epochs` a maximum, with early stopping after `patience` epochs).
QUICK, PAPER = TrainConfig(**launcher.QUICK_START), TrainConfig()
PRESETS = {
    "small": dict(
        lams="0, 0.1, 0.3, 1",
        alphas="0.5",
        seeds="0",
        epochs=QUICK.epochs,
        patience=QUICK.patience,
        n_folds=QUICK.n_folds,
        which="first fold only",
        batch_size=QUICK.batch_size,
        lr=QUICK.lr,
    ),
    "paper": dict(
        lams="0, 0.001, 0.01, 0.1, 0.3, 1",
        alphas="0.5",
        seeds="0",
        epochs=PAPER.epochs,
        patience=PAPER.patience,
        n_folds=PAPER.n_folds,
        which="all folds",
        batch_size=PAPER.batch_size,
        lr=PAPER.lr,
    ),
}
PRESET_HELP = {
    "small": "small: 4 λ values, the quick-start settings, first fold only",
    "paper": f"paper: the paper's λ grid, up to {PAPER.epochs} epochs with early stopping "
    f"(patience {PAPER.patience}), {PAPER.n_folds} folds, batch {PAPER.batch_size}, "
    f"Adam {PAPER.lr:g}",
}

with st.expander("Launch a grid", expanded=False):
    st.caption(f"Corpus: **{corpus.label()}**. One process per grid point, one CPU thread each.")
    preset = st.radio(
        "preset", list(PRESETS), horizontal=True, format_func=PRESET_HELP.get, key="grid_preset"
    )
    p = PRESETS[preset]
    with st.form("grid"):
        c1, c2, c3 = st.columns(3)
        lams_text = c1.text_input("λ values", p["lams"], key=f"lams-{preset}")
        alphas_text = c2.text_input("α values", p["alphas"], key=f"alphas-{preset}")
        seeds_text = c3.text_input("seeds", p["seeds"], key=f"seeds-{preset}")
        c1, c2, c3, c4 = st.columns(4)
        features = c1.radio("features", ["mel", "stft"], horizontal=True)
        epochs = c2.number_input("epochs", 1, 500, p["epochs"], key=f"epochs-{preset}")
        n_folds = c3.number_input("folds", 2, 20, p["n_folds"], key=f"folds-{preset}")
        options = ["first fold only", "all folds"]
        which = c4.radio(
            "train", options, horizontal=True, index=options.index(p["which"]), key=f"w-{preset}"
        )
        c1, c2, c3, _ = st.columns(4)
        batch_size = c1.number_input("batch size", 1, 512, p["batch_size"], key=f"bs-{preset}")
        lr = c2.number_input(
            "learning rate", 1e-6, 1.0, p["lr"], format="%.5f", key=f"lr-{preset}"
        )
        patience = c3.number_input(
            "patience (epochs)", 0, 500, p["patience"], key=f"patience-{preset}",
            help="stop a fold after this many epochs without a better validation UA (0 = never)",
        )
        submitted = st.form_submit_button(
            "Launch the grid", type="primary", disabled=policy.shared
        )
    if submitted:
        try:
            policy.check("launching a sweep")
            lams = app_sweeps.parse_values(lams_text, "λ values")
            alphas = app_sweeps.parse_values(alphas_text, "α values")
            seeds = [int(s) for s in app_sweeps.parse_values(seeds_text, "seeds", integer=True)]
            base = TrainConfig(
                **corpus.train_fields(),
                features=features,
                epochs=int(epochs),
                patience=int(patience),
                n_folds=int(n_folds),
                folds=[0] if which == "first fold only" else None,
                batch_size=int(batch_size),
                lr=float(lr),
                snapshot_every=0,
                workers=1,
            )
            sweep_id, _ = launcher.launch_sweep(base, lams, alphas, seeds, store)
        except SerLabError as exc:
            st.error(f"Not launched: {exc}")
        else:
            # select the new sweep and follow it (it is listed before its manifest exists)
            st.session_state["sweep"] = sweep_id
            st.session_state["sweep_choice"] = sweep_id
            st.session_state["sweep_launched"] = sweep_id

launched = st.session_state.pop("sweep_launched", None)
if launched:
    st.success(
        f"Launched sweep `{launched}` in its own process "
        "(`python -m ser_lab sweep`): one run per core at a time; closing this tab does not stop "
        "it. It is selected below and followed until its last run ends."
    )

rows = list_runs(str(store.root), run_tables.store_signature(store))
sweeps = app_sweeps.sweep_options(store, rows)
mine = st.session_state.get("sweep")
if mine and mine not in sweeps:
    sweeps = [mine, *sweeps]  # just launched: no manifest or run folder yet
options = sweeps + [ALL_RUNS]
if st.session_state.get("sweep_choice") not in options:
    st.session_state["sweep_choice"] = mine if mine in options else options[0]
choice = st.selectbox(
    "results of",
    options,
    key="sweep_choice",
    help="a sweep launched here, or every finished run in the store",
)
st.session_state["sweep"] = choice if choice != ALL_RUNS else mine
sweep_id = None if choice == ALL_RUNS else choice


def sweep_status() -> bool:
    """Where the selected sweep stands, with Stop / Resume; returns whether it runs."""
    store_now = RunStore(str(store.root))
    rows_now = list_runs(str(store.root), run_tables.store_signature(store_now))
    if sweep_id is None:
        return any(run_tables.is_active(r) for r in rows_now)
    process = launcher.sweep_process(store_now, sweep_id)
    progress = app_sweeps.sweep_progress(store_now, rows_now, sweep_id, process is not None)
    buttons = st.container(horizontal=True)
    if progress.state == "running":
        buttons.info(progress.text(), icon=":material/hourglass_top:")
        if process is not None and buttons.button(
            "Stop the sweep", icon=":material/stop:", disabled=policy.shared
        ):
            if not policy.allows("stopping a sweep"):
                st.error(policy.refusal("stopping a sweep"))
                st.stop()
            launcher.stop_sweep(store_now, sweep_id)
            st.toast(
                "Stopping: running points finish their current batch and are marked interrupted."
            )
    elif progress.state == "finished":
        buttons.success(progress.text(), icon=":material/check_circle:")
    else:
        buttons.warning(progress.text(), icon=":material/pause_circle:")
        unfinished = [p for p in app_sweeps.sweep_points(store_now, sweep_id) if p.get("state") != "done"]
        if unfinished and buttons.button(
            f"Resume the sweep ({len(unfinished)} points not done)",
            icon=":material/play_arrow:",
            disabled=policy.shared,
        ):
            try:
                policy.check("resuming a sweep")
                launcher.resume_sweep(store_now, sweep_id)
            except SerLabError as exc:
                st.error(str(exc))
            else:
                st.rerun()
    return progress.state == "running"


def results_view() -> None:
    store_now = RunStore(str(store.root))
    signature = run_tables.store_signature(store_now)
    frame = sweep_table(str(store.root), signature, sweep_id)
    if frame.empty:
        st.info("No runs to show yet (a sweep creates each run folder when its training starts).")
        return
    runs = frame.drop_duplicates("run")
    states = runs["state"].value_counts().to_dict()
    planned = len(app_sweeps.sweep_points(store_now, sweep_id)) if sweep_id else 0
    cols = st.columns(4)
    cols[0].metric(
        "runs",
        len(runs) if not planned else f"{len(runs)} of {planned}",
        help="run folders so far (a sweep creates each when its training starts)",
    )
    cols[1].metric("finished", states.get("done", 0))
    cols[2].metric("training", states.get("running", 0) + states.get("queued", 0))
    cols[3].metric("failed / interrupted", states.get("failed", 0) + states.get("interrupted", 0))
    differ = app_sweeps.pooled_differences(frame)
    if differ:
        st.warning(
            "**These curves pool runs whose settings differ:** "
            + "; ".join(differ)
            + ". Each point mixes unlike runs; pick one sweep above to compare like with like.",
            icon=":material/warning:",
        )
    done = app_sweeps.with_objective(store_now, frame.dropna(subset=["UA"]))
    others = sorted(set(done["objective"]) - {"center"})
    done_all, done = done, done[done["objective"] == "center"]  # λ / α curves: the paper's arm only
    if done.empty:
        st.info("No run has finished yet; the curves appear as runs finish." if done_all.empty
                else "No finished run of the paper's objective: no λ / α curves.")
    else:
        alphas = sorted(done.loc[done["lam"] > 0, "alpha"].unique())
        lams = sorted(done.loc[done["lam"] > 0, "lam"].unique())
        c1, c2 = st.columns(2)
        with c1:
            fixed_alpha = (
                st.selectbox(
                    "α for the λ curve", alphas, index=alphas.index(0.5) if 0.5 in alphas else 0
                )
                if alphas
                else None
            )
            curve = app_sweeps.sensitivity(done, "lam", fixed_alpha)
            st.plotly_chart(
                figures.sensitivity_figure(curve, "lam", "UA / WA against λ"), key="lam_curve"
            )
        with c2:
            fixed_lam = (
                st.selectbox("λ for the α curve", lams, index=lams.index(0.3) if 0.3 in lams else 0)
                if lams
                else None
            )
            if fixed_lam is None:  # an empty chart would read as "no effect"
                st.info("UA / WA against α: no run with center loss (λ > 0) has finished yet.")
            else:
                curve = app_sweeps.sensitivity(done, "alpha", fixed_lam)
                st.plotly_chart(
                    figures.sensitivity_figure(curve, "alpha", "UA / WA against α"), key="alpha_curve"
                )
    if others:  # other objectives (ser_lab/learn/objectives.py): UA / WA against each one's main setting
        arm = st.selectbox("another objective's curve", others, format_func=obj.LABELS.get)
        param, curve = app_sweeps.objective_sensitivity(done_all, arm)
        st.plotly_chart(figures.sensitivity_figure(curve, param, f"UA / WA against {param} ({arm})"),
                        key="objective_curve")
    table = runs[["run", "state", "lam", "alpha", "seed", "features", "epochs", "lr"]].copy()
    means = frame.groupby("run")[["UA", "WA"]].mean() * 100
    table = table.join(means, on="run").rename(
        columns={"lam": "λ", "alpha": "α", "UA": "UA %", "WA": "WA %"}
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="%.1f") for c in ("UA %", "WA %")
        },
    )


def live_view() -> None:
    running = sweep_status()
    results_view()
    if running:
        st.caption("Refreshing every 5 s while this sweep runs.")
    elif "sweep_following" in st.session_state:
        # it was running at the last refresh and has ended: redraw once without the timer
        st.session_state.pop("sweep_following", None)
        st.rerun(scope="app")


rows_active = (sweep_id is not None and launcher.sweep_process(store, sweep_id) is not None) or any(
    run_tables.is_active(r) for r in rows if sweep_id is None or r.sweep_id == sweep_id
)
if rows_active:
    st.session_state["sweep_following"] = sweep_id
st.fragment(run_every=5 if rows_active else None)(live_view)()


@st.cache_data(show_spinner=False, max_entries=8, ttl=30)
def classical_reference(root: str, signature: tuple, sweep_id: str):
    from ser_lab.experiments.report import classical_reference, collect

    sweep_store = RunStore(root)
    settings = collect(sweep_store, sweep_id)["settings"]
    return classical_reference(sweep_store, settings, with_discriminability=False)


def reference_block() -> None:
    """The eGeMAPS + SVM baseline on this sweep's test folds, when the store has it."""
    if not sweep_id:
        return
    try:
        ref = classical_reference(str(store.root), run_tables.store_signature(store), sweep_id)
    except SerLabError:
        return  # no finished run of the sweep yet
    if ref is None:
        st.caption(
            "Hand-crafted reference: train `python -m ser_lab train --model egemaps-svm` with this "
            "sweep's corpus, folds and seeds to see eGeMAPS + SVM on the same test folds here."
        )
        return
    t = ref["table"]
    st.subheader("Hand-crafted reference: eGeMAPS + linear SVM on the same test folds")
    st.caption(
        f"UA {t['UA_mean']:.1f} ± {t['UA_std']:.1f} %, WA {t['WA_mean']:.1f} ± {t['WA_std']:.1f} % "
        f"over {t['n_units']} (seed, fold) units. Each setting minus the SVM, paired over shared units:"
    )
    rows = [
        {
            "λ": c["setting"].get("lam"),
            "α": c["setting"].get("alpha"),
            "features": c["setting"].get("features"),
            "Δ UA (pts)": c["UA"]["mean"] if "UA" in c else None,
            "95 % t-interval": f"{c['UA']['t_low']:+.1f} … {c['UA']['t_high']:+.1f}" if "UA" in c else c.get("problem"),
            "units": c["UA"]["n"] if "UA" in c else 0,
        }
        for c in ref["comparisons"]
    ]
    st.dataframe(rows, hide_index=True, column_config={"Δ UA (pts)": st.column_config.NumberColumn(format="%+.1f")})


reference_block()
