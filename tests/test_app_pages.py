"""Every page of the Streamlit app, run headless with AppTest on a tiny trained pair."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
import soundfile as sf

from ser_lab.config import TrainConfig
from ser_lab.data.corpora.synthetic import SYNTHETIC_NOTICE
from ser_lab.experiments import launcher
from ser_lab.learn.trainer import new_run
from ser_lab.runs import RunStore
from tests import app_fixtures as fx
from tests.app_fixtures import TINY, app_test, charts, texts

# the shared fixtures (a tiny trained pair, trained once per session)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metric(at, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0]


def plotly_array(value) -> list:
    """A plotly JSON array (plain list, or {"dtype", "bdata"} base64-encoded)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def wav(samples: np.ndarray, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ----------------------------------------------------------------------------- home


def test_home_shows_corpus_runs_and_marks(app_env):
    at = app_test()
    no_exception(at)
    assert at.title[0].value == "SER Lab"
    warning = "\n".join(w.value for w in at.warning)
    assert "Synthetic corpus" in warning and SYNTHETIC_NOTICE in warning
    assert metric(at, "utterances") == "32" and metric(at, "speakers") == "4"
    assert (
        metric(at, "runs") == "3" and metric(at, "finished") == "2" and metric(at, "broken") == "1"
    )
    table = at.dataframe[0].value
    assert set(table["run"]) == {app_env.baseline, app_env.center, app_env.broken}
    demo = dict(zip(table["run"], table["demo"]))
    assert demo[app_env.baseline] and not demo[app_env.center]
    broken = table[table["run"] == app_env.broken].iloc[0]
    assert broken["state"] == "broken" and "config.json" in broken["problem"]
    assert any(app_env.broken in w.value and "config.json" in w.value for w in at.warning)
    done = table[table["run"] == app_env.center].iloc[0]
    assert 0 <= float(done["UA %"]) <= 100 and done["λ"] == "0.3"
    assert not table.isna().any().any()  # no grey "None" cells
    assert any(b.label == "Quick start" for b in at.button)
    # the quick start comes right after the introduction (visible without scrolling)
    assert [h.value for h in at.header][0] == "Quick start"
    assert any(f"{launcher.QUICK_START['epochs']} epochs" in m.value for m in at.markdown)


def test_home_corpus_form_validates_with_the_adapter(app_env, tmp_path):
    at = app_test()
    at.selectbox[0].set_value("emodb")
    at.text_input[0].set_value(str(tmp_path / "nowhere"))
    at.button(key="FormSubmitter:corpus_form-Check and use this corpus").click().run()
    no_exception(at)
    assert any("Not usable" in e.value and "does not exist" in e.value for e in at.error)
    # the setting did not change
    assert (
        json.loads((app_env.cache / "app_settings.json").read_text())["corpus"]["name"]
        == "synthetic"
    )

    at.selectbox[0].set_value("synthetic")
    at.text_input[0].set_value("")
    at.selectbox[1].set_value("tiny")
    at.button(key="FormSubmitter:corpus_form-Check and use this corpus").click().run()
    no_exception(at)
    assert any("Now using" in s.value and "32 utterances" in s.value for s in at.success)


EMODB = fx.ROOT.parent / "shared" / "datasets" / "emodb"


@pytest.mark.skipif(
    not (EMODB / "wav").is_dir(), reason="the EmoDB corpus is not at ../shared/datasets/emodb"
)
def test_home_accepts_a_real_corpus_and_every_page_follows(app_env):
    at = app_test()
    at.selectbox[0].set_value("emodb")
    at.text_input[0].set_value(str(EMODB))
    at.button(key="FormSubmitter:corpus_form-Check and use this corpus").click().run()
    no_exception(at)
    assert any("Now using emodb" in s.value for s in at.success)
    assert not any(
        "Synthetic corpus" in w.value for w in at.warning
    )  # no synthetic mark for real speech
    at.switch_page(fx.PAGES["corpus"]).run()
    no_exception(at)
    assert metric(at, "speakers") == "10" and metric(at, "classes") == "4"
    assert int(metric(at, "utterances")) > 300


def test_home_quick_start_launches_baseline_and_center_loss(scratch_store):
    at = app_test()
    quick = [b for b in at.button if b.label == "Quick start"][0]
    quick.click().run()
    no_exception(at)
    store = RunStore(scratch_store.store)
    new = [s for s in store.list() if s.name in ("quick baseline", "quick center loss")]
    try:
        assert len(new) == 2
        configs = {s.name: store.get(s.run_id).config["train"] for s in new}
        assert configs["quick baseline"]["lam"] == 0.0
        assert (
            configs["quick center loss"]["lam"] == 0.3
            and configs["quick center loss"]["alpha"] == 0.5
        )
        for cfg in configs.values():
            assert (
                cfg["corpus"] == "synthetic"
                and cfg["folds"] == [0]
                and cfg["corpus_options"] == launcher.QUICK_START["corpus_options"]
            )
        assert any("Started" in s.value for s in at.success)
        # pressing it again while they run is not possible
        assert [b for b in at.button if b.label == "Quick start"][0].disabled
    finally:
        for s in new:
            launcher.stop_run(store.get(s.run_id), wait_s=30)
    for s in new:
        assert store.get(s.run_id).live_status()["state"] == "interrupted"


# ----------------------------------------------------------------------------- train


def test_train_page_shows_curves_and_results(app_env):
    at = app_test("train")
    no_exception(at)
    assert at.title[0].value == "Train"
    # nothing training: the baseline / center-loss pair, overlaid
    assert at.multiselect[0].value == [app_env.baseline, app_env.center]
    assert len(charts(at)) == 4  # losses, accuracy, intra / inter, distances
    results = app_env.run(app_env.baseline).read_results()
    assert metric(at, "test UA") == f"{100 * results['mean']['UA']:.1f} %"
    devices = [s for s in at.selectbox if s.label == "device"][0].options
    assert devices[:2] == ["auto", "cpu"]


def chart_spec(at, key: str) -> dict:
    found = [c for c in charts(at) if c.key == key]
    assert found, f"no chart {key!r}; have {[c.key for c in charts(at)]}"
    return json.loads(found[0].proto.spec)


def test_train_page_overlays_the_selected_runs_on_shared_axes(app_env):
    at = app_test("train")  # the pair is the default selection
    no_exception(at)
    assert len(charts(at)) == 4  # one chart per quantity, not one per run
    losses = chart_spec(at, "curves-losses")["data"]
    # 2 runs x 3 losses, one color per run, one line style per loss
    assert len(losses) == 6
    colors = {t["legendgroup"]: t["line"]["color"] for t in losses}
    assert set(colors) == {app_env.baseline, app_env.center} and len(set(colors.values())) == 2
    for run in colors:
        dashes = [t["line"]["dash"] for t in losses if t["legendgroup"] == run]
        assert dashes == ["solid", "dash", "dot"]
    ratio = chart_spec(at, "curves-ratio")["data"]
    assert len(ratio) == 2
    records = [r for r in app_env.run(app_env.center).read_metrics() if r["fold"] == 0]
    center = [t for t in ratio if t["legendgroup"] == app_env.center][0]
    assert plotly_array(center["y"]) == pytest.approx(
        [r["intra_dist"] / r["inter_dist"] for r in records]
    )
    assert any("L_c can rise" in i.value and "feature norm" in i.value for i in at.info)


def test_train_page_quick_preset_and_time_estimate(app_env):
    at = app_test("train")
    epochs = [n for n in at.number_input if n.label == "epochs"][0]
    assert epochs.value == launcher.QUICK_START["epochs"]  # "quick" is the default preset
    augment = [c for c in at.checkbox if c.label == "SpecAugment"][0]
    assert augment.value == launcher.QUICK_START["augment"]  # the Home button's setting
    [r for r in at.radio if r.label == "preset"][0].set_value("paper").run()
    no_exception(at)
    # "paper": TrainConfig's defaults, epochs a maximum with early stopping
    paper = TrainConfig()
    assert [n for n in at.number_input if n.label == "epochs"][0].value == paper.epochs
    assert [n for n in at.number_input if n.label == "patience (epochs)"][0].value == paper.patience
    assert [n for n in at.number_input if n.label == "batch size"][0].value == paper.batch_size
    assert [c for c in at.checkbox if c.label == "SpecAugment"][0].value == paper.augment
    preset = [r for r in at.radio if r.label == "preset"][0]
    assert any("early stopping" in o for o in preset.options)
    # two finished mel runs in the store: the estimate is measured, and grows with the epochs
    first = [c.value for c in at.caption if "Estimated time" in c.value]
    assert len(first) == 1 and "2 finished mel run(s)" in first[0]
    fewer = paper.epochs // 2
    [n for n in at.number_input if n.label == "epochs"][0].set_value(fewer).run()
    second = [c.value for c in at.caption if "Estimated time" in c.value][0]
    assert f"{fewer} epochs" in second and second != first[0]


def test_train_page_keeps_the_form_closed_while_a_run_trains(scratch_store):
    at = app_test("train")
    assert at.expander[0].label == "New run" and at.expander[0].proto.expanded
    store = RunStore(scratch_store.store)
    run = new_run(TINY, store, name="training now")  # queued: counts as training
    run.update_status(pid=None)
    at = app_test("train")  # a reload: a new session, nothing in its state
    no_exception(at)
    assert not at.expander[0].proto.expanded
    assert run.run_id in at.multiselect[0].value


def test_train_page_launches_a_run_in_its_own_process(scratch_store):
    at = app_test("train")
    at.text_input[0].set_value("from apptest")
    [n for n in at.number_input if n.label == "epochs"][0].set_value(1)
    [n for n in at.number_input if n.label == "patience (epochs)"][0].set_value(4)
    [r for r in at.radio if r.label == "train"][0].set_value("first fold only")
    [s for s in at.selectbox if s.label == "device"][0].set_value("cpu")
    at.button(key="start_training").click().run()
    no_exception(at)
    store = RunStore(scratch_store.store)
    run = [s for s in store.list() if s.name == "from apptest"]
    assert len(run) == 1
    run = store.get(run[0].run_id)
    try:
        cfg = run.config["train"]
        assert cfg["epochs"] == 1 and cfg["folds"] == [0] and cfg["device"] == "cpu"
        assert cfg["patience"] == 4
        assert cfg["corpus_options"] == {"size": "tiny"}
        assert isinstance(run.read_status().get("pid"), int)
        assert any(run.run_id in s.value for s in at.success)
        assert run.run_id in at.multiselect[0].value
    finally:
        launcher.stop_run(run, wait_s=30)


def test_train_page_shows_a_failed_run_and_offers_resume(scratch_store):
    store = RunStore(scratch_store.store)
    run = new_run(TINY, store, name="doomed")
    run.update_status(state="failed", error="CorpusError: the corpus vanished")
    at = app_test("train")
    at.multiselect[0].set_value([run.run_id]).run()
    no_exception(at)
    assert any("the corpus vanished" in e.value for e in at.error)
    assert any(b.label == "Resume" for b in at.button)
    assert not any(b.label == "Stop" for b in at.button)


# ----------------------------------------------------------------------------- compare


def test_compare_defaults_to_baseline_vs_center_loss(app_env):
    at = app_test("compare")
    no_exception(at)
    assert at.title[0].value == "Compare two runs"
    assert at.selectbox[0].value == app_env.baseline and at.selectbox[1].value == app_env.center
    # 2 maps, 3 confusion matrices, 1 animation over the epochs
    assert len(charts(at)) == 6
    table = at.dataframe[0].value
    ua = table[table["metric"] == "UA (mean over folds)"].iloc[0]
    res_a = app_env.run(app_env.baseline).read_results()["mean"]["UA"]
    res_b = app_env.run(app_env.center).read_results()["mean"]["UA"]
    assert ua["A"] == pytest.approx(100 * res_a) and ua["B"] == pytest.approx(100 * res_b)
    assert ua["B − A"] == pytest.approx(100 * (res_b - res_a))
    assert "Synthetic corpus" in texts(at)


def test_compare_panel_reads_the_pair_in_plain_words(app_env):
    from ser_lab.analysis import compare
    from ser_lab.app import comparison

    at = app_test("compare")
    no_exception(at)
    comp = compare.compare_runs(
        app_env.run(app_env.baseline).dir, app_env.run(app_env.center).dir
    )
    reading = comparison.read_comparison(comp)
    alerts = [a.value for kind in ("success", "warning", "info") for a in getattr(at, kind)]
    headline = [a for a in alerts if a.startswith("**What this pair shows.**")]
    assert len(headline) == 1 and reading.headline in headline[0]
    assert reading.center_side == "B"  # A is the baseline (λ = 0), B the center-loss run
    panel = ["\n".join(m.value for m in at.markdown if m.value.startswith("- "))]
    lines = panel[0].splitlines()
    assert len(lines) == len(comparison.READ_KEYS)
    for name in ("UA", "WA", "test intra/inter ratio", "test Fisher criterion", "5-NN UA of z"):
        line = [x for x in lines if x.startswith(f"- {name} ")]
        assert len(line) == 1, (name, lines)
        assert any(w in line[0] for w in (" rose from ", " fell from ", " unchanged at "))
        assert "is better" in line[0]  # names the good direction too
    ratio = [m for m in reading.moves if m.key == "test_intra_inter"][0]
    expected = "rose" if ratio.b > ratio.a else "fell"
    assert f"test intra/inter ratio {expected} from {ratio.a:.3f} to {ratio.b:.3f}" in panel[0]
    facts = " ".join(c.value for c in at.caption)
    n_test = sum(f["n_test"] for f in comp["a"]["folds"])
    assert f"Measured on {n_test} test utterances over 1 fold per side" in facts
    # the maps say which epoch they show and what scale they are in
    best = app_env.run(app_env.center).read_results()["folds"][0]["best_epoch"]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts(at)[:2]]
    assert titles[1].endswith(f"epoch {best} (best validation)")
    assert "On screen: scale-free units" in facts and "÷" in facts
    [r for r in at.radio if r.label == "units"][0].set_value("raw").run()
    no_exception(at)
    assert "On screen: raw units" in " ".join(c.value for c in at.caption)


