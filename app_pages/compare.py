"""Compare two runs: their maps of z side by side, confusion matrices, accuracy and
discriminability, one utterance at a time, and the maps evolving over the epochs."""

import json

import streamlit as st

from ser_lab import analysis, figures
from ser_lab import app_support as sup
from ser_lab.errors import SerLabError
from ser_lab.runs import Run, RunStore


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    return RunStore(root).list()


@st.cache_resource(show_spinner="Projecting z…", max_entries=32)
def fold_map(run_dir: str, fold: int, method: str, stamp: str):
    return analysis.project_fold(run_dir, fold, method)


@st.cache_resource(show_spinner=False, max_entries=32)
def map_pair(dir_a: str, dir_b: str, fold: int, method: str, stamp: str, normalised: bool):
    return sup.compare_maps(
        fold_map(dir_a, fold, method, stamp),
        fold_map(dir_b, fold, method, stamp),
        normalised=normalised,
    )


@st.cache_data(show_spinner="Comparing…", max_entries=16)
def comparison(dir_a: str, dir_b: str, stamp: str) -> dict:
    return analysis.compare_runs(dir_a, dir_b)


@st.cache_data(show_spinner=False, max_entries=32)
def predictions(run_dir: str, fold: int, stamp: str):
    return sup.predictions(Run(run_dir), fold)


@st.cache_resource(show_spinner="Animating the epochs…", max_entries=16)
def snapshot_chart(
    dir_a: str,
    dir_b: str,
    fold: int,
    method: str,
    stamp: str,
    normalised: bool,
    splits: tuple,
    best: tuple,
    titles: tuple,
):
    """The animated figure of both runs on the maps shown above (None when they share fewer
    than two frames); cached, because a figure with a frame per epoch takes a while to build."""
    pair = map_pair(dir_a, dir_b, fold, method, stamp, normalised)
    frames_a = sup.frames_on_map(Run(dir_a), fold, pair.a, best[0], splits)
    frames_b = sup.frames_on_map(Run(dir_b), fold, pair.b, best[1], splits)
    if len(sup.common_frames(frames_a, frames_b)) < 2:
        return None  # nothing to animate
    return figures.snapshot_figure(frames_a, frames_b, pair.a.label_names, list(titles))


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=8)
def run_audio(run_dir: str, fold: int, key: str, stamp: str) -> tuple[dict, bool]:
    """{utt_id: path} of a run's corpus, and whether it is still the data the run saw."""
    manifest = sup.CorpusChoice.from_dict(json.loads(key)).load()
    return sup.utterance_paths(manifest), sup.corpus_matches(Run(run_dir), fold, manifest)


@st.cache_data(show_spinner=False, max_entries=64)
def spectrogram(path: str):
    return sup.spectrogram(path)


store = RunStore()
corpus = sup.current_corpus(st.session_state)
st.title("Compare two runs")

rows = list_runs(str(store.root), sup.store_signature(store))
finished = [r for r in rows if sup.is_finished(r)]
if len(finished) < 2:
    st.info(
        "Two finished runs are needed. Press **Quick start** on the home page, or train on **Train**."
    )
    st.stop()

by_id = {r.run_id: r for r in finished}
ids = list(by_id)
default_a, default_b = sup.default_pair(rows)
c1, c2 = st.columns(2)
id_a = c1.selectbox(
    "run A",
    ids,
    index=ids.index(default_a) if default_a in ids else 0,
    format_func=lambda i: sup.run_label(by_id[i]),
)
id_b = c2.selectbox(
    "run B",
    ids,
    index=ids.index(default_b) if default_b in ids else 1,
    format_func=lambda i: sup.run_label(by_id[i]),
)
if id_a == id_b:
    st.warning("Pick two different runs.")
    st.stop()
run_a, run_b = store.get(id_a), store.get(id_b)
if any(by_id[i].corpus == "synthetic" for i in (id_a, id_b)):
    st.caption(
        ":material/warning: Synthetic corpus: these numbers show the pipeline at work, "
        "not performance on real speech."
    )

folds = sup.common_folds(run_a, run_b)
if not folds:
    st.error("The two runs share no trained fold, so their maps cannot be aligned or compared.")
    st.stop()
stamp = json.dumps([sup.run_signature(run_a.dir), sup.run_signature(run_b.dir)])
dir_a, dir_b = str(run_a.dir), str(run_b.dir)

try:
    comp = comparison(dir_a, dir_b, stamp)
except SerLabError as exc:
    st.error(f"Cannot compare these runs: {exc}")
    st.stop()

# ----------------------------------------------------------------------------- the reading

reading = sup.read_comparison(comp)
with st.container(border=True, key="compare_reading"):
    show = {"supports": st.success, "not tested": st.info}.get(reading.verdict, st.warning)
    show(f"**What this pair shows.** {reading.headline}")
    lines = reading.lines()
    half = (len(lines) + 1) // 2
    left, right = st.columns(2)
    left.markdown("\n".join(f"- {line}" for line in lines[:half]))
    right.markdown("\n".join(f"- {line}" for line in lines[half:]))
    st.caption(" ".join(reading.facts))

