"""Tiny runs of the performance benchmarks' core functions: they run, return their JSON keys,
and the quantities they report are consistent (no timing asserts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import import_bench


@pytest.fixture(scope="module")
def bench_modules():
    return {name: import_bench(name) for name in ("train_speed", "data_loading", "gpu_train", "scaling", "layout")}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_iemocap_like_lengths_stay_in_range_and_have_a_long_tail(bench_modules):
    ts = bench_modules["train_speed"]
    seconds = ts.iemocap_like_seconds(5000, np.random.default_rng(0))
    assert seconds.min() >= 1.0 and seconds.max() <= 14.0
    assert 4.0 < seconds.mean() < 5.0  # IEMOCAP's mean is about 4.5 s
    assert np.median(seconds) < seconds.mean()  # right-skewed
    assert (seconds > 10).mean() > 0.02  # a tail of long utterances
    assert ts.seconds_to_frames(np.array([1.0, 14.0])).tolist() == [101, 1401]


def test_bucketing_wastes_less_compute_on_padding_than_plain_batches(bench_modules):
    ts = bench_modules["train_speed"]
    from ser_lab.learn.trainer import make_batches

    lengths = ts.seconds_to_frames(ts.iemocap_like_seconds(2000, np.random.default_rng(1)))
    bucketed = ts.padding_stats(lengths, make_batches(lengths, 32, np.random.default_rng(0)))
    plain = ts.padding_stats(lengths, ts.plain_batches(len(lengths), 32, np.random.default_rng(0)))
    assert bucketed["real_frames"] == plain["real_frames"] == int(lengths.sum())
    assert bucketed["useful_fraction"] > 0.9 > 0.5 > plain["useful_fraction"]


def test_channels_last_probe_gives_the_same_z(bench_modules):
    ts = bench_modules["train_speed"]
    from ser_lab.learn.model import CnnBiGru, ModelConfig

    torch.manual_seed(0)
    out = ts.probe_variants(CnnBiGru(ModelConfig(n_bins=ts.N_BINS)), repeats=1, frames=60)
    assert set(out["step_s"]) == {"current", "channels_last"}
    assert out["max_abs_z_diff_vs_current"]["current"] == 0.0
    assert out["max_abs_z_diff_vs_current"]["channels_last"] < 1e-5


def test_data_loading_extrapolation_pays_loading_once(bench_modules):
    dl = bench_modules["data_loading"]
    measured = {"total_s": 100.0, "load_data_s": 2.0, "train_fold_s": 90.0, "finish_fold_s": 10.0,
                "prepare_fold_s": 1.0, "epochs_s": 80.0, "epochs_run": 2,
                "pad_batch_epochs_s": 0.4, "pad_batch_finish_s": 0.1}
    ext = dl.extrapolate(measured, folds_measured=1, folds=5, epochs=20)
    # once: 100 - 90 - 1 = 9 s; per fold 11 s; per epoch 40 s
    assert ext["total_s"] == pytest.approx(9 + 5 * 11 + 100 * 40)
    assert ext["pad_batch_s"] == pytest.approx(5 * 0.1 + 100 * 0.2)
    assert ext["loading_fraction"] == pytest.approx((2 + 20.5) / 4064, rel=1e-3)
    assert ext["meets_5_percent"] is True


def test_data_loading_instruments_a_real_run(bench_modules, tmp_path, monkeypatch):
    dl = bench_modules["data_loading"]
    from ser_lab.learn import trainer
    from tests.fake_corpora import write_wav

    speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    for i, spk in enumerate(speakers):
        for j, letter in enumerate("WNFT"):
            write_wav(tmp_path / "emodb" / "wav" / f"{spk}a0{j + 1}{letter}a.wav", seconds=0.8,
                      seed=10 * i + j)
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "runs"))
    original = trainer.pad_batch
    result = dl.run(tmp_path / "emodb", folds=1, epochs=1, threads=1, cache=tmp_path / "cache")
    assert trainer.pad_batch is original  # the timers are removed again
    measured = result["measured"]
    assert result["corpus"]["utterances"] == 40
    assert measured["epochs_run"] == 1 and measured["pad_batch_calls"] > 0
    assert 0 < measured["load_data_s"] < measured["total_s"]
    assert 0 < measured["loading_fraction"] < 1
    for key in ("extrapolated_5x20", "extrapolated_5x30"):
        assert result[key]["label"].startswith("EXTRAPOLATED")
        assert result[key]["total_s"] > measured["total_s"]
    assert isinstance(result["meets_5_percent"], bool)


def test_gpu_bench_runs_on_cpu_and_says_it_is_not_a_gpu_result(bench_modules):
    gt = bench_modules["gpu_train"]
    result = gt.run("cpu", quick=True, repeats=1, profile_batches=2)
    assert result["is_gpu_result"] is False and result["quick"] is True
    for key in ("train_utt_per_s", "trainer_path_utt_per_s", "predict_utt_per_s",
                "gpu_busy_share", "gpu_idle_share", "full_run_estimate_iemocap"):
        assert key in result
    est = result["full_run_estimate_iemocap"]
    assert est["total_s"] == pytest.approx(2 * 5 * est["per_fold_s"], rel=1e-3)


def test_gpu_resident_batches_match_pad_batch(bench_modules):
    gt = bench_modules["gpu_train"]
    from ser_lab.learn.trainer import pad_batch

    lengths = np.array([30, 55, 41, 70])
    data = gt.ResidentData(lengths, torch.device("cpu"), seed=0)
    host = data.host_copy()
    idx = np.array([2, 0, 3])
    x, lens = data.batch(idx)
    x_ref, lens_ref = pad_batch([host[i] for i in idx])
    assert torch.equal(lens, lens_ref) and torch.equal(x, x_ref)
    masked = gt.device_masks(x, lens, torch.Generator().manual_seed(0))
    assert masked.shape == x.shape
    zeroed = (masked == 0) & (x != 0)
    assert zeroed.any()  # some bands or spans are masked ...
    assert (masked[x != 0] != 0).float().mean() > 0.5  # ... but most of each utterance is kept


def test_scaling_helpers(bench_modules):
    sc = bench_modules["scaling"]
    lin = sc.linear_check([1, 2, 4], [3.0, 6.0, 12.0])
    assert lin["loglog_slope"] == pytest.approx(1.0) and lin["per_unit_last_over_first"] == 1.0
    out: dict = {}
    with sc.peak_rss(out, "peak"):
        block = np.ones(20_000_000)  # 160 MB
        block.sum()
    assert out["peak"] is None or out["peak"] > 100
    z, labels = sc.clustered_z(100, seed=0)
    assert z.shape == (100, 64) and set(labels) <= {0, 1, 2, 3}
    ext = sc.extraction([5, 20], extract_max=5, seconds=[0.5, 1.0], seed=0)
    assert [r["extrapolated"] for r in ext["by_size"]] == [False, True]
    assert ext["by_size"][0]["features_mb"] > 0


def test_recipe_choice_pairs_validation_scores_and_never_reads_test_folds(tmp_path, monkeypatch, reliability_cache):
    """Two recipes of the same seeds: paired over (seed, fold) on the kept epoch's validation UA."""
    rc = import_bench("recipe_choice")
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run, train_run
    from ser_lab.runs import RunStore

    monkeypatch.setenv("SER_LAB_CACHE", str(reliability_cache))
    store = RunStore(tmp_path / "runs")
    for augment, tag in ((True, "e2p0"), (False, "e2p0-noaug")):
        cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=2, patience=0,
                          n_folds=2, workers=1, seed=0, augment=augment)
        run = new_run(cfg, store, name=f"bench-synthetic-tiny-baseline-mel-{tag}-s0")
        with run.lock():
            train_run(run)
    common = import_bench("common")  # the same runs as run cards, as a later sitting has them
    cards = tmp_path / "cards"
    for row in store.list():
        folds = [common.make_fold_card(store.get(row.run_id), k, trained_now=True) for k in (0, 1)]
        common.atomic_write_json(cards / f"{row.name}.json", common.card_from_folds(row.name, folds, None))
    from ser_lab import runs as runs_module

    def no_test_folds(self, *args, **kwargs):
        raise AssertionError("recipe_choice read a fold's embeddings (its test part)")

    monkeypatch.setattr(runs_module.Run, "load_embeddings", no_test_folds)
    result = rc.compare(store, "synthetic-tiny", "mel", ["baseline"], ["e2p0", "e2p0-noaug"], [0])
    rows = result["arms"]["baseline"]
    assert rows["e2p0"]["n_units"] == rows["e2p0-noaug"]["n_units"] == 2
    runs = {s.name: store.get(s.run_id) for s in store.list()}
    a = rc.validation_units(runs["bench-synthetic-tiny-baseline-mel-e2p0-s0"])
    b = rc.validation_units(runs["bench-synthetic-tiny-baseline-mel-e2p0-noaug-s0"])
    d = rows["e2p0-noaug"]["paired_vs_first"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(np.mean([b[u] - a[u] for u in a]))
    assert "| baseline | e2p0-noaug | 2 |" in rc.markdown(result)
    from_cards = rc.compare(RunStore(tmp_path / "empty"), "synthetic-tiny", "mel", ["baseline"],
                            ["e2p0", "e2p0-noaug"], [0], cards)
    assert from_cards == result
    missing = rc.compare(store, "synthetic-tiny", "mel", ["baseline"], ["e2p0", "e9p9"], [0])
    assert missing["arms"]["baseline"]["e9p9"]["missing"] == ["bench-synthetic-tiny-baseline-mel-e9p9-s0"]


@pytest.mark.parametrize("augment", ["on", "off"])
def test_recipe_choice_names_the_sensitivity_grids_runs_as_the_grid_does(augment):
    """`--source sensitivity` reads the λ = 0 and λ = 0.3 / α = 0.5 runs of bench/sensitivity.py
    by name: the names must be the ones its sweep gives them, for either recipe."""
    rc, sens = import_bench("recipe_choice"), import_bench("sensitivity")
    from ser_lab.experiments.sweep import expand, point_key, run_name

    spec = sens.make_spec(sens.parse_args(["--seeds", "0", "1", "--augment", augment]))
    grid = {(c.lam, c.alpha, c.seed): run_name(spec.sweep_id, point_key(c, spec.axes())) for c in expand(spec)}
    recipe = spec.sweep_id.removeprefix("sens-emodb-")
    for arm, (lam, alpha) in rc.ARMS.items():
        for seed in (0, 1):
            assert rc.bench_run_name("sensitivity", "emodb", arm, "mel", recipe, seed) == grid[(lam, alpha, seed)]
    assert rc.bench_run_name("reproduce", "emodb", "center", "mel", recipe, 2) == f"bench-emodb-center-mel-{recipe}-s2"


@pytest.mark.parametrize(
    ("argv", "stem"),
    [
        ([], "emodb_sensitivity"),
        (["--seeds", "0"], "emodb_sensitivity_part"),
        (["--alphas", "0.5"], "emodb_sensitivity_part"),
        (["--fold", "0"], "emodb_sensitivity_part"),
        (["--augment", "off", "--lambdas", "0", "0.3", "--alphas", "0.5"],
         "emodb_sensitivity_e100p20-noaug-speaker_part"),
        (["--normalise", "corpus"], "emodb_sensitivity_e100p20"),
        (["--lr-schedule", "plateau", "--lambdas", "0", "0.3", "--alphas", "0.5"],
         "emodb_sensitivity_e100p20-plateau5-speaker_part"),
        (["--quick"], "emodb_sensitivity_quick"),
    ],
)
def test_only_the_whole_default_grid_writes_the_sensitivity_table(argv, stem):
    """A part of the grid, or another recipe, never overwrites bench/results/emodb_sensitivity.json."""
    sens = import_bench("sensitivity")
    assert sens.results_stem(sens.parse_args(argv)) == stem


def test_layout_bench_trains_both_layouts_on_the_same_fold(bench_modules, tmp_path):
    from ser_lab.runs import RunStore

    corpus = bench_modules["train_speed"].synthetic_corpus(16, seed=0, length_scale=0.3)
    out = bench_modules["layout"].measure(corpus, epochs=1, repeats=1, store=RunStore(tmp_path))
    assert out["train_utterances"] == 16 and out["n_bins"] == 128
    assert out["default"]["utt_per_s"] > 0 and out["channels_last"]["utt_per_s"] > 0
    assert out["speedup"] == pytest.approx(out["channels_last"]["utt_per_s"] / out["default"]["utt_per_s"], rel=1e-2)
    assert out["max_rel_diff_total_loss_by_epoch"][0] < 1e-3  # float rounding, not another training
    store = RunStore(tmp_path)
    layouts = [store.get(r.run_id).config["train"]["channels_last"] for r in store.list()]
    assert sorted(layouts) == [False, True]


def test_speaker_subset_lists_only_the_chosen_speakers_and_reads_back_as_a_csv_corpus(tmp_path):
    from ser_lab.data.corpora import load_corpus
    from ser_lab.errors import ConfigError
    from tests.fake_corpora import make_emodb

    subset = import_bench("speaker_subset")
    root = make_emodb(tmp_path / "emodb")
    out = tmp_path / "sub" / "only08.csv"
    subset.main(["--corpus", "emodb", "--root", str(root), "--speakers", "08", "--out", str(out)])
    manifest = load_corpus("csv", out)
    assert {u.speaker for u in manifest.utterances} == {"08"}
    assert sorted(u.label for u in manifest.utterances) == ["angry", "happy", "neutral", "sad"]
    original = {u.path for u in load_corpus("emodb", root).utterances if u.speaker == "08"}
    assert {u.path for u in manifest.utterances} == original  # the same files, read in place
    with pytest.raises(ConfigError, match="no speaker 99"):
        subset.subset_rows("emodb", str(root), ["08", "99"])