def test_compare_grid_of_up_to_four_runs_aligned_to_a(scratch_store):
    import shutil

    for n in (1, 2):  # two more finished runs: copies of the center-loss run under new ids
        copy = scratch_store.store / f"copy-{n}"
        shutil.copytree(scratch_store.store / scratch_store.center, copy)
        cfg = json.loads((copy / "config.json").read_text())
        cfg["run_id"] = copy.name
        (copy / "config.json").write_text(json.dumps(cfg))
    at = app_test("compare")
    no_exception(at)
    grid = [m for m in at.multiselect if m.label == "add runs (trained on the same fold)"][0]
    assert sorted(o.split(" · ")[0] for o in grid.options) == ["copy-1", "copy-2"]
    grid.set_value(["copy-1", "copy-2"]).run()
    no_exception(at)
    keys = [c.key for c in charts(at)]
    assert {"grid_A", "grid_B", "grid_C", "grid_D"} <= set(keys)
    # a copy of B is drawn exactly where B is: aligned to A the same way, at the same scale
    b = chart_spec(at, "grid_B")["data"]
    c = chart_spec(at, "grid_C")["data"]
    assert plotly_array(b[0]["x"]) == pytest.approx(plotly_array(c[0]["x"]), abs=1e-6)
    # the table has a column per run and each run after A minus A: the copies equal B
    table = [d.value for d in at.dataframe if "D − A" in d.value.columns][0]
    assert list(table.columns) == ["metric", "A", "B", "C", "D", "B − A", "C − A", "D − A"]
    ua = table[table["metric"] == "UA (mean over folds)"].iloc[0]
    res_a = scratch_store.run(scratch_store.baseline).read_results()["mean"]["UA"]
    res_b = scratch_store.run(scratch_store.center).read_results()["mean"]["UA"]
    assert ua["A"] == pytest.approx(100 * res_a) and ua["C"] == ua["D"] == pytest.approx(100 * res_b)
    assert ua["D − A"] == pytest.approx(100 * (res_b - res_a))
    numbers = table.drop(columns="metric")
    assert (numbers["B"].fillna(-1) == numbers["C"].fillna(-1)).all()
    # a confusion matrix per run, a copy's equal to B's
    assert {"grid_cm_A", "grid_cm_B", "grid_cm_C", "grid_cm_D"} <= set(keys)
    assert chart_spec(at, "grid_cm_B")["data"][0]["z"] == chart_spec(at, "grid_cm_C")["data"][0]["z"]


