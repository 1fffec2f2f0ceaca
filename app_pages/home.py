"""Home: what SER Lab is, the corpus in use, the runs so far, and a one-click quick start."""

import json

import streamlit as st

from ser_lab import access, launcher
from ser_lab import app_support as sup
from ser_lab.corpora import CORPORA, REGISTRY, describe
from ser_lab.corpora.synthetic import SIZES, SYNTHETIC_NOTICE
from ser_lab.errors import SerLabError
from ser_lab.runs import RunStore


@st.cache_data(show_spinner=False, max_entries=16, ttl=5)
def list_runs(root: str, signature: tuple) -> list:
    """The run list; `signature` (file mtimes) makes a changed store a new cache entry."""
    return RunStore(root).list()


@st.cache_data(show_spinner=False, max_entries=8)
def corpus_summary(key: str) -> dict:
    choice = sup.CorpusChoice.from_dict(json.loads(key))
    manifest = choice.load()
    return {
        "n": len(manifest),
        "speakers": len(manifest.counts_by_speaker()),
        "labels": list(manifest.labels),
        "problems": len(manifest.problems),
    }


store = RunStore()
corpus = sup.current_corpus(st.session_state)
policy = access.policy()
if policy.shared:
    st.info(
        "Shared mode: runs can be browsed, compared and explored here; training is switched off "
        "on this server.",
        icon=":material/lock:",
    )

st.title("SER Lab")
st.markdown(
    "An interactive lab for **speech emotion recognition with center loss**, after Dai et al., "
    "*Learning Discriminative Features from Spectrograms Using Center Loss* (ICASSP 2019). "
    "A CNN-BiGRU turns a spectrogram into a 64-d feature **z** and classifies it as neutral, "
    "angry, happy or sad. Trained with the softmax loss alone (the baseline, λ = 0) or with an "
    "added center loss that pulls each z toward its class center (λ > 0), it lets you see "
    "whether the features become more discriminative, and whether that helps accuracy."
)
GUIDE = [p for p in sup.PAGES if not p.default]
for start in (0, 3):
    cols = st.columns(3)
    for col, p in zip(cols, GUIDE[start : start + 3]):
        with col:
            st.page_link(p.path, label=p.title, icon=p.icon)
            st.caption(p.blurb)

# ----------------------------------------------------------------------------- corpus

st.header("Corpus in use")
if corpus.is_synthetic:
    st.warning(f"**Synthetic corpus.** {SYNTHETIC_NOTICE}", icon=":material/warning:")
st.markdown(f"**{corpus.label()}**")
if not policy.allows_corpus_root(corpus.root):
    st.error(f"Not usable: corpus root {corpus.root} is outside the roots this server allows.")
elif corpus.available():
    try:
        summary = corpus_summary(corpus.key())
    except SerLabError as exc:
        st.error(f"The corpus cannot be loaded: {exc}")
    else:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("utterances", summary["n"])
        c2.metric("speakers", summary["speakers"])
        c3.metric("classes", len(summary["labels"]))
        c4.metric("problems found", summary["problems"])
else:
    st.caption(
        "The built-in corpus is generated into the cache the first time a page or a run needs it."
    )

with st.expander("Use another corpus", expanded=bool(st.session_state.get("corpus_report"))):
    with st.form("corpus_form"):
        name = st.selectbox(
            "corpus type",
            CORPORA,
            index=CORPORA.index(corpus.name),
            format_func=lambda n: f"{n}: {REGISTRY[n].help}",
        )
        root = st.text_input(
            "root folder (or CSV file)",
            value=corpus.root or "",
            help="not needed for the built-in synthetic corpus",
        )
        size_names = list(SIZES)
        size = st.selectbox(
            "synthetic size",
            size_names,
            index=size_names.index(corpus.options.get("size", sup.DEFAULT_SYNTHETIC_SIZE)),
            help="only for the synthetic corpus",
        )
        classes = st.radio(
            "classes",
            ["paper", "all"],
            horizontal=True,
            index=["paper", "all"].index(corpus.classes),
            help="paper: neutral, angry, happy, sad; all: every class the corpus has",
        )
        submitted = st.form_submit_button("Check and use this corpus", type="primary")
    if submitted:
        choice = sup.CorpusChoice(
            name=name,
            root=root.strip() or None,
            classes=classes,
            options={"size": size} if name == "synthetic" else {},
        )
        try:
            policy.check_corpus_root(choice.root)
            with st.spinner("Reading the corpus (the synthetic one is generated on first use)…"):
                manifest = choice.validate().load()
        except SerLabError as exc:
            st.error(f"Not usable: {exc}")
        else:
            if policy.shared:  # this visitor's choice only: not saved for the others
                st.session_state[sup.SESSION_KEY] = choice.to_dict()
            else:
                sup.set_corpus(st.session_state, choice)
            st.session_state["corpus_report"] = (
                f"Now using {choice.label()}: {len(manifest)} utterances, "
                f"{len(manifest.problems)} problems found.",
                describe(manifest),
            )
            st.rerun()  # every part of the page (and the sidebar) shows the new corpus
    report = st.session_state.pop("corpus_report", None)
    if report:
        st.success(report[0])
        st.code(report[1], language=None)

