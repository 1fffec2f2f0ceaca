"""The objectives in the app: the Train page's arm selector and settings, the Learn page's toy."""

from __future__ import annotations

import pytest

from ser_lab.experiments import launcher
from ser_lab.runs import RunStore
from tests.app_fixtures import app_test, charts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_train_page_launches_a_run_of_the_chosen_objective(scratch_store):
    at = app_test("train")
    [s for s in at.selectbox if s.label == "objective"][0].set_value("supcon").run()
    assert not at.exception
    [n for n in at.number_input if n.label == "temperature τ"][0].set_value(0.2)
    assert not [n for n in at.number_input if n.label == "margin m"]  # only the chosen arm's settings
    at.text_input[0].set_value("supcon from apptest")
    [n for n in at.number_input if n.label == "epochs"][0].set_value(1)
    [r for r in at.radio if r.label == "train"][0].set_value("first fold only")
    [s for s in at.selectbox if s.label == "device"][0].set_value("cpu")
    at.button(key="start_training").click().run()
    assert not at.exception
    store = RunStore(scratch_store.store)
    (summary,) = [s for s in store.list() if s.name == "supcon from apptest"]
    run = store.get(summary.run_id)
    try:
        cfg = run.config["train"]
        assert cfg["objective"] == "supcon" and cfg["supcon_temperature"] == 0.2
    finally:
        launcher.stop_run(run, wait_s=30)


def test_learn_page_toy_offers_learned_centers_and_margin_next_to_the_alpha_rule(app_env):
    at = app_test("learn")
    assert not at.exception and len(charts(at)) == 2
    picker = [s for s in at.selectbox if s.label.startswith("Add a third panel")][0]
    for option, slider in (("learned centers (Wen et al. 2016)", "center learning rate η_c"),
                           ("additive-margin softmax (AM-Softmax / CosFace)", "margin m")):
        picker.set_value(option).run()
        assert not at.exception
        assert len(charts(at)) == 3
        assert any(s.label == slider for s in at.slider)
        ratios = [float(m.value) for m in at.metric if m.label == "intra / inter"]
        assert len(ratios) == 3 and all(0 < r < 1 for r in ratios)


def test_sensitivity_helpers_keep_arms_apart_and_plot_each_main_setting(tmp_path):
    import numpy as np
    import pandas as pd

    from ser_lab.app import figures, sweeps
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run

    store = RunStore(tmp_path / "runs")
    ids = {}
    for key, kw in {"base": {"lam": 0.0}, "c03": {"lam": 0.3},
                    "m01": {"objective": "amsoftmax", "am_margin": 0.1},
                    "m02": {"objective": "amsoftmax", "am_margin": 0.2},
                    "m02b": {"objective": "amsoftmax", "am_margin": 0.2, "seed": 1}}.items():
        ids[key] = new_run(TrainConfig(**kw), store).run_id
    ua = {"base": 0.5, "c03": 0.6, "m01": 0.7, "m02": 0.8, "m02b": 0.9}
    frame = pd.DataFrame([{"run": ids[k], "lam": 0.0, "alpha": 0.5, "fold": 0, "UA": v, "WA": v}
                          for k, v in ua.items()])
    frame = sweeps.with_objective(store, frame)
    assert frame.set_index("run")["objective"].to_dict()[ids["m01"]] == "amsoftmax"
    assert frame.set_index("run")["main_value"].to_dict()[ids["c03"]] == 0.3  # from its config
    param, curve = sweeps.objective_sensitivity(frame, "amsoftmax")
    assert param == "am_margin"
    assert curve["am_margin"].tolist() == [0.1, 0.2] and curve["n"].tolist() == [1, 2]
    assert np.allclose(curve["UA_mean"], [70.0, 85.0])
    fig = figures.sensitivity_figure(curve, param, "UA / WA against am_margin")
    assert fig.layout.xaxis.title.text == "am_margin"
