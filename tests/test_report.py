"""The sweep report on a sweep of run folders with known scores (no training needed)."""

import json
import math
import re

import numpy as np
import pytest
import torch

from ser_lab.config import TrainConfig
from ser_lab.errors import RunError
from ser_lab.experiments.report import build_report, format_table
from ser_lab.experiments.sweep import sweeps_dir
from ser_lab.learn.trainer import new_run
from ser_lab.runs import RunStore

LABELS = ["neutral", "angry", "happy", "sad"]
SWEEP = "fab"
# baseline UA per (seed, fold); WA is UA + 0.02; each setting adds its own offset
BASE_UA = {(0, 0): 0.50, (0, 1): 0.60, (1, 0): 0.55, (1, 1): 0.65}
SETTINGS = {(0.0, 0.5): 0.0, (0.3, 0.5): 0.04, (0.3, 0.3): 0.02}


def fold_confusion(seed: int, fold: int) -> list[list[int]]:
    cm = np.full((4, 4), 1, dtype=int)
    np.fill_diagonal(cm, 5 + seed + fold)
    return cm.tolist()


def fake_run(store, lam, alpha, seed, offset):
    cfg = TrainConfig(
        corpus="synthetic", lam=lam, alpha=alpha, seed=seed, epochs=1, n_folds=2, sweep_id=SWEEP
    )
    run = new_run(cfg, store, name=f"{SWEEP}-lam{lam}-alpha{alpha}-mel-s{seed}")
    rng = np.random.default_rng(seed)
    folds = []
    for fold in (0, 1):
        ua = BASE_UA[(seed, fold)] + offset
        folds.append(
            {
                "fold": fold,
                "UA": ua,
                "WA": ua + 0.02,
                "confusion": fold_confusion(seed, fold),
                "recall": {},
                "best_epoch": 1,
                "n_test": 32,
            }
        )
        labels = np.repeat(np.arange(4), 6)
        z = rng.normal(size=(24, 8)).astype(np.float32) + 3 * np.eye(4, 8)[labels]
        # a done run has a model per fold (with the keys every model.pt has: runs.MODEL_KEYS)
        run.save_model(fold, {"label_names": LABELS, "state_dict": {}, "centers": torch.zeros(4, 8),
                              "norm": {}, "feature_config": {}, "model_config": {}})
        run.save_embeddings(
            fold,
            z=z,
            labels=labels,
            preds=labels,
            probs=np.full((24, 4), 0.25),
            utt_ids=np.array([f"u{i}" for i in range(24)]),
            split=np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 8),
            centers=np.eye(4, 8) * 3,
            label_names=np.array(LABELS),
        )
    ua = np.array([f["UA"] for f in folds])
    run.write_results(
        {
            "labels": LABELS,
            "folds": folds,
            "pooled": {"UA": float(ua.mean()), "WA": float(ua.mean())},
            "mean": {"UA": float(ua.mean()), "WA": float(ua.mean()) + 0.02},
        }
    )
    run.update_status(state="done", progress=1.0)
    return run


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fab")
    store = RunStore(tmp_path / "runs")
    for (lam, alpha), offset in SETTINGS.items():
        for seed in (0, 1):
            fake_run(store, lam, alpha, seed, offset)
    # a run of the sweep that never finished, and a run of another sweep
    new_run(TrainConfig(corpus="synthetic", lam=1.0, sweep_id=SWEEP), store, name="unfinished")
    other = TrainConfig(corpus="synthetic", lam=0.3, sweep_id="other")
    new_run(other, store, name="other")
    return store


@pytest.fixture(scope="module")
def built(sweep_store):
    """The report, written once to its default folder (<store>/sweeps/<id>-report)."""
    report = build_report(sweep_store, SWEEP)
    return report, sweeps_dir(sweep_store) / f"{SWEEP}-report"


def row_for(report, lam, alpha):
    rows = [r for r in report["table"] if r["lam"] == lam and r["alpha"] == alpha]
    assert len(rows) == 1
    return rows[0]


