"""The "use another corpus" form, shared by the Home and Corpus pages (not a page itself:
app.py does not route to it). Checks the choice with the corpus adapter before using it."""

import streamlit as st

from ser_lab.app import access
from ser_lab.app import corpus as app_corpus
from ser_lab.data.corpora import CORPORA, REGISTRY, describe
from ser_lab.data.corpora.synthetic import SIZES
from ser_lab.errors import SerLabError


def corpus_form(corpus: app_corpus.CorpusChoice, *, expanded: bool = False) -> None:
    """An expander with the form; on a usable choice, switches every page to it and reruns.

    A typed root is checked against the server's allowed corpus roots first; in shared
    (classroom) mode the choice is kept in this visitor's session only, not saved for the
    others."""
    policy = access.policy()
    report = st.session_state.get("corpus_report")
    with st.expander("Use another corpus", expanded=expanded or bool(report)):
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
                index=size_names.index(corpus.options.get("size", app_corpus.DEFAULT_SYNTHETIC_SIZE)),
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
            choice = app_corpus.CorpusChoice(
                name=name,
                root=root.strip() or None,
                classes=classes,
                options={"size": size} if name == "synthetic" else {},
            )
            try:
                policy.check_corpus_root(choice.root)
                with st.spinner(
                    "Reading the corpus (the synthetic one is generated on first use)…"
                ):
                    manifest = choice.validate().load()
            except SerLabError as exc:
                st.error(f"Not usable: {exc}")
            else:
                if policy.shared:  # this visitor's choice only: not saved for the others
                    st.session_state[app_corpus.SESSION_KEY] = choice.to_dict()
                else:
                    app_corpus.set_corpus(st.session_state, choice)
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
