"""Fixtures shared by many test modules (pytest finds them here; no import needed)."""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from ser_lab.learn.trainer import new_run, train_run
from ser_lab.runs import RunStore
from tests.app_fixtures import TINY, AppStore, environment, settings_json

BENCH = Path(__file__).resolve().parents[1] / "bench"


def import_bench(name: str) -> ModuleType:
    """A script of bench/ as a module (bench/ is on sys.path only while it imports, for the
    scripts' own `from common import ...`)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def trained_run(store: RunStore, cfg, **kw):
    """A new run of `cfg` in `store`, trained to the end under its lock (kw: train_run's)."""
    run = new_run(cfg, store)
    with run.lock():
        train_run(run, **kw)
    return run


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


@pytest.fixture(scope="session")
def reliability_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SER_LAB_CACHE for the reliability modules of a session: the tiny synthetic corpus
    and its features are made once."""
    path = tmp_path_factory.getbasetemp() / "reliability-cache"
    path.mkdir(exist_ok=True)
    return path
