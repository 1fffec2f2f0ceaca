"""The sweep report's classical reference: an eGeMAPS + SVM run on the sweep's folds becomes a
row of its own with paired differences; runs on other folds or seeds are left out."""

import numpy as np
import pytest

from ser_lab.experiments.report import build_report
from ser_lab.learn import classical
from ser_lab.runs import RunStore
from tests.test_report import BASE_UA, LABELS, SETTINGS, SWEEP, fake_run, fold_confusion

SVM_OFFSET = -0.05  # the SVM's UA per unit, relative to the sweep's baseline


def fake_svm_run(store, seed, n_folds=2, corpus="synthetic"):
    cfg = classical.ClassicalConfig(corpus=corpus, n_folds=n_folds, seed=seed)
    run = store.create({"model": classical.MODEL, "train": cfg.to_dict(), "features": "egemaps"}, name=f"svm-s{seed}")
    rng = np.random.default_rng(10 + seed)
    folds = []
    for fold in range(n_folds):
        ua = BASE_UA.get((seed, fold), 0.5) + SVM_OFFSET
        folds.append({"fold": fold, "UA": ua, "WA": ua + 0.01, "confusion": fold_confusion(seed, fold),
                      "recall": {}, "n_test": 8, "C": 0.1})
        labels = np.repeat(np.arange(4), 6)
        dummy = classical.SvmFold(np.zeros(88), np.ones(88), np.zeros((4, 88)), np.zeros(4), 0.1, [])
        classical.save_svm(run, fold, dummy, LABELS)
        run.save_embeddings(
            fold, z=rng.normal(size=(24, 88)) + 2 * np.eye(4, 88)[labels], labels=labels, preds=labels,
            probs=np.full((24, 4), 0.25), utt_ids=np.array([f"u{i}" for i in range(24)]),
            split=np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 8),
            centers=2 * np.eye(4, 88), label_names=np.array(LABELS),
        )
    ua = float(np.mean([f["UA"] for f in folds]))
    run.write_results({"labels": LABELS, "folds": folds, "pooled": {"UA": ua, "WA": ua}, "mean": {"UA": ua, "WA": ua}})
    run.update_status(state="done", progress=1.0)
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("ref") / "runs")
    for (lam, alpha), offset in SETTINGS.items():
        for seed in (0, 1):
            fake_run(store, lam, alpha, seed, offset)
    used = [fake_svm_run(store, 0).run_id, fake_svm_run(store, 1).run_id]
    fake_svm_run(store, 0)  # a second run for seed 0: the earliest is used
    fake_svm_run(store, 2)  # a seed the sweep does not have
    fake_svm_run(store, 1, n_folds=3)  # other folds
    fake_svm_run(store, 1, corpus="emodb")  # another corpus
    out = tmp_path_factory.mktemp("out")
    return build_report(store, SWEEP, out), used, out


def test_reference_row_uses_only_runs_on_the_sweeps_folds(report):
    rep, used, _ = report
    ref = rep["reference"]
    assert ref["run_ids"] == used and ref["seeds"] == [0, 1]
    expected = [100 * (ua + SVM_OFFSET) for ua in BASE_UA.values()]
    assert ref["table"]["UA_mean"] == pytest.approx(np.mean(expected))
    assert ref["table"]["n_units"] == 4 and ref["table"]["input"] == "eGeMAPS functionals (88)"
    assert np.isfinite(ref["discriminability"]["fisher"]["mean"])


def test_every_setting_is_paired_with_the_reference(report):
    rep, _, out = report
    comparisons = rep["reference"]["comparisons"]
    assert len(comparisons) == len(SETTINGS)
    for c in comparisons:
        offset = SETTINGS[(c["setting"]["lam"], c["setting"]["alpha"])]
        assert c["UA"]["mean"] == pytest.approx(100 * (offset - SVM_OFFSET)) and c["UA"]["n"] == 4
    md = (out / "report.md").read_text()
    assert "eGeMAPS + linear SVM on the same test folds" in md and "vs eGeMAPS + SVM" in md
    assert "eGeMAPS + linear SVM" in (out / "report.html").read_text()


def test_no_reference_without_a_matching_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    for seed in (0, 1):
        fake_run(store, 0.0, 0.5, seed, 0.0)
    fake_svm_run(store, 0, n_folds=3)
    rep = build_report(store, SWEEP, tmp_path / "out")
    assert rep["reference"] is None
    assert "eGeMAPS" not in (tmp_path / "out" / "report.md").read_text()
