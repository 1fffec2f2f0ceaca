"""Shared fixtures of the app tests: a tiny trained pair, trained once per test session.

Import the fixtures into a test module (`from tests.app_fixtures import app_env, app_store`)
to use them. The store and cache live in a session tmp folder; `app_env` points
SER_LAB_CHECKPOINTS / SER_LAB_CACHE at them for one test (monkeypatch restores them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ser_lab.runs import Run, RunStore
from ser_lab.trainer import TrainConfig, new_run, train_run

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = {
    "train": "app_pages/train.py",
    "compare": "app_pages/compare.py",
    "explore": "app_pages/explore.py",
    "sensitivity": "app_pages/sensitivity.py",
    "corpus": "app_pages/corpus.py",
    "learn": "app_pages/learn.py",
}
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


@pytest.fixture(scope="session")
def app_store(tmp_path_factory) -> AppStore:
    base = tmp_path_factory.mktemp("app")
    cache, store_dir = base / "cache", base / "runs"
    with environment(SER_LAB_CACHE=str(cache), SER_LAB_CHECKPOINTS=str(store_dir)):
        store = RunStore(store_dir)
        ids = []
        for name, lam, demo in (("tiny baseline", 0.0, True), ("tiny center", 0.3, False)):
            run = new_run(replace(TINY, lam=lam, alpha=0.5, demo=demo), store, name=name)
            with run.lock():
                train_run(run)
            ids.append(run.run_id)
            time.sleep(1.1)  # distinct creation seconds: the listing is newest first
        broken = store_dir / "broken-run"
        broken.mkdir()
        (broken / "config.json").write_text("{not json")
        (cache / "app_settings.json").write_text(settings_json())
    return AppStore(cache, store_dir, ids[0], ids[1], broken.name)


@pytest.fixture
def app_env(app_store, monkeypatch) -> AppStore:
    monkeypatch.setenv("SER_LAB_CACHE", str(app_store.cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(app_store.store))
    (app_store.cache / "app_settings.json").write_text(settings_json())
    return app_store


@pytest.fixture
def scratch_store(app_store, tmp_path, monkeypatch) -> AppStore:
    """A private copy of the trained pair, for tests that add or change runs."""
    store = tmp_path / "runs"
    shutil.copytree(app_store.store, store)
    monkeypatch.setenv("SER_LAB_CACHE", str(app_store.cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(store))
    (app_store.cache / "app_settings.json").write_text(settings_json())
    return replace(app_store, store=store)


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
