"""Cross-corpus worked example: runs trained on one corpus, scored on another.

Default pairs (cheap enough for a 2-core laptop):
  - the eGeMAPS + SVM run on EmoDB (speaker-independent 5-fold, split seed 0) -> the synthetic corpus
  - the eGeMAPS + SVM run on the synthetic corpus (default size, same protocol) -> EmoDB
  - the shipped demo pair (CNN, synthetic `medium`, one fold; baseline and center loss) -> EmoDB
The SVM runs are the ones bench/classical.py makes (same names: reused when present, trained
otherwise); the demo runs are copied from checkpoints/ into the store as cross-demo-*, so the
shipped folders are not written to. Add CNN runs of your own with `--pair RUN CORPUS [ROOT]`.

    python bench/cross_corpus.py                      # -> bench/results/cross_corpus.json
    python bench/cross_corpus.py --pair RUN_ID synthetic --pair RUN_ID2 emodb ../shared/datasets/emodb

Per pair: the run's own test-fold UA / WA (results.json), and on the other corpus the mean ± std
over the run's fold models (each scores every usable utterance), pooled recall, utterances and
speakers (`ser_lab.learn.crosscorpus.cross_evaluate`). Prints the JSON as its last line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import EMODB_ROOT, code_state, ensure_classical_run, machine  # noqa: E402

from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn import classical  # noqa: E402
from ser_lab.learn.crosscorpus import cross_evaluate  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

EMODB = str(EMODB_ROOT.resolve())


def svm_run(store: RunStore, corpus: str, root: str | None, seed: int = 0) -> str:
    """The bench/classical.py run of this corpus and split seed (trained when missing)."""
    return ensure_classical_run(store, classical.ClassicalConfig(
        corpus=corpus, root=root, n_folds=5, protocol="speaker", seed=seed, workers=1))


def demo_run(store: RunStore, name: str) -> str:
    """A copy of checkpoints/<name> in the store, as cross-<name> (cross results are written
    beside a run; the shipped folder itself is never written to, even when the store is
    checkpoints/)."""
    copy = f"cross-{name}"
    target = Path(store.root) / copy
    if not target.exists():
        shutil.copytree(ROOT / "checkpoints" / name, target, ignore=shutil.ignore_patterns("projections", "cross"))
    return copy


def summarise(store: RunStore, run_id: str, corpus: str, root: str | None) -> dict:
    run = store.get(run_id)
    own = run.read_results()
    t0 = time.time()
    cross = cross_evaluate(run, corpus, root, device="cpu", workers=1)
    train = run.config.get("train") or {}
    return {
        "run_id": run_id,
        "model": run.config.get("model", "cnn-bigru"),
        "lam": train.get("lam"),
        "trained_on": {"corpus": train.get("corpus"), "options": train.get("corpus_options"),
                       "folds": [f["fold"] for f in own["folds"]]},
        "own_test_UA": 100 * own["mean"]["UA"],
        "own_test_WA": 100 * own["mean"]["WA"],
        "scored_on": corpus,
        "n_utterances": cross["n_utterances"],
        "n_speakers": cross["n_speakers"],
        "cross_UA": 100 * cross["mean"]["UA"],
        "cross_UA_std_over_fold_models": 100 * cross["mean"]["UA_std"],
        "cross_WA": 100 * cross["mean"]["WA"],
        "cross_recall_pooled": {k: 100 * v for k, v in cross["pooled"]["recall"].items()},
        "cross_fold_UA": [100 * f["UA"] for f in cross["folds"]],
        "result_file": str(Path(cross["path"]).relative_to(Path(store.root))),
        "seconds": time.time() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=None, help="run store (default: checkpoints/)")
    p.add_argument("--pair", nargs="+", action="append", default=[], metavar="RUN CORPUS [ROOT]",
                   help="also score run RUN on CORPUS (folder ROOT)")
    p.add_argument("--no-defaults", action="store_true", help="only the --pair runs")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "cross_corpus.json"))
    args = p.parse_args()
    store = RunStore(Path(args.store) if args.store else None)
    pairs = []
    if not args.no_defaults:
        pairs += [
            (svm_run(store, "emodb", EMODB), "synthetic", None),
            (svm_run(store, "synthetic", None), "emodb", EMODB),
            (demo_run(store, "demo-baseline"), "emodb", EMODB),
            (demo_run(store, "demo-center-loss"), "emodb", EMODB),
        ]
    for pair in args.pair:
        if len(pair) not in (2, 3):
            p.error("--pair takes RUN CORPUS [ROOT]")
        pairs.append((pair[0], pair[1], pair[2] if len(pair) == 3 else None))
    summary = {
        "benchmark": "cross_corpus",
        "how": "each fold model of a run scores every usable utterance of the other corpus with the "
               "run's own normalisation; cross_UA = mean over the run's fold models",
        "machine": machine(opensmile=classical.opensmile_version()),
        "code": code_state(),
        "pairs": [],
    }
    for run_id, corpus, root in pairs:
        row = summarise(store, run_id, corpus, root)
        print(f"{run_id} -> {corpus}: own {row['own_test_UA']:.1f} % UA, cross {row['cross_UA']:.1f} % UA "
              f"({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
        summary["pairs"].append(row)
    atomic_write_json(args.out, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