def test_report_folder_has_every_file_and_the_right_numbers(built):
    report, out = built
    assert report["out_dir"] == str(out)

    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "report.json"} <= names
    assert "sensitivity_lambda_mel_alpha0.5.png" in names  # lambda 0 and 0.3 at alpha 0.5
    assert "sensitivity_alpha_mel_lam0.3.png" in names  # alpha 0.3 and 0.5 at lambda 0.3
    assert len([n for n in names if n.startswith("confusion_")]) == 3
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the table: mean +- sample std over the 4 (seed, fold) units, in percent
    base = row_for(report, 0.0, 0.5)
    assert base["UA_mean"] == pytest.approx(57.5)
    assert base["UA_std"] == pytest.approx(math.sqrt(125 / 3))
    assert base["WA_mean"] == pytest.approx(59.5)
    assert base["n_units"] == 4 and base["n_seeds"] == 2
    center = row_for(report, 0.3, 0.5)
    assert center["UA_mean"] == pytest.approx(61.5) and center["UA_std"] == pytest.approx(
        math.sqrt(125 / 3)
    )
    md = (out / "report.md").read_text()
    assert "| Mel spectrogram | 0 | 0.5 | 57.50 ± 6.45 | 59.50 ± 6.45 | 4 | 2 |" in md
    assert "| Mel spectrogram | 0.3 | 0.5 | 61.50 ± 6.45 | 63.50 ± 6.45 | 4 | 2 |" in md
    assert "57.50 ± 6.45" in format_table(report["table"])

    # center loss helps by exactly +4 points on every unit: a zero-width interval
    comp = [c for c in report["comparisons"] if c["setting"]["alpha"] == 0.5][0]
    assert comp["baseline"]["lam"] == 0.0
    assert comp["UA"]["mean"] == pytest.approx(4.0) and comp["UA"]["n"] == 4
    assert comp["UA"]["t_low"] == pytest.approx(4.0) and comp["UA"]["boot_high"] == pytest.approx(
        4.0
    )
    assert "[+4.00, +4.00] / [+4.00, +4.00]" in md
    # alpha 0.3 has no lambda = 0 run of its own: compared with the alpha 0.5 baseline
    comp3 = [c for c in report["comparisons"] if c["setting"]["alpha"] == 0.3][0]
    assert comp3["baseline"]["alpha"] == 0.5 and comp3["UA"]["mean"] == pytest.approx(2.0)

    # pooled confusion = sum of the folds' confusions over both seeds
    pooled = [c for c in report["confusion"] if c["lam"] == 0.0][0]
    expected = sum(np.array(fold_confusion(s, f)) for s in (0, 1) for f in (0, 1))
    assert np.array_equal(np.array(pooled["counts"]), expected)

    lam_curves = {c["fixed"]["alpha"]: c for c in report["curves"] if c["vary"] == "lam"}
    assert sorted(lam_curves) == [0.3, 0.5]  # the baseline joins the λ curve at every α
    curve = lam_curves[0.5]
    assert [p["value"] for p in curve["points"]] == [0.0, 0.3]
    assert curve["points"][1]["UA"]["mean"] == pytest.approx(61.5)
    other = lam_curves[0.3]  # no baseline trained at α = 0.3: the one at α = 0.5
    assert other["points"][0] == curve["points"][0]

    assert len(report["discriminability"]) == 3
    for d in report["discriminability"]:
        assert d["intra"]["n"] == 4 and np.isfinite(d["intra"]["mean"]) and d["inter"]["mean"] > 0
    assert [u["name"] for u in report["unfinished"]] == ["unfinished"]
    assert "unfinished" in md

    saved = json.loads((out / "report.json").read_text())
    assert saved["table"][0]["UA_mean"] == pytest.approx(report["table"][0]["UA_mean"])


def test_html_is_self_contained(built):
    _, out = built
    page = (out / "report.html").read_text()
    assert "<style>" in page and "http" not in page
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 6  # 3 sensitivity plots (λ at α 0.3 and 0.5, α at λ 0.3), 3 confusions
    for name in images:
        assert "/" not in name and (out / name).is_file()
    assert "57.50 ± 6.45" in page


def test_out_folder_can_be_chosen(sweep_store, tmp_path):
    report = build_report(sweep_store, SWEEP, tmp_path / "elsewhere")
    assert report["out_dir"] == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "report.html").is_file()


def test_unknown_sweep_is_a_clear_error(sweep_store):
    with pytest.raises(RunError, match="no runs of sweep 'nope'"):
        build_report(sweep_store, "nope")
