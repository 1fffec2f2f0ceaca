"""Compare two runs: their maps of z side by side, confusion matrices, accuracy and
discriminability, one utterance at a time, and the maps evolving over the epochs."""

import json

import streamlit as st

from app_pages.url_state import UrlState, keep_choice
from ser_lab import export as exp
from ser_lab.analysis import compare, maps
from ser_lab.app import access, explore, figures, run_tables, sweeps
from ser_lab.app import comparison as app_comparison
from ser_lab.app import corpus as app_corpus
from ser_lab.errors import SerLabError
from ser_lab.runs import Run, RunStore


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    return RunStore(root).list()


@st.cache_resource(show_spinner="Projecting z…", max_entries=32)
def fold_map(run_dir: str, fold: int, method: str, stamp: str):
    return maps.project_fold(run_dir, fold, method)


@st.cache_resource(show_spinner=False, max_entries=32)
def map_pair(dir_a: str, dir_b: str, fold: int, method: str, stamp: str, normalised: bool):
    return app_comparison.compare_maps(
        fold_map(dir_a, fold, method, stamp),
        fold_map(dir_b, fold, method, stamp),
        normalised=normalised,
    )


@st.cache_data(show_spinner="Comparing…", max_entries=16)
def comparison(dir_a: str, dir_b: str, stamp: str) -> dict:
    return compare.compare_runs(dir_a, dir_b)


@st.cache_data(show_spinner="Comparing…", max_entries=8)
def comparison_many(dirs: tuple, stamp: str) -> dict:
    return compare.compare_many(list(dirs))


def two_per_row(items: list) -> list[tuple]:
    """(column, item) for `items` laid out two to a row (the grid of up to four runs)."""
    out = []
    for start in range(0, len(items), 2):
        out += zip(st.columns(2), items[start : start + 2])
    return out


@st.cache_data(show_spinner=False, max_entries=32)
def predictions(run_dir: str, fold: int, stamp: str):
    return run_tables.predictions(Run(run_dir), fold)


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
    frames_a = app_comparison.frames_on_map(Run(dir_a), fold, pair.a, best[0], splits)
    frames_b = app_comparison.frames_on_map(Run(dir_b), fold, pair.b, best[1], splits)
    if len(app_comparison.common_frames(frames_a, frames_b)) < 2:
        return None  # nothing to animate
    return figures.snapshot_figure(frames_a, frames_b, pair.a.label_names, list(titles))


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=8)
def run_audio(run_dir: str, fold: int, key: str, stamp: str) -> tuple[dict, bool]:
    """{utt_id: path} of a run's corpus, and whether it is still the data the run saw."""
    manifest = app_corpus.CorpusChoice.from_dict(json.loads(key)).load()
    return explore.utterance_paths(manifest), explore.corpus_matches(Run(run_dir), fold, manifest)


@st.cache_data(show_spinner=False, max_entries=64)
def spectrogram(path: str):
    return explore.spectrogram(path)


# ----------------------------------------------------------------------------- shareable link
# The page's choices live in the URL (?a=RUN&b=RUN&fold=K&map=pca&points=test&units=raw&utt=ID), so a
# copied link opens the same view. A new URL's choices are put into the widgets' state once;
# a value that is not valid here any more is dropped with a note (the default shows instead).

URL_STATE = {
    "a": "compare_a", "b": "compare_b", "fold": "compare_fold", "map": "compare_map",
    "points": "compare_points", "units": "compare_units", "utt": "compare_utt",
}
URL_WHAT = {
    "a": "Run A", "b": "Run B", "fold": "Fold", "map": "Map", "points": "Points", "units": "Units",
    "utt": "Utterance",
}


def export_section(run_ids: list[str], fold: int) -> None:
    """A run's fold as CSV, Embedding Projector, TensorBoard or ONNX, zipped for download."""
    st.header("Export")
    c1, c2 = st.columns([2, 3])
    rid = c1.selectbox("run to export", run_ids, key="compare_export_run")
    fmt = c2.radio(
        "format", list(exp.FORMATS), horizontal=True, key="compare_export_format",
        help="CSV for pandas; Projector and TensorBoard for `tensorboard --logdir`; "
        "ONNX to score clips without SER Lab",
    )
    wanted = (rid, fold, fmt)
    if st.button(f"Prepare the {fmt} export of fold {fold}", key="compare_export_prepare"):
        try:
            with st.spinner("Exporting…"):
                data, notes = exp.export_zip(store.get(rid), fmt, fold)
        except SerLabError as exc:
            st.session_state.pop("compare_export", None)
            st.error(f"Cannot export: {exc}")
        else:
            st.session_state["compare_export"] = (wanted, data, notes)
    ready = st.session_state.get("compare_export")
    if ready and ready[0] == wanted:
        for note in ready[2]:
            st.caption(f"Note: {note}")
        st.download_button(
            f"Download {rid}_fold{fold}_{fmt}.zip", ready[1],
            file_name=f"{rid}_fold{fold}_{fmt}.zip", mime="application/zip",
            key="compare_export_download",
        )
    st.caption(
        "The same from the command line: `python -m ser_lab export RUN --fold K --format "
        f"{fmt} --out DIR`."
    )


