"""Benchmark the app's pages: time to render each page, cold and with warm caches (AppTest).

    .venv/bin/python bench/app.py [--repeats 3]

Runs the app headless with streamlit.testing.v1.AppTest on a temporary run store holding copies
of the shipped demo runs (checkpoints/demo-*), so nothing is written into the repository. The
synthetic corpus of the demo runs is linked from the user's cache when it is there (generating
it is not what this measures) and generated otherwise, before any timing.

For each page: `cold_s` is the first run in this process (imports, model loading, maps,
cached computations), `warm_s` the median of the following runs (what a user sees when moving
between pages, or when a widget changes). Explore is timed with a clip uploaded (a corpus
utterance), Compare with an utterance selected. Target: warm_s < 2 s for every page.
Prints the results as JSON (the last stdout line) and writes bench/results/app.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 2.0
PAGES = {
    "home": None,
    "train": "app_pages/train.py",
    "compare": "app_pages/compare.py",
    "explore": "app_pages/explore.py",
    "sensitivity": "app_pages/sensitivity.py",
    "corpus": "app_pages/corpus.py",
    "learn": "app_pages/learn.py",
}


def prepare(tmp: Path) -> dict:
    """A run store with the demo runs and a cache that has their corpus."""
    store, cache = tmp / "runs", tmp / "cache"
    store.mkdir(parents=True)
    cache.mkdir(parents=True)
    demos = sorted((ROOT / "checkpoints").glob("demo-*"))
    if not demos:
        raise SystemExit("no demo runs in checkpoints/: build them with `make demo-checkpoints`")
    for d in demos:
        shutil.copytree(d, store / d.name, ignore=shutil.ignore_patterns("projections"))
    user_synth = (
        Path(os.environ.get("SER_LAB_CACHE") or Path.home() / ".cache" / "ser_lab") / "synthetic"
    )
    if user_synth.is_dir():
        (cache / "synthetic").symlink_to(user_synth, target_is_directory=True)
    os.environ["SER_LAB_CHECKPOINTS"] = str(store)
    os.environ["SER_LAB_CACHE"] = str(cache)
    from ser_lab.app_support import CorpusChoice, save_corpus_choice

    save_corpus_choice(CorpusChoice())  # the built-in corpus at the demo runs' size
    manifest = CorpusChoice().load()  # generated here (untimed) if it was not in the cache
    return {
        "store": store,
        "cache": cache,
        "clip": manifest.utterances[0].path,
        "demos": [d.name for d in demos],
    }


def page_test(page: str, setup: dict):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    if PAGES[page]:  # switching needs one run of the app first; home's first run is timed
        at.run()
        at.switch_page(PAGES[page])
    return at


def timed_run(at) -> float:
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"the page raised: {at.exception[0].value}")
    return elapsed


def bench_page(page: str, setup: dict, repeats: int) -> dict:
    at = page_test(page, setup)
    cold = timed_run(at)
    if page == "explore":
        at.file_uploader[0].set_value(("clip.wav", Path(setup["clip"]).read_bytes(), "audio/wav"))
        cold = timed_run(at)  # first prediction: model, maps and neighbour index are loaded
        if at.error:
            raise RuntimeError(f"explore: {at.error[0].value}")
    if page == "compare":
        emb = np.load(setup["store"] / "demo-baseline/fold_0/embeddings.npz")
        at.session_state["compare_utt"] = str(emb["utt_ids"][0])
        cold += timed_run(at)
    warm = [timed_run(at) for _ in range(repeats)]
    return {
        "cold_s": round(cold, 3),
        "warm_s": round(statistics.median(warm), 3),
        "warm_runs_s": [round(w, 3) for w in warm],
        "n_charts": len(at.get("plotly_chart")),
        "ok": statistics.median(warm) < TARGET_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="warm runs per page (median reported)"
    )
    args = parser.parse_args()
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="ser-lab-bench-app-") as tmp:
        setup = prepare(Path(tmp))
        load_before = os.getloadavg()
        pages = {page: bench_page(page, setup, args.repeats) for page in PAGES}
        load_after = os.getloadavg()
    import streamlit
    import torch

    result = {
        "benchmark": "app pages (AppTest, demo runs)",
        "target_warm_s": TARGET_S,
        "all_ok": all(p["ok"] for p in pages.values()),
        "pages": pages,
        "runs": setup["demos"],
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "streamlit": streamlit.__version__,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = ROOT / "bench" / "results" / "app.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from ser_lab.fileio import atomic_write_json

    atomic_write_json(out, result)
    print(json.dumps(result))
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