def test_compare_shows_a_selected_utterance(app_env):
    emb = app_env.run(app_env.baseline).load_embeddings(0)
    test = emb["split"] == "test"
    utt = str(emb["utt_ids"][test][0])
    at = app_test("compare")
    at.session_state["compare_utt"] = utt
    at.run()
    no_exception(at)
    assert any(s.value == f"Utterance {utt}" for s in at.subheader)
    names = [str(n) for n in emb["label_names"]]
    assert metric(at, "true class") == names[int(emb["labels"][test][0])]
    assert metric(at, "A predicts") in names and metric(at, "B predicts") in names
    assert len(charts(at)) == 7  # + the utterance's spectrogram
    assert len(at.get("audio")) == 1
    # the corpus on disk is the one the runs were trained on
    assert not any("corpus" in w.value for w in at.warning)
    [b for b in at.button if b.label == "Clear selection"][0].click().run()
    no_exception(at)
    assert not any(s.value.startswith("Utterance ") for s in at.subheader)
    assert len(charts(at)) == 6


def test_compare_needs_two_finished_runs(tmp_path, app_store, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(app_store.cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "empty"))
    at = app_test("compare")
    no_exception(at)
    assert any("Two finished runs are needed" in i.value for i in at.info)


# ----------------------------------------------------------------------------- explore


