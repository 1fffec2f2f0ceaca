"""The app's non-Streamlit helpers: settings, run tables, aggregations, colors, figures, toy."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ser_lab import app_support as sup
from ser_lab import figures
from ser_lab.colors import EMOTION_COLORS, FALLBACK_PALETTE, color_map, emotion_color, hex_to_rgba
from ser_lab.errors import ConfigError, CorpusError
from ser_lab.runs import RunSummary
from ser_lab.toy import ToyConfig, train_toy

# ----------------------------------------------------------------------------- settings


def test_corpus_choice_round_trip_and_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path))
    assert sup.load_corpus_choice() == sup.CorpusChoice()  # nothing saved: the built-in corpus
    choice = sup.CorpusChoice("emodb", str(tmp_path), "all", {})
    sup.save_corpus_choice(choice)
    assert sup.load_corpus_choice() == choice
    assert json.loads(sup.settings_path().read_text())["corpus"]["name"] == "emodb"
    with pytest.raises(CorpusError, match="needs a root"):
        sup.CorpusChoice("emodb", None).validate()
    with pytest.raises(ConfigError, match="unknown corpus"):
        sup.CorpusChoice("nope").validate()
    sup.settings_path().write_text("{broken")
    assert sup.load_corpus_choice() == sup.CorpusChoice()  # unreadable settings: the default


def test_session_corpus_comes_from_the_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path))
    sup.save_corpus_choice(sup.CorpusChoice(options={"size": "tiny"}))
    state: dict = {}
    assert sup.current_corpus(state).options == {"size": "tiny"}
    assert state[sup.SESSION_KEY]["options"] == {"size": "tiny"}
    sup.set_corpus(state, sup.CorpusChoice(options={"size": "small"}))
    assert sup.current_corpus(state).options == {"size": "small"}
    assert sup.load_corpus_choice().options == {"size": "small"}  # new tabs get it too


def test_corpus_choice_labels_synthetic_clearly():
    assert "SYNTHETIC" in sup.CorpusChoice().label()
    fields = sup.CorpusChoice(options={"size": "tiny"}).train_fields()
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
    assert sup.default_pair(rows) == ("b-new", "c-old")  # c-emodb has no emodb baseline
    rows.append(row("b-emodb", 0.0, corpus="emodb"))
    assert sup.default_pair(rows) == ("b-emodb", "c-emodb")
    assert sup.default_pair([row("x", 0.3), row("y", 0.5)]) == ("y", "x")
    assert sup.default_pair([row("x", 0.3)]) == ("x", None)
    assert sup.default_pair([]) == (None, None)


def test_runs_frame_and_labels():
    rows = [
        row("a", 0.0, ua=0.6123, is_demo=True),
        row("b", None, state="broken", problem="config.json missing"),
    ]
    frame = sup.runs_frame(rows)
    assert list(frame["run"]) == ["a", "b"]
    assert frame.loc[0, "UA %"] == 61.23 and frame.loc[0, "demo"]
    assert frame.loc[1, "problem"] == "config.json missing" and pd.isna(frame.loc[1, "UA %"])
    assert sup.run_label(rows[0]).startswith("[demo] a · baseline")
    assert "λ=0.3, α=0.5" in sup.run_label(row("c", 0.3))


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
    assert sup.progress_text(status) == "fold 0 (1 to train) · epoch 3/8 · 38 % · ETA 1 min 20 s"
    assert "estimating" in sup.progress_text({**status, "eta_s": None})
    assert "ETA" not in sup.progress_text({**status, "state": "done"})
    assert sup.format_duration(59.6) == "1 min 00 s" and sup.format_duration(7300) == "2 h 01 min"
    assert sup.format_duration(None) == "–"


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
    frame = sup.metrics_frame(records)
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


def test_lambda_curve_keeps_the_baseline_whatever_its_alpha():
    curve = sup.sensitivity(sweep_rows(), "lam", fixed=0.5)
    assert list(curve["lam"]) == [0.0, 0.3, 1.0]
    assert curve["UA_mean"].tolist() == pytest.approx([55.0, 75.0, 30.0])
    # the sample std (ddof 1) of ser_lab.stats; a single unit has none
    assert curve["UA_std"].tolist()[:2] == pytest.approx([math.sqrt(50), math.sqrt(50)])
    assert math.isnan(curve["UA_std"].tolist()[2])
    assert curve["n"].tolist() == [2, 2, 1]
    curve = sup.sensitivity(sweep_rows(), "lam", fixed=0.9)
    assert list(curve["lam"]) == [0.0, 0.3]


def test_alpha_curve_at_one_lambda():
    curve = sup.sensitivity(sweep_rows(), "alpha", fixed=0.3)
    assert list(curve["alpha"]) == [0.5, 0.9]
    assert curve["WA_mean"].tolist() == pytest.approx([85.0, 40.0])
    assert sup.sensitivity(sweep_rows().iloc[:0], "alpha").empty
    with pytest.raises(ConfigError):
        sup.sensitivity(sweep_rows(), "seed")


def test_parse_values():
    assert sup.parse_values("0, 0.1; 0.3,", "λ") == [0.0, 0.1, 0.3]
    assert sup.parse_values("1,2", "seeds", integer=True) == [1, 2]
    with pytest.raises(ConfigError, match="seeds: expected whole numbers"):
        sup.parse_values("1.5", "seeds", integer=True)
    with pytest.raises(ConfigError, match="at least one"):
        sup.parse_values(" , ", "α")


def test_sweep_options_newest_first_from_runs_and_manifests(tmp_path):
    from ser_lab.runs import RunStore
    from ser_lab.sweep import MANIFEST_VERSION, sweeps_dir

    store = RunStore(tmp_path)
    rows = [
        row("a", 0.3, sweep_id="s1", created="2025-01-01T10:00:00"),
        row("b", 0.3, sweep_id="s2", created="2025-01-02T10:00:00"),
        row("c", 0.3, sweep_id="s1", created="2025-01-01T11:00:00"),
        row("d", 0.0),
    ]
    assert sup.sweep_options(store, rows) == ["s2", "s1"]
    sweeps_dir(store).mkdir()
    manifest = {
        "format_version": MANIFEST_VERSION,
        "sweep_id": "s3",
        "created": "2025-01-03T09:00:00",
        "points": [{"key": "k", "state": "pending"}, {"key": "l", "state": "done"}],
    }
    (sweeps_dir(store) / "s3.json").write_text(json.dumps(manifest))
    assert sup.sweep_options(store, rows) == ["s3", "s2", "s1"]  # no run folder yet, still listed
    assert [p["key"] for p in sup.sweep_points(store, "s3")] == ["k", "l"]
    assert sup.sweep_points(store, "s1") == []


# ----------------------------------------------------------------------------- comparison helpers


def side(ua: float, recall: dict, intra: float) -> dict:
    disc = {
        "intra": intra,
        "inter": 2.0,
        "intra_inter_ratio": intra / 2,
        "fisher": 1.0,
        "silhouette": 0.1,
    }
    return {
        "n_runs": 1,
        "UA": {"mean": ua, "std_folds": 0.01},
        "WA": {"mean": ua + 0.1, "std_folds": None},
        "pooled": {"UA": ua, "WA": ua + 0.1, "recall": recall},
        "discriminability": {"train": disc, "test": disc, "knn": {"accuracy": 0.5, "ua": 0.5}},
    }


def test_compare_table_in_percent_with_differences():
    comp = {
        "labels": ["angry", "sad"],
        "a": side(0.5, {"angry": 0.4, "sad": 0.6}, 1.0),
        "b": side(0.6, {"angry": 0.7, "sad": 0.5}, 0.5),
    }
    table = sup.compare_table(comp).set_index("metric")
    assert table.loc["UA (mean over folds)", "B − A"] == pytest.approx(10.0)
    assert table.loc["test: intra-class distance ↓", "B − A"] == pytest.approx(-0.5)
    # the same rows, in the same order, as `python -m ser_lab compare` prints
    from ser_lab.analysis import compare_rows

    assert list(table.index) == [r.metric for r in compare_rows(comp)]
    assert table.loc["recall angry", "B"] == pytest.approx(70.0)
    assert table.loc["recall sad", "B − A"] == pytest.approx(-10.0)


def test_snapshot_frames_of_b_are_turned_onto_a():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(30, 2))
    ids = np.array([f"u{i}" for i in range(30)])
    turn = np.array([[0.0, -1.0], [-1.0, 0.0]])  # a reflection
    frame = {
        "epoch": 1,
        "xy": xy,
        "utt_ids": ids,
        "centers_xy": xy[:4],
        "labels": np.zeros(30, int),
        "split": ids,
    }
    moved = {**frame, "xy": 3 * xy @ turn + 5, "centers_xy": 3 * xy[:4] @ turn + 5}
    aligned = sup.align_snapshot_frames([frame], [moved])
    assert np.allclose(aligned[0]["xy"], xy, atol=1e-6)
    assert np.allclose(aligned[0]["centers_xy"], xy[:4], atol=1e-6)


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
    assert len(fig.layout.annotations) == 4  # one distance per center
    assert fig.layout.yaxis.scaleanchor == "x"


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
    manifest = sup.CorpusChoice.from_run(run).load()
    assert sup.corpus_matches(run, 0, manifest)
    changed = list(manifest.utterances)
    changed[3] = replace(changed[3], duration=changed[3].duration + 0.5)
    assert not sup.corpus_matches(run, 0, replace(manifest, utterances=changed))
    assert not sup.corpus_matches(run, 0, manifest.subset(range(1, len(manifest))))  # one missing
