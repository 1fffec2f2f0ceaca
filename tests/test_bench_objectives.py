"""bench/objectives.py on the tiny synthetic corpus (1 epoch): it runs, pairs each arm with the
baseline over the same (seed, fold) units, measures the feature space, and resumes (a second
launch trains nothing and gives the same summary)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from ser_lab.runs import RunStore
from tests.conftest import import_bench


@pytest.fixture
def bench_common():
    return import_bench("common")


def test_objectives_bench_smoke_pairs_arms_with_the_baseline_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    bench = import_bench("objectives")
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

    # each finished run left a card beside the store: with the store gone (a new machine),
    # the same command trains nothing and gives the same summary
    cards = sorted((tmp_path / "runs-cards").iterdir())
    assert [p.name for p in cards] == [f"bench-synthetic-tiny-{arm}-mel-e1p0-speaker-s0.json"
                                       for arm in ("amsoftmax", "baseline")]
    card = json.loads(cards[0].read_text())
    assert set(card["feature_space_folds"]) == {"0", "1"} and card["trained_by_this_code"] is True
    assert card["results"] == RunStore(tmp_path / "runs").get(card["run_id"]).read_results()
    assert not [p for p in (tmp_path / "runs-cards").iterdir() if p.is_dir()]  # fold cards folded in
    shutil.rmtree(tmp_path / "runs")
    assert bench.main(argv)["arms"] == summary["arms"]
    assert not RunStore(tmp_path / "runs").list()


def test_a_run_cut_off_between_folds_resumes_from_its_fold_cards(bench_common, tmp_path, monkeypatch):
    """A sitting that ends after fold 0 leaves fold 0's card; on a machine without the run, only
    fold 1 is trained, and the run card has the scores the whole run has."""
    from ser_lab.config import TrainConfig

    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=1, patience=0,
                      n_folds=2, workers=1, parallel_folds=None)
    whole = bench_common.ensure_card(RunStore(tmp_path / "a"), "r", cfg, tmp_path / "cards-a")
    assert sorted(p.name for p in (tmp_path / "cards-a").iterdir()) == ["r.json"]
    assert whole["results"] == RunStore(tmp_path / "a").get(whole["run_id"]).read_results()

    cut = bench_common.ensure_run(RunStore(tmp_path / "b"), "r", dataclasses.replace(cfg, folds=[0]))
    fold0 = bench_common.make_fold_card(cut, 0, trained_now=True)
    (tmp_path / "cards-b" / "r").mkdir(parents=True)
    (tmp_path / "cards-b" / "r" / "fold_0.json").write_text(json.dumps(fold0))
    store = RunStore(tmp_path / "c")
    resumed = bench_common.ensure_card(store, "r", cfg, tmp_path / "cards-b")
    assert [s.name for s in store.list()] == ["r-folds-1"]  # fold 0 was not trained again
    assert resumed["results"] == whole["results"]
    assert resumed["feature_space_folds"] == whole["feature_space_folds"]
    assert resumed["config"]["folds"] is None and " + " in resumed["run_id"]
    assert sorted(p.name for p in (tmp_path / "cards-b").iterdir()) == ["r.json"]


def _card(seed: int, fold_ua: list[float], recall: dict, space: list[dict]) -> dict:
    """A run card as bench/common.make_card writes it, with made-up scores."""
    folds = [{"UA": ua, "WA": ua - 0.01, "best_epoch": 3, "epochs_trained": 5, "stop_reason": "x",
              "confusion": [[1, 0], [0, 1]]} for ua in fold_ua]
    return {"run_id": f"r{seed}", "config": {"seed": seed, "channels_last": True},
            "results": {"labels": list(recall), "folds": folds,
                        "mean": {"UA": float(np.mean(fold_ua)), "WA": float(np.mean(fold_ua)) - 0.01},
                        "pooled": {"UA": 0.5, "WA": 0.5, "recall": recall}},
            "feature_space_folds": {str(k): f for k, f in enumerate(space)}}


def _space(x: float) -> dict:
    return {"intra_inter_ratio": x, "fisher": 10 * x, "silhouette": x / 2, "knn_UA": 100 * x}


def test_joining_the_summaries_of_seeds_equals_summarising_them_together(bench_common):
    cards = [_card(0, [0.6, 0.8], {"a": 0.5, "b": 0.7}, [_space(0.2), _space(0.4)]),
             _card(1, [0.7, 0.9], {"a": 0.9, "b": 0.6}, [_space(0.3), _space(0.1)]),
             _card(2, [0.5, 0.5], {"a": 0.4, "b": 0.8}, [_space(0.5), _space(0.6)])]
    together = bench_common.summarise(cards)
    assert together["UA_mean"] == pytest.approx(100 * np.mean([0.7, 0.8, 0.5]))
    assert together["per_class_recall"]["a"] == pytest.approx(100 * np.mean([0.5, 0.9, 0.4]))
    assert together["feature_space"]["fisher"] == pytest.approx(10 * np.mean([0.2, 0.4, 0.3, 0.1, 0.5, 0.6]))
    parts = [bench_common.summarise(cards[:2]), bench_common.summarise(cards[2:])]
    joined = bench_common.join_seeds(parts)
    assert json.dumps(joined, sort_keys=True) == json.dumps(together, sort_keys=True)
    # a part whose seeds are all in already (the same runs in two benches) adds nothing
    again = bench_common.join_seeds([together, bench_common.summarise(cards[:1])])
    assert json.dumps(again, sort_keys=True) == json.dumps(together, sort_keys=True)
    # an older summary, without per-seed recall and feature space, joins through its aggregates
    old = json.loads(json.dumps(parts[0]))
    for row in old["per_seed"]:
        del row["recall"], row["feature_space"]
    from_old = bench_common.join_seeds([old, parts[1]])
    assert from_old["per_class_recall"] == pytest.approx(together["per_class_recall"])
    assert from_old["feature_space"] == pytest.approx(together["feature_space"])
    # the same seed with other scores, or a seed in two parts beside others, is refused
    other = bench_common.summarise([_card(0, [0.1, 0.2], {"a": 0.5, "b": 0.5}, [_space(1), _space(1)])])
    with pytest.raises(ValueError, match="other scores"):
        bench_common.join_seeds([parts[0], other])
    with pytest.raises(ValueError, match="two of the summaries"):
        bench_common.join_seeds([parts[1], bench_common.summarise(cards[1:])])
    with pytest.raises(ValueError, match="different fold counts"):
        bench_common.join_seeds([parts[0], bench_common.summarise(
            [_card(5, [0.5], {"a": 0.5, "b": 0.5}, [_space(1)])])])


def test_an_earlier_summary_of_another_recipe_is_not_joined(bench_common):
    bench = import_bench("objectives")
    mine = {"corpus": "emodb", "corpus_options": {}, "protocol": "speaker", "n_folds": 5, "features": "mel",
            "epochs": 100, "patience": 20, "augment": True, "refit": False, "normalise": "speaker"}
    reproduction = {**mine, "baseline": {"per_seed": []}, "center_loss": {"per_seed": []}}
    del reproduction["refit"]  # older summaries did not record it: they did not refit
    assert set(bench.read_earlier(reproduction, "r.json", mine)) == {"baseline", "center"}
    with pytest.raises(SystemExit, match=r"another recipe \(patience, normalise\)"):
        bench.read_earlier({**reproduction, "patience": 0, "normalise": "corpus"}, "r.json", mine)


def test_a_card_of_the_same_name_with_another_recipe_is_refused(bench_common, tmp_path):
    from ser_lab.config import TrainConfig

    common = bench_common
    cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=1, n_folds=2)
    (tmp_path / "x.json").write_text(json.dumps({"config": {**dataclasses.asdict(cfg), "lam": 0.3}}))
    assert common.recipe_differences({**dataclasses.asdict(cfg), "workers": 7, "root": "/elsewhere"}, cfg) == []
    with pytest.raises(SystemExit, match=r"another recipe \(lam\)"):
        common.ensure_card(RunStore(tmp_path / "runs"), "x", cfg, tmp_path)
