"""Explore a clip: upload or record audio, see what a trained run makes of it."""

import json
from pathlib import Path

import streamlit as st

from app_pages.url_state import UrlState, keep_choice
from ser_lab import export as exp
from ser_lab.app import corpus as app_corpus
from ser_lab.app import explore, figures, run_tables
from ser_lab.errors import SerLabError
from ser_lab.inference import Predictor
from ser_lab.learn import classical
from ser_lab.runs import Run, RunStore

AUDIO_TYPES = ["wav", "flac", "ogg", "mp3", "aiff", "aif", "au", "caf"]


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    return RunStore(root).list()


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def predictor(run_dir: str, fold: int, stamp: str) -> Predictor:
    return Predictor.from_run(Run(run_dir), fold=fold, device="cpu")


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=4)
def load_corpus(key: str):
    return app_corpus.CorpusChoice.from_dict(json.loads(key)).load()


# ----------------------------------------------------------------------------- shareable link
# The run, fold, map and (for a held-out test utterance) the utterance live in the URL
# (?run=RUN&fold=K&map=pca&utt=ID): a copied link opens the same clip on the same map. A
# value not valid here any more is dropped with a note.

URL_STATE = {"run": "explore_run", "fold": "explore_fold", "map": "explore_map", "utt": "explore_utt"}
URL_WHAT = {"run": "Run", "fold": "Fold", "map": "Map", "utt": "Test utterance"}


def show_url_notes(notes: list[str]) -> None:
    if notes:
        url_note_box.info(
            "This link was made for other runs or data: " + "; ".join(notes)
            + ". Showing this page's defaults instead.",
            icon=":material/link_off:",
        )


store = RunStore()
corpus = app_corpus.current_corpus(st.session_state)
st.title("Explore a clip")
link = UrlState("explore", URL_STATE, URL_WHAT)
url_notes, url_note_box = [], st.empty()
st.markdown(
    "Upload or record a short utterance (0.5 s or more; longer than 14 s is cut) and see how a "
    "trained run classifies it and where its feature **z** lands among the training utterances."
)

rows = list_runs(str(store.root), run_tables.store_signature(store))
finished = [r for r in rows if run_tables.is_finished(r)]
if not finished:
    st.info(
        "No finished run yet. Press **Quick start** on the home page, or train one on **Train**."
    )
    st.stop()
by_id = {r.run_id: r for r in finished}
ids = list(by_id)
preferred = explore.default_explore_run(store, finished, corpus) or ids[0]
url_notes += link.apply({"run": ids})
keep_choice("explore_run", ids, preferred)
c1, c2, c3 = st.columns([3, 1, 1])
run_id = c1.selectbox(
    "run",
    ids,
    key="explore_run",
    format_func=lambda i: run_tables.run_label(by_id[i]),
    help="default: the finished center-loss run with the best UA on the corpus in use",
)
run = store.get(run_id)
if classical.is_classical(run):
    st.info(
        "This run is the eGeMAPS + SVM baseline: it has no network to put a clip through. Pick a "
        "CNN run here; **Compare** shows the baseline's feature space next to a CNN's."
    )
    st.stop()
folds = run.folds_done()
url_notes += link.apply({"fold": [str(k) for k in folds]}, convert=int)
url_notes += link.apply({"map": ["pca", "umap"]})
keep_choice("explore_fold", folds, folds[0])
keep_choice("explore_map", ["pca", "umap"], "pca")
fold = c2.selectbox("fold", folds, key="explore_fold")
method = c3.radio("map", ["pca", "umap"], horizontal=True, format_func=str.upper, key="explore_map")

run_corpus = app_corpus.CorpusChoice.from_run(run)
st.caption(f"This run was trained on: **{run_corpus.label()}**.")
SOURCES = ["Upload a file", "Record", "A held-out test utterance"]
if link.asks_for("utt"):
    st.session_state["explore_source"] = SOURCES[2]  # the link names a test utterance
kind = st.radio("clip", SOURCES, horizontal=True, label_visibility="collapsed", key="explore_source")
name, data = None, None
if kind == SOURCES[0]:
    uploaded = st.file_uploader(
        "audio file", type=AUDIO_TYPES, help="WAV, FLAC, OGG, MP3, AIFF …, at most 20 MB"
    )
    if uploaded is not None:
        name, data = uploaded.name, uploaded.getvalue()
elif kind == SOURCES[1]:
    recorded = st.audio_input("record with your microphone", sample_rate=16000)
    if recorded is not None:
        name, data = "your recording", recorded.getvalue()
else:
    if not run_corpus.available():
        st.caption(f"The run's corpus ({run_corpus.label()}) is not on this machine.")
    else:
        try:
            paths = explore.utterance_paths(load_corpus(run_corpus.key()))
        except SerLabError as exc:
            st.error(f"The run's corpus cannot be read: {exc}")
            st.stop()
        tests = run_tables.predictions(run, fold)
        tests = tests[(tests["split"] == "test") & tests["utt_id"].isin(list(paths))]
        url_notes += link.apply({"utt": list(tests["utt_id"])})
        if st.session_state.get("explore_utt") not in list(tests["utt_id"]):
            st.session_state.pop("explore_utt", None)
        unseen = (
            "its speaker was never seen in training"
            if run.config.get("train", {}).get("protocol") in ("speaker", "session")
            else "never used in training"
        )
        pick = st.selectbox(
            f"an utterance of the test part of this fold ({unseen})",
            list(tests["utt_id"]),
            index=None,
            format_func=lambda u: f"{u} ({tests.loc[u, 'label']})",
            key="explore_utt",
        )
        if pick is not None:
            name, data = pick, explore.read_bytes(paths[pick])
