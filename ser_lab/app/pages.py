"""The app's page registry: one entry per page (file, title, icon, what it is for).

Nothing here imports Streamlit; pages stay thin (read inputs, call ser_lab, draw).
"""

from __future__ import annotations

from dataclasses import dataclass

# ----------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class PageInfo:
    """One page of the app: what `app.py` registers with st.navigation and what the home
    page's guide links to (the one list of pages)."""

    path: str  # the page's script, relative to the app folder (ser_lab.paths.app_dir)
    title: str
    icon: str
    url_path: str
    blurb: str  # one line for the home page's guide
    default: bool = False


PAGES: tuple[PageInfo, ...] = (
    PageInfo("app_pages/home.py", "Home", ":material/home:", "home",
             "the corpus in use, the runs so far, a quick start", default=True),
    PageInfo("app_pages/train.py", "Train", ":material/model_training:", "train",
             "launch runs, watch losses, accuracy and distances live"),
    PageInfo("app_pages/compare.py", "Compare", ":material/compare:", "compare",
             "two runs' maps of z, confusion matrices, discriminability"),
    PageInfo("app_pages/explore.py", "Explore a clip", ":material/graphic_eq:", "explore",
             "upload or record audio, see where it lands"),
    PageInfo("app_pages/sensitivity.py", "Sensitivity", ":material/tune:", "sensitivity",
             "sweep λ and α, accuracy with error bars"),
    PageInfo("app_pages/corpus.py", "Corpus", ":material/folder_open:", "corpus",
             "classes, speakers, problems, every utterance"),
    PageInfo("app_pages/learn.py", "Learn", ":material/school:", "learn",
             "the two losses, and a live 2-D toy"),
)


def page(url_path: str) -> PageInfo:
    """The page registered under `url_path` (KeyError for an unknown one)."""
    return next(p for p in PAGES if p.url_path == url_path)
