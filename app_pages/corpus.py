"""Corpus: what the corpus in use holds, what its adapter could not use, and every utterance."""

import json

import streamlit as st

from app_pages.corpus_form import corpus_form
from ser_lab.app import access, explore, figures, run_tables
from ser_lab.app import corpus as app_corpus
from ser_lab.data.corpora.synthetic import SYNTHETIC_NOTICE
from ser_lab.errors import SerLabError


@st.cache_resource(show_spinner=False, max_entries=4)
def load_manifest(key: str):
    return app_corpus.CorpusChoice.from_dict(json.loads(key)).load()


@st.cache_data(show_spinner=False, max_entries=4)
def tables(key: str) -> dict:
    return app_corpus.corpus_tables(load_manifest(key))


@st.cache_data(show_spinner=False, max_entries=64)
def spectrogram(path: str):
    return explore.spectrogram(path)


corpus = app_corpus.current_corpus(st.session_state)
st.title("Corpus")
st.markdown(f"**{corpus.label()}**")
if corpus.is_synthetic:
    st.warning(f"**Synthetic corpus.** {SYNTHETIC_NOTICE}", icon=":material/warning:")
corpus_form(corpus)

try:
    access.policy().check_corpus_root(corpus.root)
    spinner = (
        "Generating the built-in corpus (first time only, about 30 s)…"
        if not corpus.available()
        else "Reading…"
    )
    with st.spinner(spinner):
        manifest = load_manifest(corpus.key())
        t = tables(corpus.key())
except SerLabError as exc:
    st.error(f"The corpus cannot be loaded: {exc}")
    st.stop()

utts = t["utterances"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("utterances", len(manifest))
c2.metric("speakers", len(manifest.counts_by_speaker()))
c3.metric("classes", len(manifest.labels))
c4.metric(
    "total duration", run_tables.format_duration(float(utts["duration_s"].sum()) if len(utts) else 0.0)
)

c1, c2 = st.columns(2)
c1.plotly_chart(figures.class_counts_figure(t["by_class"]), key="by_class")
c2.plotly_chart(figures.speaker_counts_figure(t["by_speaker"], manifest.labels), key="by_speaker")

st.header("Problems found")
if manifest.problems:
    st.warning(
        f"The {manifest.corpus} adapter could not use {len(manifest.problems)} file(s); they are left out."
    )
    st.dataframe(t["problems"], hide_index=True, width="stretch")
else:
    st.success("The adapter found no problem: every file it saw is used.")
for reason, counts in (manifest.excluded or {}).items():
    st.caption(
        f"Left out on purpose ({reason}): " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )

st.header("Utterances")
c1, c2 = st.columns(2)
classes = c1.multiselect("class", list(manifest.labels), default=list(manifest.labels))
speakers = sorted(utts["speaker"].unique()) if len(utts) else []
chosen = c2.multiselect("speaker", speakers, default=speakers)
view = utts[utts["label"].isin(classes) & utts["speaker"].isin(chosen)].reset_index(drop=True)
st.caption(f"{len(view)} of {len(utts)} utterances. Select a row to listen to it.")
event = st.dataframe(
    view[["utt_id", "label", "speaker", "group", "duration_s"]],
    hide_index=True,
    width="stretch",
    height=320,
    on_select="rerun",
    selection_mode="single-row",
    key="utt_table",
)
rows = event.selection.rows if event else []
if rows:
    row = view.iloc[rows[0]]
    st.subheader(f"{row['utt_id']} · {row['label']} · {row['speaker']}")
    try:
        feats, duration = spectrogram(row["path"])
    except SerLabError as exc:
        st.error(f"This file cannot be read: {exc}")
    else:
        st.audio(explore.read_bytes(row["path"]))
        st.plotly_chart(
            figures.spectrogram_figure(feats, title=f"log Mel spectrogram ({duration:.2f} s)"),
            key="utt_spec",
        )