def corpus_wav(app_store) -> bytes:
    files = sorted((app_store.cache / "synthetic").glob("*tiny*/wav/*.wav"))
    assert files
    return files[0].read_bytes()


def test_explore_classifies_an_uploaded_clip(app_env):
    at = app_test("explore")
    no_exception(at)
    assert any("Upload or record" in i.value for i in at.info)
    assert at.selectbox[0].value == app_env.center  # a center-loss run by default
    clip = sorted((app_env.cache / "synthetic").glob("*tiny*/wav/*.wav"))[0]
    at.file_uploader[0].set_value((clip.name, clip.read_bytes(), "audio/wav"))
    at.run()
    no_exception(at)
    assert not at.error
    names = ["neutral", "angry", "happy", "sad"]
    assert metric(at, "predicted") in names and metric(at, "nearest center") in names
    assert float(metric(at, "confidence").rstrip(" %")) >= 25.0
    assert len(charts(at)) == 4  # waveform, spectrogram, probabilities, map with the star
    # the clip itself + 5 neighbours with their audio (the tiny corpus is in the cache)
    assert len(at.get("audio")) == 6
    assert any("distance" in m.value for m in at.markdown)
    # the file is named like an utterance of the run's corpus: its label is known, no warning
    assert metric(at, "true label") == clip.stem.split("_")[1] and not at.warning


