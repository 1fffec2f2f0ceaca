"""SER Lab, the app: `streamlit run app.py` (or `make app`).

This file only sets the page up and routes to the pages in pages/; each page reads its inputs,
calls ser_lab and draws. The corpus in use is shown in the sidebar of every page.
"""

import streamlit as st

from ser_lab import app_support as sup

st.set_page_config(page_title="SER Lab", page_icon=":material/graphic_eq:", layout="wide")

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/1_Train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/2_Compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(
        "pages/3_Explore.py",
        title="Explore a clip",
        icon=":material/graphic_eq:",
        url_path="explore",
    ),
    st.Page(
        "pages/4_Sensitivity.py",
        title="Sensitivity",
        icon=":material/tune:",
        url_path="sensitivity",
    ),
    st.Page("pages/5_Corpus.py", title="Corpus", icon=":material/folder_open:", url_path="corpus"),
    st.Page("pages/6_Learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]

page = st.navigation(PAGES)
corpus = sup.current_corpus(st.session_state)
st.sidebar.caption(f"**Corpus in use:** {corpus.label()}")
if corpus.is_synthetic:
    st.sidebar.caption(
        ":material/warning: Synthetic speech: results show the pipeline works, not real-world accuracy."
    )
page.run()
