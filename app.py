"""SER Lab, the app: `streamlit run app.py` (or `make app`).

This file only sets the page up and routes to the pages in app_pages/ (not pages/: a folder of
that name would also switch on Streamlit's older automatic multipage mode, which then fights
st.navigation over the first URL a new server sees); each page reads its inputs,
calls ser_lab and draws. The corpus in use is shown in the sidebar of every page.
"""

import json
import os

import streamlit as st

from ser_lab.app import corpus as app_corpus
from ser_lab.app import pages
from ser_lab.experiments import launcher

st.set_page_config(page_title="SER Lab", page_icon=":material/graphic_eq:", layout="wide")

# A test hook: $SER_LAB_QUICK_START_OVERRIDE (a JSON object of quick-start fields) shrinks the
# Home page's quick start, so the browser test can walk Quick start -> Compare in a minute.
_override = os.environ.get("SER_LAB_QUICK_START_OVERRIDE")
if _override:
    launcher.QUICK_START = {**launcher.QUICK_START, **json.loads(_override)}

# The pages, their titles, icons and URLs: ser_lab.app.pages.PAGES (also the home page's guide).
PAGES = [
    st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
    for p in pages.PAGES
]

page = st.navigation(PAGES)
corpus = app_corpus.current_corpus(st.session_state)
st.sidebar.caption(f"**Corpus in use:** {corpus.label()}")
if corpus.is_synthetic:
    st.sidebar.caption(
        ":material/warning: Synthetic speech: results show the pipeline works, not real-world accuracy."
    )
page.run()