def test_explore_classifies_a_recording(app_env):
    at = app_test("explore")
    [r for r in at.radio if r.label == "clip"][0].set_value("Record").run()
    no_exception(at)
    assert len(at.audio_input) == 1 and not at.file_uploader
    at.audio_input[0].set_value(("recording.wav", corpus_wav(app_env), "audio/wav"))
    at.run()
    no_exception(at)
    assert not at.error
    assert metric(at, "predicted") in ("neutral", "angry", "happy", "sad")
    assert len(charts(at)) == 4


def test_explore_a_held_out_test_utterance(app_env):
    at = app_test("explore")
    [r for r in at.radio if r.label == "clip"][0].set_value("A held-out test utterance").run()
    no_exception(at)
    emb = app_env.run(app_env.center).load_embeddings(0)
    test_ids = sorted(str(u) for u in emb["utt_ids"][emb["split"] == "test"])
    picker = at.selectbox[-1]
    assert sorted(picker.options) == sorted(f"{u} ({u.split('_')[1]})" for u in test_ids)
    picker.set_value(test_ids[0]).run()
    no_exception(at)
    assert not at.error
    predicted = metric(at, "predicted")
    assert predicted in ("neutral", "angry", "happy", "sad")
    assert len(charts(at)) == 4
    # a held-out test utterance: its true label is known, and whether the run got it right
    truth = test_ids[0].split("_")[1]
    shown = [m for m in at.metric if m.label == "true label"][0]
    assert shown.value == truth
    assert shown.proto.delta == ("right" if predicted == truth else "wrong")
    assert not at.warning  # it comes from the run's own corpus