c1, c2, c3, c4 = st.columns([1, 1.4, 2, 1.6])
fold = c1.selectbox("fold", folds)
method = c2.radio(
    "map",
    ["pca", "umap"],
    horizontal=True,
    format_func=str.upper,
    help="PCA is linear (distances keep their meaning); UMAP keeps neighbourhoods",
)
splits = c3.radio(
    "points",
    ["train", "test", "train + test"],
    horizontal=True,
    index=0,
    help="the map is fitted on the training z and applied to the test z",
)
units = c4.radio(
    "units",
    ["scale-free", "raw"],
    horizontal=True,
    help="scale-free: each map divided by its own mean distance between class centers; "
    "raw: the projection's own units",
)
normalised = units == "scale-free"
shown = ["train", "test"] if splits == "train + test" else [splits]

try:
    pair = map_pair(dir_a, dir_b, fold, method, stamp, normalised)
except SerLabError as exc:
    st.error(f"Cannot compare these runs: {exc}")
    st.stop()
map_a, map_b = pair.a, pair.b
best = (sup.best_epoch(comp, "A", fold), sup.best_epoch(comp, "B", fold))

# ----------------------------------------------------------------------------- maps

st.header("Maps of the learned feature z")
st.caption(
    f"**On screen: {'scale-free units' if normalised else 'raw units'}.** {pair.describe()}"
)
selected = st.session_state.get("compare_utt")
cols = st.columns(2)
for col, m, key, ep in ((cols[0], map_a, "map_a", best[0]), (cols[1], map_b, "map_b", best[1])):
    points = sup.map_points(m, shown)
    side = "A" if key == "map_a" else "B"
    fig = figures.map_figure(
        points,
        m.centers_xy,
        m.label_names,
        f"{side}" + (f" · epoch {ep} (best validation)" if ep else " · the kept model"),
        highlight=selected,
    )
    event = col.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points")
    spread = sup.fold_spread(comp, side, fold)
    unit = pair.unit_a if side == "A" else pair.unit_b
    if spread:
        col.caption(
            f"{side} in z (fold {fold}, test): intra-class distance {spread['intra']:.3g}, "
            f"inter-center distance {spread['inter']:.3g}, ratio "
            f"{spread['intra'] / spread['inter']:.3f}. "
            + (
                f"Map scale factor: ÷ {unit:.3g} (its mean inter-center distance on the map)."
                if normalised
                else f"Mean inter-center distance on this map: {unit:.3g}."
            )
        )
    picked = [p for p in (event.selection.points if event else []) if p.get("customdata")]
    clicked = str(picked[0]["customdata"][0]) if picked else None
    # a chart keeps its selection across reruns: only a change of it is a new click
    if clicked != st.session_state.get(f"{key}_seen"):
        st.session_state[f"{key}_seen"] = clicked
        if clicked is not None and clicked != selected:
            st.session_state["compare_utt"] = clicked
            st.rerun()
turn = pair.rotation
st.caption(
    "Each panel shows the model kept for its fold (the epoch with the best validation UA). "
    f"B's map is turned onto A's by a rigid Procrustes fit on the {turn.n_shared} shared "
    f"utterances (rotation {turn.angle_deg:.0f}°{', mirrored' if turn.reflected else ''}, "
    "no rescaling) so classes are not flipped between panels. Filled circles: training "
    "utterances; open diamonds: test utterances; crosses: the trained class centers. Click a "
    "point to inspect that utterance."
)

# ----------------------------------------------------------------------------- more runs

others = [i for i in ids if i not in (id_a, id_b) and fold in store.get(i).folds_done()]
if others:
    with st.expander("More runs: up to four maps in a grid, aligned to A"):
        extra = st.multiselect(
            "add runs (trained on the same fold)",
            others,
            max_selections=2,
            format_func=lambda i: sup.run_label(by_id[i]),
        )
        grid = [("A", id_a, map_a), ("B", id_b, map_b)]
        for k, other in enumerate(extra):
            try:
                grid.append(
                    (
                        "CD"[k],
                        other,
                        map_pair(
                            dir_a, str(store.get(other).dir), fold, method, stamp, normalised
                        ).b,
                    )
                )
            except SerLabError as exc:
                st.warning(f"{other} cannot be drawn on A's map: {exc}")
        if extra:
            for start in range(0, len(grid), 2):
                cells = st.columns(2)
                for cell, (side, rid, m) in zip(cells, grid[start : start + 2]):
                    cell.plotly_chart(
                        figures.map_figure(
                            sup.map_points(m, shown), m.centers_xy, m.label_names, f"{side}: {rid}"
                        ),
                        key=f"grid_{side}",
                    )
            st.caption(
                f"Every map in {'its own scale-free units' if normalised else 'raw units'}, "
                "turned rigidly onto A (no rescaling)."
            )