store = RunStore()
corpus = app_corpus.current_corpus(st.session_state)
st.title("Compare two runs")
link = UrlState("compare", URL_STATE, URL_WHAT)
url_notes, url_note_box = [], st.empty()

rows = list_runs(str(store.root), run_tables.store_signature(store))
finished = [r for r in rows if run_tables.is_finished(r)]
if len(finished) < 2:
    st.info(
        "Two finished runs are needed. Press **Quick start** on the home page, or train on **Train**."
    )
    st.stop()

by_id = {r.run_id: r for r in finished}
ids = list(by_id)
default_a, default_b = run_tables.default_pair(rows)
url_notes += link.apply({"a": ids, "b": ids})
keep_choice("compare_a", ids, default_a if default_a in ids else ids[0])
keep_choice("compare_b", ids, default_b if default_b in ids else ids[1])
c1, c2 = st.columns(2)
id_a = c1.selectbox(
    "run A",
    ids,
    key="compare_a",
    format_func=lambda i: run_tables.run_label(by_id[i]),
)
id_b = c2.selectbox(
    "run B",
    ids,
    key="compare_b",
    format_func=lambda i: run_tables.run_label(by_id[i]),
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

folds = run_tables.common_folds(run_a, run_b)
if not folds:
    st.error("The two runs share no trained fold, so their maps cannot be aligned or compared.")
    st.stop()
stamp = json.dumps([run_tables.run_signature(run_a.dir), run_tables.run_signature(run_b.dir)])
dir_a, dir_b = str(run_a.dir), str(run_b.dir)

try:
    comp = comparison(dir_a, dir_b, stamp)
except SerLabError as exc:
    st.error(f"Cannot compare these runs: {exc}")
    st.stop()

# ----------------------------------------------------------------------------- the reading

reading = app_comparison.read_comparison(comp)
with st.container(border=True, key="compare_reading"):
    show = {"supports": st.success, "not tested": st.info}.get(reading.verdict, st.warning)
    show(f"**What this pair shows.** {reading.headline}")
    lines = reading.lines()
    half = (len(lines) + 1) // 2
    left, right = st.columns(2)
    left.markdown("\n".join(f"- {line}" for line in lines[:half]))
    right.markdown("\n".join(f"- {line}" for line in lines[half:]))
    st.caption(" ".join(reading.facts))
    for note in sweeps.demo_typicality(store, comp):  # a demo pair says which seed it is and how typical
        st.caption(f":material/info: {note}")

METHODS, SPLITS, UNITS = ["pca", "umap"], ["train", "test", "train + test"], ["scale-free", "raw"]
url_notes += link.apply({"fold": [str(k) for k in folds]}, convert=int)
url_notes += link.apply({"map": METHODS, "points": SPLITS, "units": UNITS})
keep_choice("compare_fold", folds, folds[0])
keep_choice("compare_map", METHODS, METHODS[0])
keep_choice("compare_points", SPLITS, SPLITS[0])
keep_choice("compare_units", UNITS, UNITS[0])
c1, c2, c3, c4 = st.columns([1, 1.4, 2, 1.6])
fold = c1.selectbox("fold", folds, key="compare_fold")
method = c2.radio(
    "map",
    METHODS,
    horizontal=True,
    format_func=str.upper,
    help="PCA is linear (distances keep their meaning); UMAP keeps neighbourhoods",
    key="compare_map",
)
splits = c3.radio(
    "points",
    SPLITS,
    horizontal=True,
    help="the map is fitted on the training z and applied to the test z",
    key="compare_points",
)
units = c4.radio(
    "units",
    UNITS,
    horizontal=True,
    help="scale-free: each map divided by its own mean distance between class centers; "
    "raw: the projection's own units",
    key="compare_units",
)
normalised = units == "scale-free"
shown = ["train", "test"] if splits == "train + test" else [splits]

try:
    pair = map_pair(dir_a, dir_b, fold, method, stamp, normalised)
except SerLabError as exc:
    st.error(f"Cannot compare these runs: {exc}")
    st.stop()
map_a, map_b = pair.a, pair.b
best = (app_comparison.best_epoch(comp, "A", fold), app_comparison.best_epoch(comp, "B", fold))

# ----------------------------------------------------------------------------- maps

st.header("Maps of the learned feature z")
st.caption(
    f"**On screen: {'scale-free units' if normalised else 'raw units'}.** {pair.describe()}"
)
if link.asks_for("utt"):
    url_notes += link.apply({"utt": list(predictions(dir_a, fold, stamp).index)})
link.finish()
selected = st.session_state.get("compare_utt")
link.write(a=id_a, b=id_b, fold=fold, map=method, points=splits, units=units, utt=selected)
if url_notes:
    url_note_box.info(
        "This link was made for other runs or data: " + "; ".join(url_notes)
        + ". Showing this page's defaults instead.",
        icon=":material/link_off:",
    )
cols = st.columns(2)
for col, m, rid, key, ep in (
    (cols[0], map_a, id_a, "map_a", best[0]),
    (cols[1], map_b, id_b, "map_b", best[1]),
):
    points = run_tables.map_points(m, shown)
    side = "A" if key == "map_a" else "B"
    fig = figures.map_figure(
        points,
        m.centers_xy,
        m.label_names,
        f"{side}" + (f" · epoch {ep} (best validation)" if ep else " · the kept model"),
        highlight=selected,
    )
    event = col.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points")
    col.download_button(
        "points (CSV)", points.to_csv(index=False), file_name=f"{rid}_fold{fold}_{method}.csv",
        mime="text/csv", key=f"{key}_csv", on_click="ignore",
    )
    spread = app_comparison.fold_spread(comp, side, fold)
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
    with st.expander("More runs: up to four in a grid (maps aligned to A, the table, confusion matrices)"):
        extra = st.multiselect(
            "add runs (trained on the same fold)",
            others,
            max_selections=2,
            format_func=lambda i: run_tables.run_label(by_id[i]),
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
            for cell, (side, rid, m) in two_per_row(grid):
                cell.plotly_chart(
                    figures.map_figure(
                        run_tables.map_points(m, shown), m.centers_xy, m.label_names, f"{side}: {rid}"
                    ),
                    key=f"grid_{side}",
                )
            st.caption(
                f"Every map in {'its own scale-free units' if normalised else 'raw units'}, "
                "turned rigidly onto A (no rescaling)."
            )
            grid_ids = [id_a, id_b, *extra]  # C and D as named on the maps, drawn or not
            try:
                many = comparison_many(tuple(str(store.get(i).dir) for i in grid_ids), stamp)
            except SerLabError as exc:
                st.warning(f"No table for these runs: {exc}")
            else:
                st.subheader("Accuracy and discriminability of every run")
                grid_table = app_comparison.many_table(many)
                st.dataframe(
                    grid_table, hide_index=True, width="stretch", height=36 * (len(grid_table) + 1) + 4,
                    column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                   for c in grid_table.columns if c != "metric"},
                )
                st.download_button(
                    "Download the table (CSV)", grid_table.to_csv(index=False),
                    file_name=f"{'_vs_'.join(grid_ids)}.csv", mime="text/csv", key="grid_table_csv",
                    on_click="ignore",
                )
                st.caption(
                    ", ".join(f"{n}: {rid}" for n, rid in zip(many["names"], grid_ids, strict=True))
                    + ". All folds of every run, as in the table below for A and B; each run after A "
                    "minus A. " + " ".join(
                        f"{n} against A: fixes {p['changed']['n_fixed']}, breaks {p['changed']['n_broken']} "
                        f"of {p['changed']['n_shared']} shared test utterances."
                        for n, p in zip(many["names"][1:], many["pairs"], strict=True)
                    )
                )
                st.subheader("Confusion matrices of every run (test, all folds pooled)")
                grid_norm = st.radio("cells", ["row-normalised", "counts"], horizontal=True, key="grid_cells")
                grid_key = "confusion_norm" if grid_norm == "row-normalised" else "confusion"
                for cell, (name, side) in two_per_row(list(zip(many["names"], compare.many_sides(many), strict=True))):
                    cell.plotly_chart(
                        figures.confusion_figure(
                            side["pooled"][grid_key], many["labels"], f"{name}: {side['run_ids'][0]}",
                            normalised=grid_key == "confusion_norm",
                        ),
                        key=f"grid_cm_{name}",
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
        run_corpus = app_corpus.CorpusChoice.from_run(run_a)
        if run_corpus.available():
            try:
                paths, same = run_audio(dir_a, fold, run_corpus.key(), stamp)
            except SerLabError as exc:
                paths, same = {}, True
                st.warning(f"The run's corpus cannot be read: {exc}")
            if not same:
                st.warning(explore.CORPUS_CHANGED, icon=":material/warning:")
            path = paths.get(selected)
            if path:
                feats, _ = spectrogram(path)
                st.plotly_chart(figures.spectrogram_figure(feats), key="utt_spec")
                st.audio(explore.read_bytes(path), format="audio/wav")
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
table = app_comparison.compare_table(comp)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=36 * (len(table) + 1) + 4,
    column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in ("A", "B", "B − A")},
)
st.download_button(
    "Download the table (CSV)", table.to_csv(index=False), file_name=f"{id_a}_vs_{id_b}.csv",
    mime="text/csv", key="table_csv", on_click="ignore",
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
for col, name, matrix in (
    (c1, "A", comp["a"]["pooled"][key]),
    (c2, "B", comp["b"]["pooled"][key]),
    (c3, "B_minus_A", comp["diff"][diff_key]),
):
    col.download_button(
        "CSV", exp.confusion_csv(matrix, labels), file_name=f"confusion_{name}_{key}.csv",
        mime="text/csv", key=f"cm_{name}_csv", on_click="ignore",
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

# ----------------------------------------------------------------------------- export

export_section([id_a, id_b], fold)

# ----------------------------------------------------------------------------- another corpus


@st.cache_data(show_spinner="Running the other corpus through the fold model…", max_entries=8)
def other_corpus(run_dir: str, fold: int, name: str, root: str | None, classes: str, options: str, stamp: str):
    from ser_lab.learn.crosscorpus import corpus_outputs

    return corpus_outputs(Run(run_dir), fold, name, root, classes=classes, corpus_options=json.loads(options))


def other_corpus_block() -> None:
    """Another corpus's utterances on A's or B's map: where does, say, Italian or English speech
    land on an EmoDB-trained map? (`python -m ser_lab eval RUN --corpus ...` scores all folds.)"""
    import pandas as pd

    from ser_lab.data.corpora import CORPORA
    from ser_lab.data.corpora.synthetic import SIZES

    with st.expander("Another corpus on this map (cross-corpus)"):
        c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
        side = c1.radio("map of run", ["A", "B"], horizontal=True, key="cross_side")
        name = c2.selectbox("corpus", CORPORA, key="cross_corpus")
        if name == "synthetic":
            size = c3.selectbox("size", list(SIZES), key="cross_size")
            root, options = None, {"size": size}
        else:
            text = c3.text_input("its folder", key="cross_root")
            root, options = text.strip() or None, {}
        classes = c4.radio("classes", ["paper", "all"], horizontal=True, key="cross_classes")
        request = (side, name, root, json.dumps(options), classes, fold, method)
        if st.button("Place it on the map", key="cross_go"):
            st.session_state["cross_request"] = request
        if st.session_state.get("cross_request") != request:
            st.caption("Each utterance of that corpus goes through this fold's model, with its own normalisation.")
            return
        run_x, m = (run_a, map_a) if side == "A" else (run_b, map_b)
        try:
            access.policy().check_corpus_root(root)  # shared mode: only the allowed roots
            out = other_corpus(str(run_x.dir), fold, name, root, classes, json.dumps(options), stamp)
            xy = m.transform(out.z)
        except SerLabError as exc:
            st.error(f"Cannot place that corpus on the map: {exc}")
            return
        own = run_tables.map_points(m, ["train"])
        other = out.frame(xy).assign(split="test")[own.columns]
        fig = figures.map_figure(
            pd.concat([own, other], ignore_index=True), m.centers_xy, m.label_names,
            f"{name} ({len(other)} utterances) on {side}'s map",
        )
        st.plotly_chart(fig, key="cross_map")
        s = out.scores
        st.caption(
            f"Filled circles: {side}'s training utterances (fold {fold}); open diamonds: the {name} "
            f"utterances, colored by their true class. Fold {fold}'s model on them: UA {run_tables.pct(s['UA'])}, "
            f"WA {run_tables.pct(s['WA'])}."
        )


other_corpus_block()