def test_explore_warns_about_a_real_clip_on_a_synthetic_run(app_env):
    at = app_test("explore")
    # an EmoDB-named file (here with synthetic audio): EmoDB's scheme gives its true label
    at.file_uploader[0].set_value(("03a01Wa.wav", corpus_wav(app_env), "audio/wav"))
    at.run()
    no_exception(at)
    assert metric(at, "true label") == "angry"
    warning = " ".join(w.value for w in at.warning)
    assert "trained on the built-in SYNTHETIC corpus" in warning and "from emodb" in warning


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        (
            "notes.wav",
            lambda: b"these are not the samples you are looking for" * 10,
            "cannot be used",
        ),
        ("silence.wav", lambda: wav(np.zeros(16000, dtype=np.float32)), "silent"),
        ("click.wav", lambda: wav(0.5 * np.sin(np.arange(1600) / 3.0).astype(np.float32)), "short"),
    ],
)
def test_explore_refuses_bad_audio_with_a_message(app_env, name, make, expected):
    at = app_test("explore")
    at.file_uploader[0].set_value((name, make(), "audio/wav"))
    at.run()
    no_exception(at)
    assert len(at.error) == 1
    assert f"This clip ({name}) cannot be used" in at.error[0].value
    assert expected in at.error[0].value.lower()
    assert not charts(at)


# ----------------------------------------------------------------------------- sensitivity


def test_sensitivity_plots_all_finished_runs(app_env):
    at = app_test("sensitivity")
    no_exception(at)
    assert at.title[0].value == "Sensitivity to λ and α"
    assert at.selectbox[0].value == "(all finished runs)"
    assert metric(at, "runs") == "2" and metric(at, "finished") == "2"
    assert len(charts(at)) == 2
    lam_chart = json.loads(charts(at)[0].proto.spec)
    assert plotly_array(lam_chart["data"][0]["x"]) == ["0", "0.3"]  # λ as categories, in order
    layout = lam_chart["layout"]
    assert layout["xaxis"]["type"] == "category"
    assert layout["xaxis"]["title"]["text"].startswith("λ")
    alpha_chart = json.loads(charts(at)[1].proto.spec)
    assert alpha_chart["layout"]["xaxis"]["title"]["text"] == "α"  # not a marker name
    assert not any("pool runs" in w.value for w in at.warning)  # both runs share settings


def test_sensitivity_warns_when_the_curve_pools_unlike_runs(scratch_store):
    store = RunStore(scratch_store.store)
    run = store.get(scratch_store.center)
    cfg = json.loads((run.dir / "config.json").read_text())
    cfg["train"]["lr"] = 0.01
    cfg["train"]["epochs"] = cfg["epochs"] = 7
    (run.dir / "config.json").write_text(json.dumps(cfg))
    at = app_test("sensitivity")
    no_exception(at)
    warning = [w.value for w in at.warning if "pool runs whose settings differ" in w.value]
    assert len(warning) == 1
    assert "epochs (2, 7)" in warning[0] and "learning rate (0.0003, 0.01)" in warning[0]


def test_sensitivity_follows_a_launched_sweep_until_it_ends(scratch_store):
    at = app_test("sensitivity")
    [r for r in at.radio if r.label == "preset"][0].set_value("small").run()
    at.text_input(key="lams-small").set_value("0")
    at.number_input(key="epochs-small").set_value(1)
    at.number_input(key="folds-small").set_value(2)
    assert at.number_input(key="bs-small").value == launcher.QUICK_START["batch_size"]
    at.button(key="FormSubmitter:grid-Launch the grid").click().run()
    no_exception(at)
    store = RunStore(scratch_store.store)
    launched = [s.value for s in at.success if "Launched sweep" in s.value]
    assert len(launched) == 1
    sweep_id = launched[0].split("`")[1]
    try:
        # selected at once, although its manifest may not exist yet; followed while it runs
        assert at.selectbox(key="sweep_choice").value == sweep_id
        assert any(i.value.startswith("Running:") for i in at.info)
        assert any(b.label == "Stop the sweep" for b in at.button)
        assert any("Refreshing every 5 s" in c.value for c in at.caption)
        deadline = time.monotonic() + 300
        while launcher.sweep_process(store, sweep_id) is not None:
            assert time.monotonic() < deadline, "the one-point sweep did not end in 300 s"
            time.sleep(1)
    finally:
        launcher.stop_sweep(store, sweep_id)
    at.run()
    no_exception(at)
    assert at.selectbox(key="sweep_choice").value == sweep_id
    assert any(s.value.startswith("Finished: all 1 of 1 runs done") for s in at.success)
    assert not any(b.label == "Stop the sweep" for b in at.button)
    assert not any("Refreshing" in c.value for c in at.caption)
    assert metric(at, "finished") == "1"
    assert len(charts(at)) == 1  # λ = 0 only: the λ curve, and no empty α chart but why
    assert any("no run with center loss (λ > 0) has finished yet" in i.value for i in at.info)