# ----------------------------------------------------------------------------- one utterance

if selected:
    pred_a, pred_b = predictions(dir_a, fold, stamp), predictions(dir_b, fold, stamp)
    if selected in pred_a.index:
        st.subheader(f"Utterance {selected}")
        ra = pred_a.loc[selected]
        rb = pred_b.loc[selected] if selected in pred_b.index else None
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("true class", ra["label"])
        c2.metric("split", ra["split"])
        c3.metric(
            "A predicts",
            ra["pred"],
            "right" if ra["pred"] == ra["label"] else "wrong",
            delta_color="normal" if ra["pred"] == ra["label"] else "inverse",
        )
        if rb is not None:
            c4.metric(
                "B predicts",
                rb["pred"],
                "right" if rb["pred"] == rb["label"] else "wrong",
                delta_color="normal" if rb["pred"] == rb["label"] else "inverse",
            )
        run_corpus = sup.CorpusChoice.from_run(run_a)
        if run_corpus.available():
            try:
                paths, same = run_audio(dir_a, fold, run_corpus.key(), stamp)
            except SerLabError as exc:
                paths, same = {}, True
                st.warning(f"The run's corpus cannot be read: {exc}")
            if not same:
                st.warning(sup.CORPUS_CHANGED, icon=":material/warning:")
            path = paths.get(selected)
            if path:
                feats, _ = spectrogram(path)
                st.plotly_chart(figures.spectrogram_figure(feats), key="utt_spec")
                st.audio(sup.read_bytes(path), format="audio/wav")
            else:
                st.caption("This utterance's audio file is not in the corpus any more.")
        elif run_corpus.is_synthetic:
            if st.button("Generate the built-in corpus to listen (about 30 s)"):
                with st.spinner("Generating…"):
                    run_audio(dir_a, fold, run_corpus.key(), stamp)
                st.rerun()
        else:
            st.caption(f"The run's corpus ({run_corpus.label()}) is not on this machine.")
        if st.button("Clear selection"):
            st.session_state.pop("compare_utt", None)
            st.rerun()  # the charts' own selections are remembered as seen: they do not come back

# ----------------------------------------------------------------------------- numbers

st.header("Accuracy and discriminability")
table = sup.compare_table(comp)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=36 * (len(table) + 1) + 4,
    column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in ("A", "B", "B − A")},
)
changed = comp["changed"]
st.caption(
    f"Test utterances ({changed['n_shared']} shared): B fixes {changed['n_fixed']}, breaks "
    f"{changed['n_broken']}; right in both {changed['both_right']}, wrong in both {changed['both_wrong']}. "
    "Accuracies and recalls in %, distances in units of z."
)

st.header("Confusion matrices (test, all folds pooled)")
norm = st.radio("cells", ["row-normalised", "counts"], horizontal=True)
key = "confusion_norm" if norm == "row-normalised" else "confusion"
labels = comp["labels"]
c1, c2, c3 = st.columns(3)
c1.plotly_chart(
    figures.confusion_figure(
        comp["a"]["pooled"][key], labels, "A", normalised=key == "confusion_norm"
    ),
    key="cm_a",
)
c2.plotly_chart(
    figures.confusion_figure(
        comp["b"]["pooled"][key], labels, "B", normalised=key == "confusion_norm"
    ),
    key="cm_b",
)
diff_key = "confusion_norm" if key == "confusion_norm" else "confusion_counts"
c3.plotly_chart(
    figures.confusion_figure(
        comp["diff"][diff_key], labels, "B − A", normalised=key == "confusion_norm", diff=True
    ),
    key="cm_diff",
)

# ----------------------------------------------------------------------------- epochs

st.header("Over the epochs")
if run_a.list_snapshots(fold) and run_b.list_snapshots(fold):
    try:
        fig = snapshot_chart(
            dir_a,
            dir_b,
            fold,
            method,
            stamp,
            normalised,
            tuple(shown),
            best,
            tuple(
                f"{side}: {rid}" + (f" (kept: epoch {ep})" if ep else "")
                for side, rid, ep in (("A", id_a, best[0]), ("B", id_b, best[1]))
            ),
        )
    except SerLabError as exc:
        st.warning(f"No animation: {exc}")
    else:
        if fig is not None:
            st.plotly_chart(fig, key="snapshots")
            st.caption(
                "Every epoch's z placed on the maps above (same projection, "
                f"{'scale' if normalised else 'units'} and alignment); the last frame, "
                '"kept", is exactly the maps above: the model of the best-validation epoch. '
                "Drag the slider or press play. Points: a fixed subset of the utterances."
            )
        else:
            st.info("The two runs share fewer than two epochs with snapshots: nothing to animate.")
else:
    st.info(
        "No per-epoch snapshots in one of these runs (train with snapshots every N epochs to see this)."
    )
