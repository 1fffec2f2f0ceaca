"""SER Lab, the app: `streamlit run app.py` (or `make app`).

This file only sets the page up and routes to the pages in app_pages/ (not pages/: a folder of
that name would also switch on Streamlit's older automatic multipage mode, which then fights
st.navigation over the first URL a new server sees); each page reads its inputs,
calls ser_lab and draws. The corpus in use is shown in the sidebar of every page.
"""

import json
import os

import streamlit as st

from ser_lab import app_support as sup
from ser_lab import launcher

st.set_page_config(page_title="SER Lab", page_icon=":material/graphic_eq:", layout="wide")

# A test hook: $SER_LAB_QUICK_START_OVERRIDE (a JSON object of quick-start fields) shrinks the
# Home page's quick start, so the browser test can walk Quick start -> Compare in a minute.
_override = os.environ.get("SER_LAB_QUICK_START_OVERRIDE")
if _override:
    launcher.QUICK_START = {**launcher.QUICK_START, **json.loads(_override)}

PAGES = [
    st.Page(
        "app_pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True
    ),
    st.Page(
        "app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"
    ),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(
        "app_pages/explore.py",
        title="Explore a clip",
        icon=":material/graphic_eq:",
        url_path="explore",
    ),
    st.Page(
        "app_pages/sensitivity.py",
        title="Sensitivity",
        icon=":material/tune:",
        url_path="sensitivity",
    ),
    st.Page(
        "app_pages/corpus.py", title="Corpus", icon=":material/folder_open:", url_path="corpus"
    ),
    st.Page("app_pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]

page = st.navigation(PAGES)
corpus = sup.current_corpus(st.session_state)
st.sidebar.caption(f"**Corpus in use:** {corpus.label()}")
if corpus.is_synthetic:
    st.sidebar.caption(
        ":material/warning: Synthetic speech: results show the pipeline works, not real-world accuracy."
    )
page.run()