def test_sensitivity_refuses_bad_grid_values(app_env):
    at = app_test("sensitivity")
    at.text_input[0].set_value("0, lots")
    at.button(key="FormSubmitter:grid-Launch the grid").click().run()
    no_exception(at)
    assert any("λ values" in e.value and "lots" in e.value for e in at.error)


def test_sensitivity_lists_a_sweep(scratch_store):
    store = RunStore(scratch_store.store)
    from dataclasses import replace

    run = new_run(replace(TINY, lam=1.0, sweep_id="sweep-test"), store, name="sweep point")
    run.update_status(pid=None)
    at = app_test("sensitivity")
    no_exception(at)
    assert at.selectbox[0].value == "sweep-test"
    assert metric(at, "runs") == "1" and metric(at, "training") == "1"
    assert any("No run has finished yet" in i.value for i in at.info)


def test_sensitivity_offers_to_resume_an_unfinished_sweep(scratch_store):
    from dataclasses import replace

    from ser_lab.experiments.sweep import MANIFEST_VERSION, sweeps_dir

    store = RunStore(scratch_store.store)
    run = new_run(replace(TINY, lam=0.3, sweep_id="sweep-half"), store, name="sweep-half point")
    run.update_status(state="interrupted")
    sweeps_dir(store).mkdir()
    points = [
        {"key": "a", "run_id": run.run_id, "state": "interrupted"},
        {"key": "b", "run_id": None, "state": "pending"},
        {"key": "c", "run_id": None, "state": "done"},
    ]
    manifest = {
        "format_version": MANIFEST_VERSION,
        "sweep_id": "sweep-half",
        "created": "2099-01-01T00:00:00",
        "spec": {},
        "points": points,
    }
    (sweeps_dir(store) / "sweep-half.json").write_text(json.dumps(manifest))
    at = app_test("sensitivity")
    no_exception(at)
    assert at.selectbox[0].value == "sweep-half"
    assert metric(at, "runs") == "1 of 3"  # one run folder so far, three points planned
    assert any(b.label == "Resume the sweep (2 points not done)" for b in at.button)
    assert not any(b.label == "Stop the sweep" for b in at.button)


# ----------------------------------------------------------------------------- corpus


def test_corpus_page_switches_the_corpus(app_env):
    at = app_test("corpus")
    no_exception(at)
    at.selectbox[1].set_value("small")  # synthetic size
    at.button(key="FormSubmitter:corpus_form-Check and use this corpus").click().run()
    no_exception(at)
    assert any("Now using" in s.value and "64 utterances" in s.value for s in at.success)
    assert metric(at, "utterances") == "64"
    assert (
        json.loads((app_env.cache / "app_settings.json").read_text())["corpus"]["options"]
        == {"size": "small"}
    )


def test_corpus_page_counts_and_filters(app_env):
    at = app_test("corpus")
    no_exception(at)
    assert (
        metric(at, "utterances") == "32"
        and metric(at, "speakers") == "4"
        and metric(at, "classes") == "4"
    )
    assert len(charts(at)) == 2
    assert any("no problem" in s.value for s in at.success)
    assert len(at.dataframe[-1].value) == 32
    at.multiselect[0].set_value(["angry"]).run()
    view = at.dataframe[-1].value
    assert len(view) == 8 and set(view["label"]) == {"angry"}
    at.multiselect[1].set_value(["spk01"]).run()
    assert len(at.dataframe[-1].value) == 2


# ----------------------------------------------------------------------------- learn


def test_learn_page_equations_and_toy(app_env):
    at = app_test("learn")
    no_exception(at)
    assert at.title[0].value == "Softmax loss and center loss"
    latex = [e.value for e in at.latex]
    assert len(latex) == 4
    assert any(r"\lVert z_i - c_{y_i} \rVert_2^2" in x for x in latex)
    assert any(r"(1-\alpha)\, c_j + \alpha\, \bar z_j" in x for x in latex)
    assert len(charts(at)) == 2
    ratios = [float(m.value) for m in at.metric if m.label == "intra / inter"]
    assert len(ratios) == 2 and ratios[1] < ratios[0]  # the center loss makes classes more compact
