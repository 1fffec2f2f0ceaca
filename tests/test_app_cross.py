"""The app with the eGeMAPS + SVM baseline and another corpus: Compare puts the baseline next to
a CNN run and overlays another corpus on a run's map; Explore declines a baseline run clearly."""

from __future__ import annotations

import importlib.util

import pytest

from ser_lab.runs import RunStore
from tests.app_fixtures import TINY, app_test, charts, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
needs_opensmile = pytest.mark.skipif(
    importlib.util.find_spec("opensmile") is None, reason="opensmile (requirements-classical.txt) not installed"
)


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_compare_overlays_another_corpus_on_a_map(scratch_store):
    at = app_test("compare")
    no_exception(at)
    n_charts = len(charts(at))
    at.selectbox(key="cross_corpus").set_value("synthetic").run()
    at.selectbox(key="cross_size").set_value("tiny").run()
    at.radio(key="cross_side").set_value("B").run()
    assert len(charts(at)) == n_charts  # nothing is computed before the button
    at.button(key="cross_go").click().run()
    no_exception(at)
    assert len(charts(at)) == n_charts + 1
    assert "synthetic utterances, colored by their true class" in texts(at)
    assert "Fold 0's model on them: UA" in texts(at)


def test_compare_overlay_reports_a_bad_corpus_folder(scratch_store, tmp_path):
    at = app_test("compare")
    at.selectbox(key="cross_corpus").set_value("emodb").run()
    at.text_input(key="cross_root").set_value(str(tmp_path / "absent")).run()
    at.button(key="cross_go").click().run()
    no_exception(at)
    assert any("Cannot place that corpus on the map" in e.value for e in at.error)


@needs_opensmile
def test_compare_and_explore_with_a_baseline_svm_run(scratch_store):
    from ser_lab.learn import classical

    store = RunStore(scratch_store.store)
    cfg = classical.ClassicalConfig(corpus=TINY.corpus, corpus_options=TINY.corpus_options,
                                    n_folds=TINY.n_folds, folds=TINY.folds, workers=1)
    run = classical.new_classical_run(cfg, store, name="tiny svm")
    with run.lock():
        classical.train_classical_run(run)
    at = app_test("compare")
    at.selectbox[0].set_value(run.run_id).run()
    at.selectbox[1].set_value(scratch_store.center).run()
    no_exception(at)
    table = at.dataframe[0].value
    ua = table[table["metric"] == "UA (mean over folds)"].iloc[0]
    assert ua["A"] == pytest.approx(100 * run.read_results()["mean"]["UA"])
    assert len(charts(at)) >= 5  # two maps and three confusion matrices
    at = app_test("explore")
    at.selectbox[0].set_value(run.run_id).run()
    no_exception(at)
    assert any("eGeMAPS + SVM baseline" in i.value for i in at.info)


def test_sensitivity_shows_the_classical_reference_of_a_sweep(scratch_store):
    from tests.test_report import SWEEP, fake_run
    from tests.test_report_classical import fake_svm_run

    store = RunStore(scratch_store.store)
    for seed in (0, 1):
        fake_run(store, 0.0, 0.5, seed, 0.0)
        fake_run(store, 0.3, 0.5, seed, 0.04)
    at = app_test("sensitivity")
    at.selectbox[0].set_value(SWEEP).run()
    no_exception(at)
    assert "eGeMAPS + SVM on the same test folds here" in texts(at)  # no reference yet: a hint
    for seed in (0, 1):
        fake_svm_run(store, seed)
    at = app_test("sensitivity")
    at.selectbox[0].set_value(SWEEP).run()
    no_exception(at)
    assert any("eGeMAPS + linear SVM" in s.value for s in at.subheader)
    table = at.dataframe[-1].value
    assert len(table) == 2 and list(table["units"]) == [4, 4]
    assert sorted(round(v, 1) for v in table["Δ UA (pts)"]) == [5.0, 9.0]
