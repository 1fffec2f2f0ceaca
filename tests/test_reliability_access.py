"""Not open to the network, and a shared (classroom) mode that only browses (docs/reliability.md,
section 8).

- `streamlit run app.py` with the shipped `.streamlit/config.toml` listens on 127.0.0.1 only
  (checked on the real server's listening sockets), and `make app` does not override it;
- `ser_lab.app.access.AccessPolicy`: SER_LAB_SHARED and the SER_LAB_CORPUS_ROOTS allow-list;
- in shared mode every forbidden control of every page is refused, even when its (disabled)
  button is clicked anyway: starting, stopping and resuming a training, the quick start,
  launching, stopping and resuming a sweep, and a corpus root outside the allow-list. The
  launcher's functions are replaced by recorders, so a test fails if any of them is reached;
- a wrong-typed run folder is one broken row on every page, the others unaffected.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ser_lab.app.access import ENV_CORPUS_ROOTS, ENV_SHARED, AccessPolicy
from ser_lab.errors import AccessDeniedError
from ser_lab.experiments import launcher
from ser_lab.learn.trainer import new_run
from ser_lab.runs import RunStore
from tests.app_fixtures import ROOT, TINY, app_test, settings_json, texts
from tests.audio_fixtures import tone, write_audio

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ----------------------------------------------------------------------------- listening address


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.rsplit(":", 1)
            if int(port_hex, 16) == port and state == "0A":  # 0A = LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_the_shipped_config_listens_on_localhost_only(tmp_path: Path) -> None:
    """Was: no server.address, so `streamlit run app.py` listened on every interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SER_LAB_CHECKPOINTS=str(tmp_path / "runs"), SER_LAB_CACHE=str(tmp_path / "cache"))
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.5)
        addresses = _listening_addresses(port)
        assert addresses and addresses <= LOOPBACK, addresses
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_make_app_keeps_the_configured_address() -> None:
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert re.search(r'^address = "127\.0\.0\.1"$', config, re.M)
    app_rule = (ROOT / "Makefile").read_text().split("\napp:", 1)[1].split("\n\n", 1)[0]
    assert "streamlit run app.py" in app_rule and "server.address" not in app_rule


# ----------------------------------------------------------------------------- the policy


def test_policy_from_the_environment(tmp_path: Path) -> None:
    assert not AccessPolicy.from_env({}).shared
    assert AccessPolicy.from_env({ENV_SHARED: "0"}).can_train
    for value in ("1", "true", "yes", "on", "typo"):  # anything but off fails closed
        assert AccessPolicy.from_env({ENV_SHARED: value}).shared, value
    roots = AccessPolicy.from_env({ENV_SHARED: "1", ENV_CORPUS_ROOTS: f"{tmp_path}/a{os.pathsep} {tmp_path}/b"})
    assert roots.corpus_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    with pytest.raises(AccessDeniedError, match="Starting a training is not allowed"):
        roots.check("starting a training")
    AccessPolicy().check("starting a training")  # personal mode: allowed


def test_corpus_roots_only_inside_the_allow_list(tmp_path: Path) -> None:
    allowed = tmp_path / "data"
    (allowed / "emodb").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    os.symlink(tmp_path / "private", allowed / "link")
    shared = AccessPolicy(shared=True, corpus_roots=(allowed.resolve(),))
    assert shared.allows_corpus_root(allowed / "emodb")
    assert shared.allows_corpus_root(allowed)
    assert shared.allows_corpus_root(None)  # the built-in synthetic corpus in the cache
    for outside in (tmp_path / "private", allowed / ".." / "private", allowed / "link", "/etc", f"{allowed}x"):
        assert not shared.allows_corpus_root(outside), outside
    with pytest.raises(AccessDeniedError, match="not allowed in shared mode; allowed roots: "):
        shared.check_corpus_root("/etc")
    nothing = AccessPolicy(shared=True)
    with pytest.raises(AccessDeniedError, match=f"{ENV_CORPUS_ROOTS} is not set"):
        nothing.check_corpus_root(allowed)
    assert AccessPolicy().allows_corpus_root("/etc")  # personal mode: any folder


