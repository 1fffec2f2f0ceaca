"""The classical reference row: openSMILE eGeMAPS functionals + a linear SVM, on the lab's folds.

Default: EmoDB (../shared/datasets/emodb), 4 classes, speaker-independent 5-fold, split seeds
0, 1, 2 (the folds of bench/reproduce.py's runs with the same seeds). Each seed is a normal run
folder (`python -m ser_lab train --model egemaps-svm`), so `python -m ser_lab compare` can put it
next to a CNN run; finished runs are reused on a re-launch.

    python bench/classical.py                                  # -> bench/results/emodb_egemaps_svm.json
    python bench/classical.py --corpus synthetic --out bench/results/synthetic_egemaps_svm.json

The JSON: per seed and per fold UA / WA (percent) and the chosen C; over the (seed, fold) test
folds the mean, the sample std and a 95 % t-interval of the mean (and a bootstrap one); per seed
the fold mean, and their mean ± std (the way bench/reproduce.py reports the CNN); per-class
recall; machine, load and the git commit the code was at. Prints the JSON as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import add_corpus_args, classical_run_name, code_state, ensure_classical_run, machine  # noqa: E402

from ser_lab.analysis.stats import bootstrap_interval, mean_std, t_interval  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn import classical  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402


def fold_test_ids(run) -> list[list[str]]:
    """The test utterances of each fold (sorted ids), to tell whether two seeds split alike."""
    out = []
    for k in run.folds_done():
        emb = run.load_embeddings(k)
        out.append(sorted(emb["utt_ids"][emb["split"] == "test"].tolist()))
    return out


def interval(values: list[float]) -> dict:
    ms = mean_std(values)
    lo, hi = t_interval(values)
    blo, bhi = bootstrap_interval(values)
    return {"mean": ms.mean, "std": ms.std, "n": ms.n, "t95": [lo, hi], "bootstrap95": [blo, bhi]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_args(p)
    p.add_argument("--workers", type=int, default=1, help="spectrogram processes (to find usable files)")
    args = p.parse_args()

    root = None if args.corpus == "synthetic" else str(Path(args.root).resolve())
    options = {"size": args.size} if args.size else {}
    out = Path(args.out or ROOT / "bench" / "results" / f"{args.corpus}_egemaps_svm.json")
    store = RunStore(Path(args.store) if args.store else None)
    summary: dict = {
        "benchmark": "classical",
        "model": classical.MODEL,
        "corpus": args.corpus,
        "corpus_options": options,
        "protocol": args.protocol,
        "n_folds": args.folds,
        "seeds": args.seeds,
        "features": f"openSMILE {classical.FEATURE_SET} {classical.FEATURE_LEVEL} (88)",
        "classifier": "LinearSVC, class_weight='balanced', C from "
                      f"{list(classical.C_GRID)} by validation UA (the fold's validation part)",
        "probabilities": classical.PROBABILITIES,
        "machine": machine(opensmile=classical.opensmile_version()),
        "code": code_state(),
    }
    started = time.time()
    per_seed, units_ua, units_wa, recalls = [], [], [], []
    for seed in args.seeds:
        name = classical_run_name(args.corpus, options, args.protocol, args.folds, seed)
        t0 = time.time()
        run_id = ensure_classical_run(store, classical.ClassicalConfig(
            corpus=args.corpus, root=root, corpus_options=options, n_folds=args.folds,
            protocol=args.protocol, seed=seed, workers=args.workers,
        ))
        results = store.get(run_id).read_results()
        print(f"{name}: {time.time() - t0:.1f} s, UA {100 * results['mean']['UA']:.2f} %",
              file=sys.stderr, flush=True)
        folds = results["folds"]
        units_ua += [100 * f["UA"] for f in folds]
        units_wa += [100 * f["WA"] for f in folds]
        recalls.append(results["pooled"]["recall"])
        per_seed.append({
            "seed": seed,
            "run_id": run_id,
            "UA": 100 * results["mean"]["UA"],
            "WA": 100 * results["mean"]["WA"],
            "UA_pooled": 100 * results["pooled"]["UA"],
            "WA_pooled": 100 * results["pooled"]["WA"],
            "fold_UA": [100 * f["UA"] for f in folds],
            "fold_WA": [100 * f["WA"] for f in folds],
            "fold_C": [f.get("C") for f in folds],
        })
    seed_ua, seed_wa = [s["UA"] for s in per_seed], [s["WA"] for s in per_seed]
    # Whether the split seeds really gave different folds (on EmoDB's 10 speakers the
    # speaker-independent split is the same for every seed; the SVM itself is deterministic).
    splits = {json.dumps(fold_test_ids(store.get(s["run_id"]))) for s in per_seed}
    summary["distinct_splits"] = len(splits)
    labels = list(recalls[0])
    summary.update({
        "per_seed": per_seed,
        "UA_mean": float(np.mean(seed_ua)),
        "UA_std": mean_std(seed_ua).std if len(seed_ua) > 1 else 0.0,
        "WA_mean": float(np.mean(seed_wa)),
        "WA_std": mean_std(seed_wa).std if len(seed_wa) > 1 else 0.0,
        "units": {"what": "(seed, fold) test folds", "UA": interval(units_ua), "WA": interval(units_wa)},
        "per_class_recall": {n: float(np.mean([100 * r.get(n, np.nan) for r in recalls])) for n in labels},
        "wall_time_s": time.time() - started,
    })
    atomic_write_json(out, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
