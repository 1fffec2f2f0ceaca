"""The app's non-Streamlit helpers: settings, run tables, aggregations, colors, figures, toy."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ser_lab.analysis import maps
from ser_lab.app import comparison, explore, figures, run_tables, sweeps
from ser_lab.app import corpus as app_corpus
from ser_lab.app.colors import EMOTION_COLORS, FALLBACK_PALETTE, color_map, emotion_color, hex_to_rgba
from ser_lab.errors import ConfigError, CorpusError
from ser_lab.learn.toy import ToyConfig, train_toy
from ser_lab.runs import RunSummary

# ----------------------------------------------------------------------------- settings


def test_corpus_choice_round_trip_and_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path))
    assert app_corpus.load_corpus_choice() == app_corpus.CorpusChoice()  # nothing saved: the built-in corpus
    choice = app_corpus.CorpusChoice("emodb", str(tmp_path), "all", {})
    app_corpus.save_corpus_choice(choice)
    assert app_corpus.load_corpus_choice() == choice
    assert json.loads(app_corpus.settings_path().read_text())["corpus"]["name"] == "emodb"
    with pytest.raises(CorpusError, match="needs a root"):
        app_corpus.CorpusChoice("emodb", None).validate()
    with pytest.raises(ConfigError, match="unknown corpus"):
        app_corpus.CorpusChoice("nope").validate()
    app_corpus.settings_path().write_text("{broken")
    assert app_corpus.load_corpus_choice() == app_corpus.CorpusChoice()  # unreadable settings: the default


def test_session_corpus_comes_from_the_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path))
    app_corpus.save_corpus_choice(app_corpus.CorpusChoice(options={"size": "tiny"}))
    state: dict = {}
    assert app_corpus.current_corpus(state).options == {"size": "tiny"}
    assert state[app_corpus.SESSION_KEY]["options"] == {"size": "tiny"}
    app_corpus.set_corpus(state, app_corpus.CorpusChoice(options={"size": "small"}))
    assert app_corpus.current_corpus(state).options == {"size": "small"}
    assert app_corpus.load_corpus_choice().options == {"size": "small"}  # new tabs get it too


def test_corpus_choice_labels_synthetic_clearly():
    assert "SYNTHETIC" in app_corpus.CorpusChoice().label()
    fields = app_corpus.CorpusChoice(options={"size": "tiny"}).train_fields()
    assert fields == {
        "corpus": "synthetic",
        "root": None,
        "classes": "paper",
        "corpus_options": {"size": "tiny"},
    }


# ----------------------------------------------------------------------------- runs


def row(
    run_id, lam, *, state="done", corpus="synthetic", features="mel", ua=0.5, alpha=0.5, **kw
) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        name=run_id,
        state=state,
        corpus=corpus,
        features=features,
        lam=lam,
        alpha=alpha,
        UA=ua if state == "done" else None,
        WA=ua if state == "done" else None,
        **kw,
    )


def test_default_pair_is_newest_finished_baseline_and_center_on_one_corpus():
    rows = [  # newest first
        row("c-running", 0.3, state="running"),
        row("c-emodb", 0.3, corpus="emodb"),
        row("b-new", 0.0),
        row("c-old", 0.3),
        row("b-old", 0.0),
    ]
    assert run_tables.default_pair(rows) == ("b-new", "c-old")  # c-emodb has no emodb baseline
    rows.append(row("b-emodb", 0.0, corpus="emodb"))
    assert run_tables.default_pair(rows) == ("b-emodb", "c-emodb")
    # a run of another objective is not the center-loss side of the pair, however new
    arm = [row("t-new", 0.3, corpus="emodb", objective="triplet"), *rows]
    assert run_tables.default_pair(arm) == ("b-emodb", "c-emodb")
    assert run_tables.default_pair([row("x", 0.3), row("y", 0.5)]) == ("y", "x")
    assert run_tables.default_pair([row("x", 0.3)]) == ("x", None)
    assert run_tables.default_pair([]) == (None, None)


def test_runs_frame_and_labels():
    rows = [
        row("a", 0.0, ua=0.6123, is_demo=True),
        row("b", None, state="broken", problem="config.json missing"),
    ]
    frame = run_tables.runs_frame(rows)
    assert list(frame["run"]) == ["a", "b"]
    assert frame.loc[0, "UA %"] == "61.23" and frame.loc[0, "demo"]
    assert frame.loc[1, "problem"] == "config.json missing" and frame.loc[1, "UA %"] == ""
    # no cell of the table is None or NaN (the app would show a grey "None")
    assert not frame.isna().any().any()
    assert frame.loc[0, "problem"] == "" and frame.loc[0, "λ"] == "0"
    assert run_tables.run_label(rows[0]).startswith("[demo] a · baseline")
    assert "λ=0.3, α=0.5" in run_tables.run_label(row("c", 0.3))


def test_progress_text_and_durations():
    status = {
        "state": "running",
        "fold": 0,
        "n_folds": 1,
        "epoch": 3,
        "n_epochs": 8,
        "progress": 0.375,
        "eta_s": 80,
    }
    assert run_tables.progress_text(status) == "fold 0 (1 to train) · epoch 3/8 · 38 % · ETA 1 min 20 s"
    assert "estimating" in run_tables.progress_text({**status, "eta_s": None})
    assert "ETA" not in run_tables.progress_text({**status, "state": "done"})
    refit = {**status, "epoch": 8, "refit": {"fold": 0, "epoch": 2, "epochs": 5}}
    assert "fold 0 refit on train + validation, epoch 2/5" in run_tables.progress_text(refit)
    assert "refit" not in run_tables.progress_text({**refit, "state": "done"})
    both = {**refit, "folds_active": [{"fold": 0, "epoch": 40, "refit": {"epoch": 2, "epochs": 5}},
                                      {"fold": 1, "epoch": 12}]}
    assert run_tables.progress_text(both).startswith(
        "folds 0 (refit epoch 2/5), 1 (epoch 12/8) in parallel (1 to train)")
    assert run_tables.format_duration(59.6) == "1 min 00 s" and run_tables.format_duration(7300) == "2 h 01 min"
    assert run_tables.format_duration(None) == "–"


def test_metrics_frame_is_long_and_skips_missing_values():
    records = [
        {
            "fold": 0,
            "epoch": 1,
            "softmax_loss": 1.3,
            "center_loss": 0.2,
            "total_loss": 1.36,
            "val_UA": 0.4,
            "val_WA": 0.5,
            "train_UA": 0.45,
            "intra_dist": 1.0,
            "inter_dist": 2.0,
            "val_intra_dist": float("nan"),
        },
    ]
    frame = run_tables.metrics_frame(records)
    assert len(frame) == 8  # 9 metrics, one NaN left out
    assert set(frame["group"]) == {"losses", "accuracy", "distances"}
    assert frame[frame["metric"] == "total_loss"]["value"].item() == 1.36


# ----------------------------------------------------------------------------- sweeps


def sweep_rows() -> pd.DataFrame:
    data = [
        # lam, alpha, seed, fold, UA, WA
        (0.0, 0.5, 0, 0, 0.50, 0.60),
        (0.0, 0.5, 1, 0, 0.60, 0.70),
        (0.3, 0.5, 0, 0, 0.70, 0.80),
        (0.3, 0.5, 1, 0, 0.80, 0.90),
        (0.3, 0.9, 0, 0, 0.40, 0.40),
        (1.0, 0.5, 0, 0, 0.30, 0.30),
        (1.0, 0.5, 1, 0, np.nan, np.nan),  # still running
    ]
    return pd.DataFrame(
        [
            {
                "run": f"r{i}",
                "state": "done",
                "lam": a,
                "alpha": b,
                "seed": s,
                "features": "mel",
                "corpus": "synthetic",
                "fold": f,
                "UA": u,
                "WA": w,
            }
            for i, (a, b, s, f, u, w) in enumerate(data)
        ]
    )


def test_sweep_progress_without_a_manifest_counts_every_run_it_sees(tmp_path):
    """A sweep whose runs were made one by one (no manifest): finished only when every run
    seen is done; an interrupted one leaves it stopped, never "finished"."""
    from ser_lab.runs import RunStore

    store = RunStore(tmp_path / "runs")

    def rows(*states: str) -> list[RunSummary]:
        return [RunSummary(run_id=f"r{i}", name=f"r{i}", state=s, sweep_id="sens")
                for i, s in enumerate(states)]

    half = sweeps.sweep_progress(store, rows("done", "done", "interrupted", "failed"), "sens", False)
    assert (half.state, half.planned, half.done, half.failed) == ("stopped", 0, 2, 2)
    assert half.text() == "Stopped: 2 runs done, 2 failed or interrupted; nothing is training."
    assert sweeps.sweep_progress(store, rows("done", "done"), "sens", False).state == "finished"
    assert sweeps.sweep_progress(store, rows("done", "running"), "sens", False).state == "running"
    assert sweeps.sweep_progress(store, rows(), "sens", False).state == "stopped"
    other = sweeps.sweep_progress(store, rows("done") + [RunSummary("x", "x", "failed", sweep_id="else")],
                                  "sens", False)
    assert other.state == "finished" and other.failed == 0


def test_lambda_curve_keeps_the_baseline_whatever_its_alpha():
    curve = sweeps.sensitivity(sweep_rows(), "lam", fixed=0.5)
    assert list(curve["lam"]) == [0.0, 0.3, 1.0]
    assert curve["UA_mean"].tolist() == pytest.approx([55.0, 75.0, 30.0])
    # the sample std (ddof 1) of ser_lab.analysis.stats; a single unit has none
    assert curve["UA_std"].tolist()[:2] == pytest.approx([math.sqrt(50), math.sqrt(50)])
    assert math.isnan(curve["UA_std"].tolist()[2])
    assert curve["n"].tolist() == [2, 2, 1]
    curve = sweeps.sensitivity(sweep_rows(), "lam", fixed=0.9)
    assert list(curve["lam"]) == [0.0, 0.3]


def test_alpha_curve_at_one_lambda():
    curve = sweeps.sensitivity(sweep_rows(), "alpha", fixed=0.3)
    assert list(curve["alpha"]) == [0.5, 0.9]
    assert curve["WA_mean"].tolist() == pytest.approx([85.0, 40.0])
    assert sweeps.sensitivity(sweep_rows().iloc[:0], "alpha").empty
    with pytest.raises(ConfigError):
        sweeps.sensitivity(sweep_rows(), "seed")


def test_parse_values():
    assert sweeps.parse_values("0, 0.1; 0.3,", "λ") == [0.0, 0.1, 0.3]
    assert sweeps.parse_values("1,2", "seeds", integer=True) == [1, 2]
    with pytest.raises(ConfigError, match="seeds: expected whole numbers"):
        sweeps.parse_values("1.5", "seeds", integer=True)
    with pytest.raises(ConfigError, match="at least one"):
        sweeps.parse_values(" , ", "α")


def test_sweep_options_newest_first_from_runs_and_manifests(tmp_path):
    from ser_lab.experiments.sweep import MANIFEST_VERSION, sweeps_dir
    from ser_lab.runs import RunStore

    store = RunStore(tmp_path)
    rows = [
        row("a", 0.3, sweep_id="s1", created="2025-01-01T10:00:00"),
        row("b", 0.3, sweep_id="s2", created="2025-01-02T10:00:00"),
        row("c", 0.3, sweep_id="s1", created="2025-01-01T11:00:00"),
        row("d", 0.0),
    ]
    assert sweeps.sweep_options(store, rows) == ["s2", "s1"]
    sweeps_dir(store).mkdir()
    manifest = {
        "format_version": MANIFEST_VERSION,
        "sweep_id": "s3",
        "created": "2025-01-03T09:00:00",
        "points": [{"key": "k", "state": "pending"}, {"key": "l", "state": "done"}],
    }
    (sweeps_dir(store) / "s3.json").write_text(json.dumps(manifest))
    assert sweeps.sweep_options(store, rows) == ["s3", "s2", "s1"]  # no run folder yet, still listed
    assert [p["key"] for p in sweeps.sweep_points(store, "s3")] == ["k", "l"]
    assert sweeps.sweep_points(store, "s1") == []


# ----------------------------------------------------------------------------- comparison helpers


def side(
    ua: float,
    recall: dict,
    intra: float,
    *,
    fisher: float = 1.0,
    lam: float = 0.0,
    knn_ua: float = 0.5,
    n_test: int = 40,
) -> dict:
    disc = {
        "intra": intra,
        "inter": 2.0,
        "intra_inter_ratio": intra / 2,
        "fisher": fisher,
        "silhouette": 0.1,
    }
    return {
        "n_runs": 1,
        "run_ids": [f"run-lam{lam}"],
        "configs": [{"corpus": "synthetic", "features": "mel", "lam": lam, "alpha": 0.5}],
        "folds": [{"fold": 0, "n_test": n_test, "best_epoch": 3}],
        "UA": {"mean": ua, "std_folds": 0.01},
        "WA": {"mean": ua + 0.1, "std_folds": None},
        "pooled": {"UA": ua, "WA": ua + 0.1, "recall": recall},
        "discriminability": {"train": disc, "test": disc, "knn": {"accuracy": 0.5, "ua": knn_ua}},
    }


def test_compare_table_in_percent_with_differences():
    comp = {
        "labels": ["angry", "sad"],
        "a": side(0.5, {"angry": 0.4, "sad": 0.6}, 1.0),
        "b": side(0.6, {"angry": 0.7, "sad": 0.5}, 0.5),
    }
    table = comparison.compare_table(comp).set_index("metric")
    assert table.loc["UA (mean over folds)", "B − A"] == pytest.approx(10.0)
    assert table.loc["test: intra-class distance (units of z)", "B − A"] == pytest.approx(-0.5)
    assert table.loc["5-NN UA of z, train → test ↑", "A"] == pytest.approx(50.0)
    # the same rows, in the same order, as `python -m ser_lab compare` prints
    from ser_lab.analysis.compare import compare_rows

    assert list(table.index) == [r.metric for r in compare_rows(comp)]
    assert table.loc["recall angry", "B"] == pytest.approx(70.0)
    assert table.loc["recall sad", "B − A"] == pytest.approx(-10.0)


def pair(intra_b: float, fisher_b: float, *, lam_a: float = 0.0, lam_b: float = 0.3) -> dict:
    return {
        "labels": ["angry", "sad"],
        "a": side(0.5, {"angry": 0.4, "sad": 0.6}, 1.0, fisher=2.0, lam=lam_a),
        "b": side(0.6, {"angry": 0.7, "sad": 0.5}, intra_b, fisher=fisher_b, lam=lam_b, knn_ua=0.4),
        "changed": {"n_shared": 40, "n_fixed": 6, "n_broken": 2, "both_right": 20, "both_wrong": 12},
    }


def test_reading_names_each_metric_and_its_direction():
    reading = comparison.read_comparison(pair(0.5, 3.0))
    assert reading.verdict == "supports" and reading.center_side == "B"
    assert "supports the paper's claim" in reading.headline
    text = "\n".join(reading.lines())
    assert "UA rose from 50.0 % to 60.0 % (+10.0 points): better, since higher is better" in text
    assert "test intra/inter ratio fell from 0.500 to 0.250 (-0.250): better, since lower is better" in text
    assert "test Fisher criterion rose from 2.000 to 3.000" in text
    assert "5-NN UA of z fell from 50.0 % to 40.0 % (-10.0 points): worse" in text
    assert "test silhouette unchanged at 0.100" in text
    assert [m.key for m in reading.moves] == list(comparison.READ_KEYS)
    facts = " ".join(reading.facts)
    assert "40 test utterances over 1 fold per side" in facts
    assert "B gets 6 right that A got wrong and 2 wrong" in facts
    assert "can be chance" in facts  # 40 test utterances are few


@pytest.mark.parametrize(
    ("intra_b", "fisher_b", "verdict", "says"),
    [
        (1.2, 1.5, "contradicts", "does NOT support"),
        (0.5, 1.5, "mixed", "does NOT clearly support"),
        (1.2, 3.0, "mixed", "does NOT clearly support"),
    ],
)
def test_reading_says_plainly_when_the_pair_does_not_support_the_claim(
    intra_b, fisher_b, verdict, says
):
    reading = comparison.read_comparison(pair(intra_b, fisher_b))
    assert reading.verdict == verdict and says in reading.headline


def test_reading_of_a_reversed_or_unrelated_pair():
    # A is the center-loss run: the claim is read center - baseline, so B tighter = against it
    reversed_ = comparison.read_comparison(pair(0.5, 3.0, lam_a=0.3, lam_b=0.0))
    assert reversed_.center_side == "A" and reversed_.verdict == "contradicts"
    both = comparison.read_comparison(pair(0.5, 3.0, lam_a=0.3, lam_b=0.3))
    assert both.verdict == "not tested" and "not a baseline" in both.headline
    # a run of another objective (its λ weighs another term) does not test the paper's claim
    arm = pair(0.5, 3.0)
    arm["b"]["configs"][0]["objective"] = "triplet"
    other = comparison.read_comparison(arm)
    assert other.verdict == "not tested" and other.center_side is None
    assert any("objective" in f for f in other.facts)  # named among the differing settings


def test_comparison_json_is_plain_json_without_nan():
    comp = pair(0.5, 3.0)
    comp["b"]["discriminability"]["test"]["silhouette"] = float("nan")
    out = comparison.comparison_json(comp)
    text = json.dumps(out, allow_nan=False)  # would raise on a NaN
    back = json.loads(text)
    rows = {r["key"]: r for r in back["rows"]}
    assert rows["UA"]["diff"] == pytest.approx(10.0) and rows["UA"]["better"] == "higher"
    assert rows["test_silhouette"]["B"] is None
    assert back["reading"]["verdict"] == "supports" and back["a"]["runs"] == ["run-lam0.0"]
    assert back["changed"]["n_fixed"] == 6


def test_curves_frame_averages_folds_and_adds_the_ratio():
    records = {
        "r1": [
            {"fold": 0, "epoch": 1, "intra_dist": 1.0, "inter_dist": 2.0, "center_loss": 0.1},
            {"fold": 1, "epoch": 1, "intra_dist": 3.0, "inter_dist": 4.0, "center_loss": 0.3},
            {"fold": 0, "epoch": 2, "intra_dist": 1.0, "inter_dist": 4.0, "val_UA": float("nan")},
        ]
    }
    frame = run_tables.curves_frame(records)
    ratio = frame[frame["metric"] == "intra_inter"].set_index("epoch")
    assert ratio.loc[1, "value"] == pytest.approx((0.5 + 0.75) / 2) and ratio.loc[1, "n_folds"] == 2
    assert ratio.loc[2, "value"] == pytest.approx(0.25) and ratio.loc[2, "group"] == "ratio"
    assert frame[frame["metric"] == "center_loss"]["value"].tolist() == pytest.approx([0.2])
    assert "val_UA" not in set(frame["metric"])  # NaN left out


def test_train_estimate_scales_with_epochs_and_folds():
    one = run_tables.train_estimate(200, 4, 1, 8, 0.01)
    assert one == pytest.approx(0.01 * 200 * 0.75 * 0.85 * 8)
    assert run_tables.train_estimate(200, 4, 4, 8, 0.01) == pytest.approx(4 * one)
    assert run_tables.train_estimate(200, 4, 1, 8, None) is None
    # refit: a second pass over train + validation (150 utterances) of at most epochs - patience
    with_refit = run_tables.train_estimate(200, 4, 1, 100, 0.01, refit=True, patience=20)
    assert with_refit == pytest.approx(run_tables.train_estimate(200, 4, 1, 100, 0.01) + 0.01 * 150 * 80)


# ----------------------------------------------------------------------------- colors and figures


def test_emotion_colors_are_fixed_and_distinct():
    assert (
        emotion_color("neutral") == "#8c8c8c" and emotion_color("Angry") == EMOTION_COLORS["angry"]
    )
    paper = [emotion_color(n) for n in ("neutral", "angry", "happy", "sad")]
    assert len(set(paper)) == 4
    unknown = emotion_color("contempt")
    assert unknown in FALLBACK_PALETTE and emotion_color("contempt") == unknown
    assert color_map(["sad", "contempt"]) == {"sad": EMOTION_COLORS["sad"], "contempt": unknown}
    assert hex_to_rgba("#ff0000", 0.5) == "rgba(255,0,0,0.5)"
    with pytest.raises(ValueError):
        hex_to_rgba("red", 1)


def test_map_figure_colors_classes_and_draws_the_clip():
    points = pd.DataFrame(
        {
            "utt_id": ["a", "b", "c"],
            "label": ["angry", "sad", "angry"],
            "pred": ["angry"] * 3,
            "split": ["train", "train", "test"],
            "x": [0.0, 1, 2],
            "y": [0.0, 1, 2],
        }
    )
    centers = np.array([[0.0, 0], [1, 1], [2, 2], [3, 3]])
    names = ["neutral", "angry", "happy", "sad"]
    fig = figures.map_figure(
        points, centers, names, clip_xy=np.array([0.5, 0.5]), clip_distances=[1, 2, 3, 4]
    )
    by_name = {t.name: t for t in fig.data if t.showlegend is not False}
    assert [t.name for t in fig.data].count("angry") == 2  # train and test traces, one legend entry
    assert by_name["angry"].marker.line.color == EMOTION_COLORS["angry"]
    assert list(by_name["class centers"].marker.color) == [emotion_color(n) for n in names]
    assert by_name["your clip"].marker.symbol == "star"
    # the distances are part of the centers' own labels (no separate labels to overlap them)
    assert not fig.layout.annotations
    texts = list(by_name["class centers"].text)
    assert texts == [f"<b>{n}</b> · {d:.2f}" for n, d in zip(names, [1, 2, 3, 4])]
    # each label on the side of its center that faces away from the clip
    positions = list(by_name["class centers"].textposition)
    assert positions[0] in ("bottom center", "middle left") and positions[3] in (
        "top center",
        "middle right",
    )
    assert fig.layout.yaxis.scaleanchor == "x"


def test_file_names_of_known_corpora_give_the_true_label():
    assert explore.label_from_file_name("03a01Wa.wav") == ("emodb", "angry")
    assert explore.label_from_file_name("/x/16b10Tb.wav") == ("emodb", "sad")
    assert explore.label_from_file_name("03-01-03-01-01-01-12.wav") == ("ravdess", "happy")
    assert explore.label_from_file_name("1001_DFA_NEU_XX.wav") == ("cremad", "neutral")
    assert explore.label_from_file_name("my clip.wav") is None
    assert explore.label_from_file_name("03a01Za.wav") is None  # no such EmoDB letter


def test_clip_context_warns_about_clips_from_elsewhere():
    on_synth = explore.clip_context("03a01Wa.wav", "upload", "synthetic")
    assert on_synth.true_label == "angry" and on_synth.origin == "emodb"
    assert "SYNTHETIC" in on_synth.warning and "real speech" in on_synth.warning
    same = explore.clip_context("03a01Wa.wav", "upload", "emodb")
    assert same.true_label == "angry" and same.warning is None
    other = explore.clip_context("1001_DFA_SAD_XX.wav", "upload", "emodb")
    assert other.true_label == "sad" and "not from the run's training corpus (emodb)" in other.warning
    rec = explore.clip_context("your recording", "record", "synthetic")
    assert rec.true_label is None and "SYNTHETIC" in rec.warning
    assert "not from the run's training corpus" in explore.clip_context(None, "record", "emodb").warning
    labels = {"spk01_angry_001": "angry"}
    test = explore.clip_context("spk01_angry_001", "test", "synthetic", labels)
    assert test.true_label == "angry" and test.warning is None and "held-out" in test.how
    up = explore.clip_context("spk01_angry_001.wav", "upload", "synthetic", labels)
    assert up.true_label == "angry" and up.warning is None
    unknown = explore.clip_context("clip.wav", "upload", "synthetic", labels)
    assert unknown.true_label is None and "SYNTHETIC" in unknown.warning
    assert explore.clip_context("clip.wav", "upload", "emodb").warning is None


def test_explore_defaults_to_the_best_center_loss_run_on_the_corpus_in_use(tmp_path):
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run
    from ser_lab.runs import RunStore

    store = RunStore(tmp_path)
    ids = {}

    def run(
        name: str, lam: float, ua: float, size: str, demo: bool = False, objective: str = "center"
    ) -> RunSummary:
        cfg = TrainConfig(corpus_options={"size": size}, lam=lam, objective=objective, n_folds=2)
        ids[name] = new_run(cfg, store, name=name).run_id
        return RunSummary(
            ids[name], name, "done", lam=lam, UA=ua, is_demo=demo, objective=objective
        )

    tiny = app_corpus.CorpusChoice(options={"size": "tiny"})
    rows = [
        run("new-weak", 0.3, 0.27, "tiny"),
        run("old-good", 0.3, 0.60, "tiny"),
        run("baseline", 0.0, 0.90, "tiny"),
        run("demo", 0.3, 0.50, "medium", demo=True),
        run("other", 0.3, 0.95, "small"),
        run("triplet", 0.3, 0.99, "tiny", objective="triplet"),  # not a center-loss run
    ]
    assert explore.default_explore_run(store, rows, tiny) == ids["old-good"]  # the best, not newest
    default = app_corpus.CorpusChoice(options={"size": "default"})
    assert explore.default_explore_run(store, rows, default) == ids["demo"]  # none on it: the demo
    assert explore.default_explore_run(store, rows[2:3], default) == ids["baseline"]
    assert explore.default_explore_run(store, [], default) is None


def test_speaker_axis_is_categorical():
    by_speaker = pd.DataFrame({"speaker": ["03", "16", "08"], "label": ["sad"] * 3, "count": [1, 2, 3]})
    fig = figures.speaker_counts_figure(by_speaker, ["sad"])
    assert fig.layout.xaxis.type == "category"
    assert list(fig.layout.xaxis.categoryarray) == ["03", "08", "16"]
    assert list(fig.data[0].x) == ["03", "16", "08"]  # the ids as written, not 3, 16, 8


def test_toy_replay_button_is_clear_of_the_legend():
    fig = figures.toy_figure(train_toy(ToyConfig(steps=5, frames=3)))
    button = fig.layout.updatemenus[0]
    assert fig.layout.legend.y >= 1.0 and button.y <= 0.0  # legend above, button below the plot


def test_quick_start_text_follows_the_preset():
    from ser_lab.experiments import launcher

    text = run_tables.quick_start_text({**launcher.QUICK_START, "epochs": 7, "lr": 0.002})
    assert "7 epochs" in text and "learning rate 0.002" in text
    assert f"λ = {launcher.QUICK_START_LAMBDA:g}" in text and "Compare" in text


def test_confusion_difference_is_centered_on_zero():
    fig = figures.confusion_figure([[1, -3], [2, 0]], ["a", "b"], "B − A", diff=True)
    heat = fig.data[0]
    assert heat.zmid == 0 and heat.zmin == -3 and heat.zmax == 3
    assert heat.text[0][1] == "-3"


def test_waveform_is_an_envelope():
    x = np.sin(np.arange(16000 * 14) / 10.0).astype(np.float32)
    fig = figures.waveform_figure(x)
    assert len(fig.data[0].x) == 2000
    assert max(fig.data[0].y) == pytest.approx(1.0, abs=1e-3)


# ----------------------------------------------------------------------------- toy


def test_toy_center_loss_makes_classes_compact():
    base = train_toy(ToyConfig(lam=0.0, steps=200, frames=5))
    center = train_toy(ToyConfig(lam=0.5, steps=200, frames=5))
    assert [f.step for f in base.frames] == [0, 50, 100, 150, 200]
    assert base.final.z.shape == (4 * 120, 2) and base.final.centers.shape == (4, 2)
    ratio_base = np.divide(*base.intra_inter())
    ratio_center = np.divide(*center.intra_inter())
    assert ratio_center < 0.8 * ratio_base
    assert center.final.accuracy > 0.6
    fig = figures.toy_figure(center)
    assert len(fig.frames) == 5


def test_toy_checks_its_settings():
    with pytest.raises(ConfigError, match="lambda"):
        train_toy(ToyConfig(lam=-1))
    with pytest.raises(ConfigError, match="alpha"):
        train_toy(ToyConfig(alpha=2))


# ----------------------------------------------------------------------------- corpus check



def test_corpus_fingerprint_check_spots_a_regenerated_corpus(app_store, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(app_store.cache))
    run = app_store.run(app_store.center)
    manifest = app_corpus.CorpusChoice.from_run(run).load()
    assert explore.corpus_matches(run, 0, manifest)
    changed = list(manifest.utterances)
    changed[3] = replace(changed[3], duration=changed[3].duration + 0.5)
    assert not explore.corpus_matches(run, 0, replace(manifest, utterances=changed))
    assert not explore.corpus_matches(run, 0, manifest.subset(range(1, len(manifest))))  # one missing


def test_scale_free_maps_hide_no_rescaling(app_store):

    a, b = app_store.run(app_store.baseline), app_store.run(app_store.center)
    map_a, map_b = maps.project_fold(a, 0, "pca"), maps.project_fold(b, 0, "pca")
    pair = comparison.compare_maps(map_a, map_b, normalised=True)
    assert pair.rotation.scale == 1.0  # rigid: no scale inside the alignment
    # each panel in units of its own mean inter-center distance
    assert comparison.map_unit(pair.a) == pytest.approx(1.0) and comparison.map_unit(pair.b) == pytest.approx(1.0)
    assert pair.unit_a == pytest.approx(comparison.map_unit(map_a))
    assert pair.unit_b == pytest.approx(comparison.map_unit(map_b))
    raw = comparison.compare_maps(map_a, map_b, normalised=False)
    np.testing.assert_allclose(raw.a.xy, map_a.xy)
    # raw: B keeps its own spread (distances between its points are those of its own map)
    d_raw = np.linalg.norm(raw.b.xy[0] - raw.b.xy[1])
    assert d_raw == pytest.approx(np.linalg.norm(map_b.xy[0] - map_b.xy[1]))
    # new points are placed with the same scale and turn as the drawn ones
    z = b.load_embeddings(0)["z"][:3]
    np.testing.assert_allclose(pair.b.transform(z)[0], pair.b.xy[0], atol=1e-6)
    assert "Scale-free" in pair.describe() and "Raw units" in raw.describe()


def test_the_animation_ends_on_the_main_map(app_store):

    a, b = app_store.run(app_store.baseline), app_store.run(app_store.center)
    pair = comparison.compare_maps(maps.project_fold(a, 0, "pca"), maps.project_fold(b, 0, "pca"))
    frames = comparison.frames_on_map(b, 0, pair.b, 2, ["train", "test"])
    assert [f["key"] for f in frames] == [str(e) for e in b.list_snapshots(0)] + ["kept"]
    kept = frames[-1]
    assert kept["label"] == "kept" and kept["epoch"] == 2
    index = {u: i for i, u in enumerate(pair.b.utt_ids.astype(str))}
    pick = [index[u] for u in kept["utt_ids"]]
    np.testing.assert_allclose(kept["xy"], pair.b.xy[pick])
    np.testing.assert_allclose(kept["centers_xy"], pair.b.centers_xy)
    fig = figures.snapshot_figure(frames, None, pair.b.label_names, ["B"])
    assert fig.layout.sliders[0].steps[-1].label == "kept"
    assert fig.frames[-1].name == "kept"
    # the figure opens on the kept frame: its first trace holds the kept points of class 0
    first = np.asarray(fig.data[0].x, dtype=float)
    cls0 = kept["labels"] == 0
    np.testing.assert_allclose(np.sort(first), np.sort(kept["xy"][cls0, 0]))
    only_test = comparison.frames_on_map(b, 0, pair.b, 2, ["test"])
    assert set(only_test[0]["split"]) == {"test"}


def test_cli_compare_json(app_store, capsys):
    from ser_lab.cli import main

    code = main(
        ["--store", str(app_store.store), "compare", app_store.baseline, app_store.center, "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"]["runs"] == [app_store.baseline] and out["b"]["runs"] == [app_store.center]
    rows = {r["key"]: r for r in out["rows"]}
    results = app_store.run(app_store.center).read_results()
    assert rows["UA"]["B"] == pytest.approx(100 * results["mean"]["UA"])
    assert {"test_intra_inter", "test_fisher", "knn_UA"} <= set(rows)
    assert out["reading"]["verdict"] in ("supports", "contradicts", "mixed")
    assert out["reading"]["center_side"] == "B"


def test_cli_compare_three_runs(app_store, capsys):
    from ser_lab.cli import main

    base, center = app_store.baseline, app_store.center
    assert main(["--store", str(app_store.store), "compare", base, center, base]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"A: {base}", f"B: {center}", f"C: {base}"]
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "A", "B", "C", "B", "-", "A", "C", "-", "A"]
    ua = next(line for line in lines if line.startswith("UA (mean over folds)")).split()
    assert ua[-1] == "+0.00"  # C is A again
    assert lines[-1].startswith("test predictions (C against A, ") and "fixed by C 0, broken by C 0" in lines[-1]

    assert main(["--store", str(app_store.store), "compare", base, center, base, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"]["C"]["runs"] == [base]
    rows = {r["key"]: r for r in out["rows"]}
    assert rows["UA"]["C"] == rows["UA"]["A"] and rows["UA"]["C − A"] == 0
    assert out["changed_against_A"]["C"]["n_fixed"] == 0


def test_cli_compare_refuses_more_than_four_runs(app_store, capsys):
    from ser_lab.cli import main

    ids = [app_store.baseline, app_store.center] * 3
    assert main(["--store", str(app_store.store), "compare", *ids[:5]]) == 2
    assert "a comparison takes 2 to 4 runs, got 5" in capsys.readouterr().err


def test_reading_flags_runs_at_chance_level():
    comp = pair(0.5, 3.0)
    comp["a"]["UA"]["mean"] = 0.26  # 2 classes: chance is 50 %, so 26 % is below chance...
    comp["labels"] = ["angry", "sad", "happy", "neutral"]  # ...and with 4 classes it is chance
    comp["a"]["pooled"]["recall"] = comp["b"]["pooled"]["recall"] = {}
    reading = comparison.read_comparison(comp)
    assert reading.facts[0].startswith("A is at chance level (UA within 5 points of 25 %")
    assert "read it with care" in reading.headline
    learnt = pair(0.5, 3.0)  # 2 classes: chance is 50 %
    learnt["a"]["UA"]["mean"], learnt["b"]["UA"]["mean"] = 0.7, 0.8
    assert not any("chance level" in f for f in comparison.read_comparison(learnt).facts)
    assert any("A is at chance level" in f for f in comparison.read_comparison(pair(0.5, 3.0)).facts)
