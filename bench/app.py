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

`large_run_compare_cold`: the first open of Compare on two 5,000-utterance runs (`--large N`;
written directly, no training), PCA and UMAP, each open in a fresh process, without and with
the maps the trainer now caches when a fold ends. Target: < 2 s with the cache.
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
    from ser_lab.app.corpus import CorpusChoice, save_corpus_choice

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


# ----------------------------------------------------------------------------- a large run

LARGE_N = 5000  # utterances of the large run whose cold Compare open is timed


def write_large_run(store_root: Path, name: str, n: int, seed: int) -> Path:
    """A finished one-fold run of `n` utterances written directly (no training): clustered
    64-d z around 4 class centers, a 70/15/15 train/val/test split, predictions from the
    nearest center, results.json from those predictions, and a model.pt with the keys every
    model.pt has but no weights (a done run needs one to be listed as finished; Compare does
    not load it)."""
    from ser_lab.learn.metrics import scores
    from ser_lab.learn.trainer import pool_results
    from ser_lab.runs import RunStore

    rng = np.random.default_rng(seed)
    labels_names = ["neutral", "angry", "happy", "sad"]
    centers = rng.normal(0, 3, size=(4, 64)).astype(np.float32)
    labels = rng.integers(0, 4, size=n)
    z = (centers[labels] + rng.normal(0, 2.5, size=(n, 64))).astype(np.float32)
    dist = ((z[:, None, :] - centers[None]) ** 2).sum(2)
    probs = np.exp(-(dist - dist.min(1, keepdims=True)) / 50)
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    preds = probs.argmax(1)
    split = np.array(["train"] * int(0.7 * n) + ["val"] * int(0.15 * n))
    split = np.concatenate([split, ["test"] * (n - len(split))])
    run = RunStore(store_root).create(
        {"train": {"corpus": "synthetic", "features": "mel", "lam": 0.3 if seed else 0.0,
                   "alpha": 0.5, "epochs": 1, "n_folds": 1, "protocol": "speaker", "seed": seed}},
        name=name,
    )
    import torch

    from ser_lab.runs import MODEL_KEYS

    run.save_model(0, {**{key: {} for key in MODEL_KEYS}, "label_names": labels_names,
                       "centers": torch.from_numpy(centers)})
    run.save_embeddings(
        0, z=z, labels=labels, preds=preds, probs=probs,
        utt_ids=np.array([f"utt{i:05d}" for i in range(n)]), split=split, centers=centers,
        label_names=np.array(labels_names),
    )
    test = split == "test"
    fold = {"fold": 0, **scores(labels[test], preds[test], tuple(labels_names)), "n_test": int(test.sum())}
    run.write_results(pool_results([fold], tuple(labels_names)))
    run.update_status(state="done", progress=1.0, finished=time.time())
    return run.dir


def compare_open_once(store: str, cache: str, a: str, b: str, method: str) -> float:
    """One cold open of Compare on runs a and b with `method`'s map (in a fresh process)."""
    os.environ["SER_LAB_CHECKPOINTS"], os.environ["SER_LAB_CACHE"] = store, cache
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    at.switch_page(PAGES["compare"])
    at.session_state["compare_a"], at.session_state["compare_b"] = a, b
    at.session_state["compare_map"] = method
    elapsed = timed_run(at)
    if at.error or len(at.get("plotly_chart")) < 2:
        raise RuntimeError(f"compare did not show both maps: {[e.value for e in at.error]}")
    return elapsed


def bench_large_compare(tmp: Path, n: int) -> dict:
    """Cold Compare opens of two `n`-utterance runs, each in a fresh process (imports, the
    page's caches and the maps all cold), with and without the maps precomputed as the
    trainer now does at the end of each fold (`ser_lab.analysis.maps.precompute_maps`)."""
    import subprocess

    from ser_lab.analysis.maps import precompute_maps

    out: dict = {"n_utterances": n}
    for cached in (False, True):
        store = tmp / f"large-{'cached' if cached else 'cold'}"
        dirs = [write_large_run(store, f"large {i}", n, seed=i) for i in (0, 1)]
        if cached:
            t0 = time.perf_counter()
            for d in dirs:
                precompute_maps(d, 0)
            out["precompute_s_two_runs"] = round(time.perf_counter() - t0, 2)
        for method in ("pca", "umap"):
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); from bench.app import compare_open_once; "
                "print(compare_open_once(*sys.argv[2:]))"
            )
            load = os.getloadavg()
            done = subprocess.run(
                [sys.executable, "-c", code, str(ROOT), str(store), str(tmp / "cache"),
                 dirs[0].name, dirs[1].name, method],
                capture_output=True, text=True, cwd=ROOT,
            )
            if done.returncode != 0:
                raise RuntimeError(f"compare open failed: {done.stderr[-2000:]}")
            key = f"{method}_{'cached' if cached else 'no_cache'}"
            out[key] = {"cold_open_s": round(float(done.stdout.strip().splitlines()[-1]), 3),
                        "load_average_before": [round(x, 2) for x in load]}
    out["ok"] = all(out[f"{m}_cached"]["cold_open_s"] < TARGET_S for m in ("pca", "umap"))
    return out


def commit_of_this_code() -> dict:
    """bench/common.py's code_state, imported only here: common imports the trainer (torch),
    and the cold Compare opens import this module in a fresh process, which must stay cold."""
    sys.path.insert(0, str(ROOT / "bench"))
    from common import code_state

    return code_state()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="warm runs per page (median reported)"
    )
    parser.add_argument("--large", type=int, default=LARGE_N,
                        help="utterances of the large run of the cold Compare open (0: skip it)")
    parser.add_argument("--large-only", action="store_true", help="only the large-run Compare open")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "app.json"))
    args = parser.parse_args()
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="ser-lab-bench-app-") as tmp:
        setup = prepare(Path(tmp))
        load_before = os.getloadavg()
        pages = {} if args.large_only else {page: bench_page(page, setup, args.repeats) for page in PAGES}
        load_after = os.getloadavg()
        large = bench_large_compare(Path(tmp), args.large) if args.large > 0 else None
    import streamlit
    import torch

    result = {
        "benchmark": "app pages (AppTest, demo runs)",
        "target_warm_s": TARGET_S,
        "all_ok": all(p["ok"] for p in pages.values()) and (large is None or large["ok"]),
        "pages": pages,
        "large_run_compare_cold": large,
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
        "code": commit_of_this_code(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ser_lab.fileio import atomic_write_json

    atomic_write_json(out, result)
    print(json.dumps(result))
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
