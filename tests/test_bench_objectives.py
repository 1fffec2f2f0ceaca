"""bench/objectives.py on the tiny synthetic corpus (1 epoch): it runs, pairs each arm with the
baseline over the same (seed, fold) units, measures the feature space, and resumes (a second
launch trains nothing and gives the same summary)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

from ser_lab.runs import RunStore

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_objectives_bench_smoke_pairs_arms_with_the_baseline_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("objectives")
    finally:
        sys.path.remove(str(BENCH))
    argv = ["--smoke", "--arms", "baseline", "amsoftmax", "--store", str(tmp_path / "runs"),
            "--out", str(tmp_path / "objectives.json")]
    summary = bench.main(argv)
    assert json.loads((tmp_path / "objectives.json").read_text()) == json.loads(json.dumps(summary))
    assert set(summary["arms"]) == {"baseline", "amsoftmax"}
    am = summary["arms"]["amsoftmax"]
    paired = am["UA_paired_vs_baseline"]
    assert paired["n"] == 2 and paired["units"] == [[0, 0], [0, 1]]  # (seed, fold)
    assert paired["t_low"] <= paired["mean"] <= paired["t_high"]
    base_ua = [f for r in summary["arms"]["baseline"]["per_seed"] for f in r["fold_UA"]]
    am_ua = [f for r in am["per_seed"] for f in r["fold_UA"]]
    assert np.isclose(paired["mean"], np.mean(np.array(am_ua) - np.array(base_ua)))
    assert "UA_paired_vs_baseline" not in summary["arms"]["baseline"]
    for arm in summary["arms"].values():
        assert 0 <= arm["feature_space"]["knn_UA"] <= 100
        assert arm["feature_space"]["intra_inter_ratio"] > 0
    table = capsys.readouterr().out.strip().splitlines()[-4:]
    assert table[0].startswith("| arm | UA % |") and len(table) == 4
    assert table[2].startswith("| baseline:") and "(reference)" in table[2]
    assert table[3].startswith("| amsoftmax:") and "(n = 2)" in table[3]

    runs_before = [s.run_id for s in RunStore(tmp_path / "runs").list()]
    assert len(runs_before) == 2
    again = bench.main(argv)  # every run is done: reused, nothing trained
    assert [s.run_id for s in RunStore(tmp_path / "runs").list()] == runs_before
    assert again["arms"] == summary["arms"]