url_notes += link.apply({"utt": []})  # a test utterance the page could not offer
link.finish()
held_out = name if kind == SOURCES[2] else None
link.write(run=run_id, fold=fold, map=method, utt=held_out)
show_url_notes(url_notes)
if data is None:
    st.info("Upload or record a clip to start, or pick a held-out test utterance.")
    st.stop()

try:
    model = predictor(str(run.dir), fold, json.dumps(run_tables.run_signature(run.dir)))
    with st.spinner("Listening…"):
        pred = model.predict(data, with_projection=False, k=5)
        clip_xy = model.map(method).transform(pred.z[None, :])[0]
        fold_map = model.map(method)
except SerLabError as exc:
    st.error(f"This clip ({name}) cannot be used: {exc}")
    st.stop()

# ----------------------------------------------------------------------------- the answer

corpus_labels = None
if run_corpus.available():
    try:
        corpus_labels = {u.utt_id: u.label for u in load_corpus(run_corpus.key()).utterances}
    except SerLabError:
        corpus_labels = None
context = explore.clip_context(
    name, {SOURCES[0]: "upload", SOURCES[1]: "record"}.get(kind, "test"), run_corpus.name,
    corpus_labels,
)
if context.warning:
    st.warning(context.warning, icon=":material/warning:")

names = pred.label_names
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("predicted", pred.predicted)
if context.true_label is not None:
    right = context.true_label == pred.predicted
    c2.metric(
        "true label",
        context.true_label,
        "right" if right else "wrong",
        delta_color="normal" if right else "inverse",
        help=f"known because {context.how}",
    )
else:
    c2.metric("true label", "unknown", help="not known from the clip's name or origin")
c3.metric("confidence", run_tables.pct(float(pred.probabilities.max())))
c4.metric("nearest center", names[int(pred.center_distances.argmin())])
c5.metric("duration", f"{pred.duration:.2f} s")
if context.true_label is not None and context.true_label not in names:
    st.caption(f"The run has no class {context.true_label!r}: it cannot answer right on this clip.")
if pred.truncated:
    st.warning(
        f"The clip is {pred.original_duration:.1f} s long; only its first {pred.duration:.0f} s were used "
        "(the paper cuts utterances at 14 s)."
    )

c1, c2 = st.columns([3, 2])
with c1:
    st.audio(data)
    st.plotly_chart(figures.waveform_figure(pred.samples), key="wave")
    st.plotly_chart(
        figures.spectrogram_figure(pred.features, kind=model.feature_config.kind), key="spec"
    )
with c2:
    st.plotly_chart(figures.probabilities_figure(names, pred.probabilities), key="probs")
    st.dataframe(
        {"class": names, "distance to center": [round(float(d), 3) for d in pred.center_distances]},
        hide_index=True,
    )

st.header("Where the clip lands")
points = run_tables.map_points(fold_map, ["train"])
st.plotly_chart(
    figures.map_figure(
        points,
        fold_map.centers_xy,
        names,
        f"{run_id}: training utterances ({method.upper()})",
        clip_xy=clip_xy,
        clip_distances=pred.center_distances,
        height=520,
    ),
    key="clip_map",
)
st.download_button(
    "Download this result (JSON)",
    exp.clip_result_json(pred, run_id=run_id, clip=name, method=method, map_xy=clip_xy),
    file_name=f"{run_id}_{Path(name).stem}.json", mime="application/json", key="clip_json",
    on_click="ignore",
)
st.caption(
    "The star is your clip; dashed lines go to the trained class centers, each labelled with its "
    "class and the distance ‖z − c_j‖ in the 64-d feature space (the map itself is a 2-D "
    "projection, so lengths on it are only a guide)."
)

# ----------------------------------------------------------------------------- neighbours

st.header("Nearest training utterances")
if not model.corpus_problem and run_corpus.available():
    try:
        if not explore.corpus_matches(run, model.reference_fold, load_corpus(run_corpus.key())):
            st.warning(explore.CORPUS_CHANGED, icon=":material/warning:")
    except SerLabError as exc:
        st.warning(f"The run's corpus cannot be read: {exc}")
if model.corpus_problem:
    st.info(f"Audio of the neighbours is not available: {model.corpus_problem}.")
    if run_corpus.is_synthetic and st.button("Generate the built-in corpus (about 30 s)"):
        with st.spinner("Generating…"):
            load_corpus(run_corpus.key())
        predictor.clear()
        st.rerun()
for n in pred.neighbours:
    c1, c2 = st.columns([2, 3])
    c1.markdown(f"**{n['utt_id']}** · {n['label']} · distance {n['distance']:.3f}")
    audio = explore.read_bytes(n.get("path"))
    if audio:
        c2.audio(audio, format="audio/wav")
    else:
        c2.caption("audio not available")
