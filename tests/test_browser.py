"""The app in a real browser: every page opens, a run trains, Compare and Explore work.

Starts `streamlit run app.py` on a free port with a tmp run store (the tiny trained pair of the
app tests plus copies of the shipped demo runs) and drives it with Playwright's Chromium at
/usr/bin/chromium (install it with `apt-get install -y chromium`). Fails on any Streamlit
exception box. Screenshots (1280x800 viewport, full page) go to screenshots/ (git-ignored).

Skipped, with the reason, when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import app_fixtures as fx
from tests.app_fixtures import ROOT, settings_json

app_store = fx.app_store

# The quick start of the browser test: the Home button's own code path, on the tiny corpus the
# app tests already generated, so the walk Quick start -> Compare takes about a minute.
QUICK_TINY = {"corpus_options": {"size": "tiny"}, "epochs": 2, "n_folds": 2, "snapshot_size": 32}
QUICK_TIMEOUT_S = 420

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "screenshots"
EXCEPTION = '[data-testid="stException"]'

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found (apt-get install -y chromium)"
    ),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture
def server(app_store, tmp_path):
    yield from _serve(app_store, tmp_path)


@pytest.fixture
def shared_server(app_store, tmp_path):
    """The same app in shared (classroom) mode, the corpus roots limited to the cache."""
    yield from _serve(app_store, tmp_path, SER_LAB_SHARED="1", SER_LAB_CORPUS_ROOTS=str(app_store.cache))


def _serve(app_store, tmp_path, **extra_env: str):
    store = tmp_path / "runs"
    shutil.copytree(app_store.store, store)
    for demo in sorted((ROOT / "checkpoints").glob("demo-*")):
        shutil.copytree(demo, store / demo.name)
    (app_store.cache / "app_settings.json").write_text(settings_json("tiny"))
    port = free_port()
    env = dict(
        os.environ,
        SER_LAB_CHECKPOINTS=str(store),
        SER_LAB_CACHE=str(app_store.cache),
        SER_LAB_QUICK_START_OVERRIDE=json.dumps(QUICK_TINY),
        **extra_env,
    )
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    try:
        wait_healthy(url, proc)
        yield {"url": url, "store": store, "log": tmp_path / "streamlit.log", "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def settle(page, timeout: float = 120_000) -> None:
    """Wait until the script run is over (the app's data-test-script-state says so, and no
    skeleton placeholder is left) and check that no exception box shows."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const state = app && app.getAttribute('data-test-script-state');
            return state === 'notRunning' && !document.querySelector('[data-testid="stSkeleton"]');
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def shot(page, name: str) -> None:
    """Save the 1280x800 viewport, and the whole page (the viewport stretched to the height of
    Streamlit's scrolling main area, which a plain full-page screenshot would cut)."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-viewport.png"))
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : 800; }"
    )
    page.set_viewport_size({"width": 1280, "height": max(800, min(int(height) + 40, 8000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(300)


def open_page(page, url: str, path: str, marker: str) -> None:
    page.goto(f"{url}/{path}")
    expect(page.get_by_text(marker, exact=False).first).to_be_visible(timeout=120_000)
    settle(page)


def test_app_in_a_browser(server, app_store):
    url = server["url"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            # every page opens without an exception box
            open_page(page, url, "", "Corpus in use")
            alert = page.locator('[data-testid="stAlert"]').filter(has_text="Synthetic corpus.")
            expect(alert.first).to_be_visible(timeout=60_000)
            shot(page, "home")
            open_page(page, url, "corpus", "Problems found")
            shot(page, "corpus")
            open_page(page, url, "learn", "Try it: a 2-D toy")
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            shot(page, "learn")
            open_page(page, url, "sensitivity", "Sensitivity to λ and α")
            shot(page, "sensitivity")

            # launch a tiny run and wait until it is done
            open_page(page, url, "train", "New run")
            page.get_by_label("name").fill("browser run")
            epochs = page.get_by_label("epochs", exact=True)
            epochs.fill("2")  # two snapshot epochs: the Compare animation has a slider
            epochs.press("Tab")
            folds = page.get_by_label("folds", exact=True)  # the tiny corpus has 4 speakers
            folds.fill("2")
            folds.press("Tab")
            page.get_by_text("first fold only").click()
            page.get_by_role("button", name="Start training").click()
            expect(page.get_by_text("in its own process", exact=False)).to_be_visible(
                timeout=60_000
            )
            run_id = next(d.name for d in server["store"].iterdir() if "browser-run" in d.name)
            # wait on the run folder itself: the page showed the finished default pair's
            # "test UA" before the launch, and a stale copy of it can outlive the rerun
            deadline = time.monotonic() + 600
            while not (server["store"] / run_id / "results.json").is_file():
                assert time.monotonic() < deadline, "the browser run did not finish in 600 s"
                page.wait_for_timeout(2_000)
            # .first: while the live fragment reruns, the old and new copies can both be present
            expect(page.get_by_text("test UA").first).to_be_visible(
                timeout=60_000
            )  # the live view saw it finish
            expect(page.get_by_text(run_id).first).to_be_visible()
            assert page.locator(EXCEPTION).count() == 0
            shot(page, "train")

            # quick start -> compare: the button trains a pair, Compare reads it in plain words
            open_page(page, url, "", "Quick start")
            page.get_by_role("button", name="Quick start").click()
            expect(page.get_by_text("each in its own process", exact=False).first).to_be_visible(
                timeout=60_000
            )
            deadline = time.monotonic() + QUICK_TIMEOUT_S
            quick = []
            while time.monotonic() < deadline:
                quick = [d for d in server["store"].iterdir() if "-quick-" in d.name]
                if len(quick) == 2 and all((d / "results.json").is_file() for d in quick):
                    break
                time.sleep(2)
            assert len(quick) == 2 and all((d / "results.json").is_file() for d in quick), (
                f"the quick start did not finish in {QUICK_TIMEOUT_S} s"
            )
            open_page(page, url, "compare", "What this pair shows")
            panel = page.locator(".st-key-compare_reading")
            expect(panel.first).to_be_visible(timeout=60_000)
            text = panel.first.inner_text()
            for name in ("UA", "test intra/inter ratio", "test Fisher criterion", "5-NN UA of z"):
                assert name in text, text
            assert text.count(" rose from ") + text.count(" fell from ") >= 3, text
            assert "test utterances" in text
            for d in quick:  # the default pair is the quick pair just trained
                expect(page.get_by_text(d.name).first).to_be_visible()
            page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
            shot(page, "compare-quick")

            # compare: the newest pair; click a point of map A
            open_page(page, url, "compare", "Accuracy and discriminability")
            page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
            shot(page, "compare")
            page.get_by_text("Over the epochs").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SHOTS / "compare-epochs-viewport.png"))
            assert page.locator(".slider-container").count() >= 1  # the epoch slider is drawn
            page.locator(".js-plotly-plot").first.locator(".scatterlayer .point").nth(3).click(
                force=True
            )
            expect(page.get_by_text("Utterance ", exact=False).first).to_be_visible(timeout=60_000)
            settle(page)
            shot(page, "compare-utterance")

            # explore: upload a clip of the tiny corpus to the tiny center-loss run
            open_page(page, url, "explore", "Upload or record a clip to start")
            page.get_by_role("combobox", name="run").click()
            page.get_by_role("option", name="tiny-center", exact=False).first.click()
            settle(page)
            clip = sorted((app_store.cache / "synthetic").glob("*tiny*/wav/*.wav"))[0]
            page.locator('input[type="file"]').first.set_input_files(str(clip))
            expect(page.get_by_text("Where the clip lands")).to_be_visible(timeout=120_000)
            settle(page)
            shot(page, "explore")
            bad = server["store"].parent / "not-audio.wav"
            bad.write_bytes(b"definitely not audio" * 50)
            page.locator('input[type="file"]').first.set_input_files(str(bad))
            expect(
                page.get_by_text("This clip (not-audio.wav) cannot be used", exact=False)
            ).to_be_visible(timeout=60_000)
            assert page.locator(EXCEPTION).count() == 0
            shot(page, "explore-error")
        except Exception:
            shot(page, "failure")  # what the page showed when the test failed
            raise
        finally:
            browser.close()


def test_shared_mode_in_a_browser(shared_server, app_store, tmp_path):
    """Shared mode in a real browser: the training controls are disabled, a corpus root outside
    the allow-list is refused, and the server (shipped config) listens on 127.0.0.1 only."""
    from tests.test_reliability_access import LOOPBACK, _listening_addresses

    url = shared_server["url"]
    addresses = _listening_addresses(shared_server["port"])
    assert addresses and addresses <= LOOPBACK, addresses
    outside = tmp_path / "outside"
    (outside / "angry").mkdir(parents=True)
    before = sorted(d.name for d in shared_server["store"].iterdir())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            open_page(page, url, "train", "Shared mode")
            expect(page.get_by_role("button", name="Start training")).to_be_disabled()
            open_page(page, url, "sensitivity", "Shared mode")
            page.get_by_text("Launch a grid", exact=True).click()  # the form is in a closed expander
            expect(page.get_by_role("button", name="Launch the grid")).to_be_disabled()
            open_page(page, url, "", "Corpus in use")
            expect(page.get_by_role("button", name="Quick start")).to_be_disabled()
            page.get_by_text("Use another corpus").click()
            page.get_by_label("root folder (or CSV file)", exact=True).fill(str(outside))
            page.get_by_role("button", name="Check and use this corpus").click()
            expect(page.get_by_text("not allowed in shared mode", exact=False)).to_be_visible(
                timeout=60_000
            )
            assert page.locator(EXCEPTION).count() == 0
            shot(page, "shared-mode")
        finally:
            browser.close()
    assert sorted(d.name for d in shared_server["store"].iterdir()) == before  # nothing launched
