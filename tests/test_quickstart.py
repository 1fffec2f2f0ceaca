"""The quick start: the same pair from the Home button, `python -m ser_lab quickstart` and the bench."""

import json

import pytest

from ser_lab import cli
from ser_lab.experiments import launcher
from ser_lab.experiments.quickstart import format_pair, run_quick_start
from ser_lab.runs import RunStore

TINY = dict(launcher.QUICK_START, corpus_options={"size": "tiny"}, epochs=1, n_folds=2,
            snapshot_every=0)


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(launcher, "QUICK_START", TINY)
    return RunStore(tmp_path / "runs")


def test_the_pair_differs_only_in_lambda(tiny_preset):
    summary = run_quick_start(tiny_preset, seed=4)
    base = tiny_preset.get(summary["baseline"]["run"]).config["train"]
    center = tiny_preset.get(summary["center_loss"]["run"]).config["train"]
    diff = {k for k in base if base[k] != center[k]}
    assert diff <= {"lam", "alpha"} and base["lam"] == 0 and center["lam"] == launcher.QUICK_START_LAMBDA
    assert base["seed"] == center["seed"] == 4 and summary["seed"] == 4
    for arm in ("baseline", "center_loss"):
        entry = summary[arm]
        assert 0 <= entry["UA"] <= 1 and 0 <= entry["WA"] <= 1
        assert entry["test_intra_inter"] > 0 and entry["test_fisher"] > 0
    b, c = summary["baseline"], summary["center_loss"]
    assert summary["tighter"] == (c["test_intra_inter"] < b["test_intra_inter"])
    assert summary["more_separable"] == (c["test_fisher"] > b["test_fisher"])
    assert summary["baseline"]["run"] in format_pair(summary)


def test_quickstart_command_prints_one_json_object(tiny_preset, capsys):
    assert cli.main(["--store", str(tiny_preset.root), "quickstart", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for arm in ("baseline", "center_loss"):
        assert set(out[arm]) >= {"run", "UA", "WA", "test_intra_inter", "test_fisher"}
        assert tiny_preset.get(out[arm]["run"]).read_status()["state"] == "done"


def test_demo_typicality_reads_the_bench_for_the_current_preset(tmp_path):
    from ser_lab.experiments import demo

    preset = {**launcher.QUICK_START, "lam": launcher.QUICK_START_LAMBDA, "alpha": launcher.QUICK_START_ALPHA}

    def seed(s, b, c):
        return {"seed": s, "tighter": c < b, "more_separable": True,
                "baseline": {"test_intra_inter": b, "test_fisher": 2.0},
                "center_loss": {"test_intra_inter": c, "test_fisher": 3.0}}

    bench = tmp_path / "quick_start.json"
    bench.write_text(json.dumps({"preset": preset, "per_seed": [
        seed(0, 0.40, 0.30), seed(1, 0.40, 0.35), seed(2, 0.40, 0.45)]}))
    text = demo.typicality(1, bench)
    assert "seed 1" in text and "tighter and more separable in 2" in text and "ranks 2 of 3" in text
    assert demo.typicality(7, bench) is None  # not in the bench
    bench.write_text(json.dumps({"preset": {**preset, "epochs": 99}, "per_seed": []}))
    assert demo.typicality(1, bench) is None  # measured on another preset


def test_the_shipped_demo_pair_says_how_typical_it_is():
    from ser_lab.app import sweeps
    from ser_lab.experiments.demo import DEMO_IDS, DEMO_SEED
    from ser_lab.paths import PROJECT_ROOT

    store = RunStore(PROJECT_ROOT / "checkpoints")
    for run_id in DEMO_IDS:
        assert store.get(run_id).config["train"]["seed"] == DEMO_SEED
    notes = sweeps.demo_typicality(store, {"a": {"run_ids": [DEMO_IDS[0]]}, "b": {"run_ids": [DEMO_IDS[1]]}})
    assert len(notes) == 1 and f"seed {DEMO_SEED}" in notes[0] and "of 10" in notes[0]