# ----------------------------------------------------------------------------- the pages


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Replace every launcher action by a recorder: a test fails if a refused action runs."""
    made: list[str] = []
    for name in ("launch_training", "stop_run", "resume_run", "quick_start", "launch_sweep",
                 "stop_sweep", "resume_sweep"):
        monkeypatch.setattr(launcher, name, lambda *a, _n=name, **k: made.append(_n))
    return made


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


def _forced_click(at, monkeypatch, find) -> None:
    """Click a control as a forged request would: the page is drawn in personal mode (so the
    button is enabled and AppTest lets it be clicked), then the click is handled by a run in
    shared mode, where the button is drawn disabled. Nothing may happen: Streamlit drops the
    events of a disabled widget, and each guarded action also asks the policy itself."""
    monkeypatch.delenv(ENV_SHARED, raising=False)
    at.run()
    monkeypatch.setenv(ENV_SHARED, "1")
    find(at).click().run()


def test_train_page_start_stop_resume(scratch_store, monkeypatch, calls) -> None:
    store = RunStore(scratch_store.store)
    queued = new_run(TINY, store, name="waiting")  # queued, fresh heartbeat: offers Stop
    failed = new_run(TINY, store, name="failed one")
    failed.update_status(state="failed", error="CorpusError: gone")
    labels = ("Start training", "Stop", "Resume")
    at = app_test("train")
    at.multiselect[0].set_value([queued.run_id, failed.run_id]).run()
    no_exception(at)
    assert not any(_button(at, label).disabled for label in labels)  # personal mode: enabled
    monkeypatch.setenv(ENV_SHARED, "1")
    at.run()
    no_exception(at)
    assert all(_button(at, label).disabled for label in labels)
    assert "Shared mode" in texts(at)
    before = sorted(p.name for p in store.root.iterdir())
    _forced_click(at, monkeypatch, lambda a: a.button(key="start_training"))
    assert calls == [] and not at.success
    _forced_click(at, monkeypatch, lambda a: _button(a, "Stop"))
    assert calls == [] and not at.success
    _forced_click(at, monkeypatch, lambda a: _button(a, "Resume"))
    assert calls == [] and not at.success
    assert sorted(p.name for p in store.root.iterdir()) == before  # no new run folder
    assert failed.read_status()["state"] == "failed"


def test_home_quick_start_and_corpus_roots_in_shared_mode(scratch_store, monkeypatch, calls, tmp_path):
    allowed = tmp_path / "data"
    corpus = allowed / "mine"
    for i, label in enumerate(("angry", "sad")):
        (corpus / label).mkdir(parents=True)
        write_audio(corpus / label / f"u{i}.wav", tone(1.0, seed=i))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "angry").mkdir(parents=True)
    write_audio(elsewhere / "angry" / "u.wav", tone(1.0))
    monkeypatch.setenv(ENV_SHARED, "1")
    monkeypatch.setenv(ENV_CORPUS_ROOTS, str(allowed))
    settings = scratch_store.cache / "app_settings.json"
    saved = settings.read_text()
    at = app_test()
    no_exception(at)
    assert _button(at, "Quick start").disabled
    _forced_click(at, monkeypatch, lambda a: _button(a, "Quick start"))
    assert calls == [] and not at.success
    submit = "FormSubmitter:corpus_form-Check and use this corpus"
    at.selectbox[0].set_value("folder")
    at.text_input[0].set_value(str(elsewhere))
    at.button(key=submit).click().run()
    assert any("not allowed in shared mode" in e.value for e in at.error)
    assert settings.read_text() == saved
    at.selectbox[0].set_value("folder")
    at.text_input[0].set_value(str(corpus))
    at.button(key=submit).click().run()
    no_exception(at)
    assert any("Now using folder" in s.value for s in at.success)
    assert settings.read_text() == saved  # one visitor's choice is not saved for the others


def test_a_saved_unlisted_corpus_is_refused_in_shared_mode(app_env, monkeypatch, tmp_path):
    (tmp_path / "angry").mkdir()
    write_audio(tmp_path / "angry" / "u.wav", tone(1.0))
    choice = json.loads(settings_json())
    choice["corpus"].update(name="folder", root=str(tmp_path), options={})
    (app_env.cache / "app_settings.json").write_text(json.dumps(choice))
    monkeypatch.setenv(ENV_SHARED, "1")
    at = app_test("corpus")
    no_exception(at)
    assert any("not allowed in shared mode" in e.value for e in at.error)
    assert not at.dataframe  # nothing of that folder is listed


def test_sensitivity_launch_stop_resume_in_shared_mode(scratch_store, monkeypatch, calls):
    from dataclasses import replace

    from ser_lab.experiments.sweep import MANIFEST_VERSION, sweeps_dir

    store = RunStore(scratch_store.store)
    run = new_run(replace(TINY, lam=0.3, sweep_id="sweep-half"), store, name="sweep-half point")
    run.update_status(state="interrupted")
    sweeps_dir(store).mkdir()
    manifest = {
        "format_version": MANIFEST_VERSION, "sweep_id": "sweep-half", "created": "2099-01-01T00:00:00",
        "spec": {}, "points": [{"key": "a", "run_id": run.run_id, "state": "interrupted"},
                               {"key": "b", "run_id": None, "state": "pending"}],
    }
    (sweeps_dir(store) / "sweep-half.json").write_text(json.dumps(manifest))
    monkeypatch.setenv(ENV_SHARED, "1")
    at = app_test("sensitivity")
    no_exception(at)
    resume = "Resume the sweep (2 points not done)"
    assert _button(at, resume).disabled and _button(at, "Launch the grid").disabled
    assert "Shared mode" in texts(at)
    _forced_click(at, monkeypatch, lambda a: a.button(key="FormSubmitter:grid-Launch the grid"))
    assert calls == [] and not at.success
    _forced_click(at, monkeypatch, lambda a: _button(a, resume))
    assert calls == [] and not at.success
    monkeypatch.setattr(launcher, "sweep_process", lambda *a, **k: 4242)  # a sweep "running"
    at = app_test("sensitivity")
    assert _button(at, "Stop the sweep").disabled
    _forced_click(at, monkeypatch, lambda a: _button(a, "Stop the sweep"))
    assert calls == [] and not at.success


@pytest.mark.parametrize("page", [None, "train", "compare", "explore", "sensitivity"])
def test_a_wrong_typed_run_is_one_broken_row_on_every_page(scratch_store, page) -> None:
    """Was: `Unknown format code 'f'` in the run label and the default pair."""
    store = RunStore(scratch_store.store)
    bad = store.create({"lam": "abc", "alpha": "x", "corpus": "synthetic", "features": "mel"})
    bad.update_status(state="done", progress=1.0)
    bad.write_results({"mean": {"UA": 0.5, "WA": 0.5}, "folds": [], "pooled": {}})
    at = app_test(page)
    no_exception(at)
    if page is None:
        assert f"`{bad.run_id}`: config.json: lam is 'abc', expected a finite number" in texts(at)
        assert {scratch_store.baseline, scratch_store.center} <= set(at.dataframe[0].value["run"])
