"""Helpers of the app tests. Their fixtures (`app_store`: a tiny trained pair, trained once
per test session; `app_env`, `scratch_store`) are in tests/conftest.py, so every test module
has them without importing anything."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ser_lab.app.pages import PAGES as APP_PAGES
from ser_lab.config import TrainConfig
from ser_lab.runs import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = {p.url_path: p.path for p in APP_PAGES if not p.default}  # the app's own registry
TINY = TrainConfig(
    corpus_options={"size": "tiny"}, n_folds=2, folds=[0], epochs=2, snapshot_every=1, workers=1
)


@dataclass
class AppStore:
    cache: Path
    store: Path
    baseline: str  # run id, λ = 0, marked demo
    center: str  # run id, λ = 0.3, α = 0.5
    broken: str  # a folder with an unreadable config.json

    def run(self, run_id: str) -> Run:
        return RunStore(self.store).get(run_id)


@contextlib.contextmanager
def environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def settings_json(size: str = "tiny") -> str:
    return json.dumps(
        {
            "corpus": {
                "name": "synthetic",
                "root": None,
                "classes": "paper",
                "options": {"size": size},
            }
        }
    )


def app_test(page: str | None = None, timeout: float = 120):
    """An AppTest of the app, switched to `page` (a key of PAGES) and run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(PAGES[page])
        at.run()
    return at


def texts(at) -> str:
    """Every markdown, caption, alert and heading text of a run, joined (for `in` checks)."""
    parts = []
    for kind in (
        "markdown",
        "caption",
        "error",
        "warning",
        "info",
        "success",
        "title",
        "header",
        "subheader",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def charts(at) -> list:
    return at.get("plotly_chart")