# ----------------------------------------------------------------------------- quick start

st.header("Quick start")
rows = list_runs(str(store.root), sup.store_signature(store))
quick_active = [
    r for r in rows if r.name in ("quick baseline", "quick center loss") and sup.is_active(r)
]
st.markdown(
    "Train a **baseline** (λ = 0) and a **center-loss** run (λ = 0.3, α = 0.5) side by side on "
    "the built-in synthetic corpus with a fast preset: 192 utterances of 8 speakers, one "
    "speaker-independent fold, 8 epochs, batch 8. About 4 minutes on two CPU cores; then open "
    "**Compare**. (Two pre-trained demo runs are there already.)"
)
if st.button(
    "Quick start",
    icon=":material/rocket_launch:",
    type="primary",
    disabled=bool(quick_active) or not policy.can_train,
    help="already running" if quick_active else None,
):
    try:
        policy.check("a quick start")
        started = launcher.quick_start(store)
    except SerLabError as exc:
        st.error(f"Could not start: {exc}")
    else:
        ids = [r.run_id for r in started]
        st.session_state["quick_started"] = ids
        st.session_state["watch"] = ids + list(st.session_state.get("watch", []))
        st.rerun()  # redraw with the button disabled and the new runs listed
quick_ids = st.session_state.get("quick_started") or []
quick_done = [r for r in rows if r.run_id in quick_ids and r.state == "done"]
if quick_ids and len(quick_done) == len(quick_ids):
    st.success("The quick start has finished: compare the two runs.")
    st.page_link(sup.page("compare").path, label="Compare them", icon=sup.page("compare").icon)
elif quick_ids:
    ids = quick_ids
    st.success(
        "Started " + " and ".join(f"`{i}`" for i in ids) + ", each in its own process: "
        "closing this tab does not stop them."
    )
    st.page_link(sup.page("train").path, label="Watch them train", icon=sup.page("train").icon)
elif quick_active:
    st.info("A quick start is running: " + ", ".join(r.run_id for r in quick_active))

# ----------------------------------------------------------------------------- runs

st.header("Runs")
if not rows:
    st.info("No runs yet: press Quick start, or train one on the Train page.")
else:
    done = sum(r.state == "done" for r in rows)
    active = sum(sup.is_active(r) for r in rows)
    broken = sum(r.state == "broken" for r in rows)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("runs", len(rows))
    c2.metric("finished", done)
    c3.metric("training now", active)
    c4.metric("broken", broken)
    st.dataframe(
        sup.runs_frame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "demo": st.column_config.CheckboxColumn(
                "demo", help="pre-trained demo run shipped with SER Lab"
            ),
            "progress %": st.column_config.ProgressColumn(
                "progress", min_value=0, max_value=100, format="%d%%"
            ),
            "problem": st.column_config.TextColumn("problem / error", width="medium"),
        },
    )
    if broken:
        lines = [f"- `{r.run_id}`: {r.problem}" for r in rows if r.state == "broken"][:5]
        st.warning(
            "Run folders SER Lab cannot read (left out of every other page):\n" + "\n".join(lines),
            icon=":material/warning:",
        )
st.caption(f"Run store: {store.root}")
