"""Sweeps: expanding a spec, the CLI, the local backend, and resuming an interrupted sweep."""

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from ser_lab.cli import add_sweep_commands
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, RunError
from ser_lab.experiments.sweep import (
    SweepSpec,
    expand,
    manifest_path,
    point_key,
    read_manifest,
    run_sweep,
    sweep_lock,
    sweep_runs,
)
from ser_lab.learn.trainer import new_run
from ser_lab.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "corpus": "synthetic",
    "corpus_options": {"size": "tiny"},
    "epochs": 1,
    "n_folds": 2,
    "folds": [0],
    "workers": 1,
}


def parser() -> argparse.ArgumentParser:
    """The CLI's global --store plus the sub-commands this module registers."""
    p = argparse.ArgumentParser(prog="python -m ser_lab")
    p.add_argument("--store", default=None)
    add_sweep_commands(p.add_subparsers(dest="command", required=True))
    return p


def cli(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


# ----------------------------------------------------------------------------- expanding


def test_grid_times_seeds_share_one_sweep_id():
    spec = SweepSpec(
        base={"epochs": 3}, grid={"lam": [0, 0.1, 0.3], "alpha": [0.5]}, seeds=[0, 1], sweep_id="g1"
    )
    configs = expand(spec)
    assert len(configs) == 6
    assert all(isinstance(c, TrainConfig) and c.sweep_id == "g1" and c.epochs == 3 for c in configs)
    assert [(c.lam, c.seed) for c in configs] == [
        (0, 0),
        (0, 1),
        (0.1, 0),
        (0.1, 1),
        (0.3, 0),
        (0.3, 1),
    ]
    assert [point_key(c, spec.axes()) for c in configs][-1] == "lam0.3-alpha0.5-mel-s1"
    assert isinstance(configs[0].lam, float)


def test_other_swept_fields_enter_the_key():
    spec = SweepSpec(
        base={"epochs": 2}, grid={"features": ["mel", "stft"], "lr": [0.001]}, sweep_id="g2"
    )
    keys = [point_key(c, spec.axes()) for c in expand(spec)]
    assert keys == ["lam0-alpha0.5-mel-lr0.001-s0", "lam0-alpha0.5-stft-lr0.001-s0"]


def test_points_are_crossed_with_the_grid_and_deduplicated():
    points = [{"lam": lam, "alpha": 0.5} for lam in (0, 0.3)] + [
        {"lam": 0.3, "alpha": a} for a in (0.1, 0.5)
    ]
    spec = SweepSpec(points=points, grid={"features": ["mel", "stft"]}, seeds=[7], sweep_id="p1")
    configs = expand(spec)
    # (0, .5), (.3, .5), (.3, .1): the second (.3, .5) is the same point
    assert len(configs) == 3 * 2
    assert {(c.lam, c.alpha, c.features) for c in configs} == {
        (lam, a, f) for lam, a in ((0, 0.5), (0.3, 0.5), (0.3, 0.1)) for f in ("mel", "stft")
    }


def test_values_from_the_command_line_are_typed():
    spec = SweepSpec(
        base={
            "epochs": "3",
            "folds": "0,1",
            "root": "none",
            "corpus_options": '{"size": "tiny"}',
            "demo": "false",
            "workers": "2",
        },
        grid={"lam": ["0", "0.3"]},
        sweep_id="c1",
    )
    cfg = expand(spec)[1]
    assert cfg.epochs == 3 and cfg.folds == [0, 1] and cfg.root is None and cfg.lam == 0.3
    assert cfg.corpus_options == {"size": "tiny"} and cfg.demo is False and cfg.workers == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(base={"epoch": 3}), "unknown training setting 'epoch'"),
        (dict(grid={"seed": [0, 1]}), "use --seeds"),
        (dict(grid={"lam": ["abc"]}), "lam: expected a number"),
        (dict(grid={"alpha": [0.5, 2.0]}), "alpha must be in \\[0, 1\\]"),
        (dict(base={"epochs": "2.5"}), "epochs: expected an integer"),
        (dict(seeds=[]), "at least one seed"),
        (dict(grid={"lam": [0]}, points=[{"lam": 0.3}]), "both as a grid axis"),
        (dict(sweep_id="../up"), "invalid sweep id"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(ConfigError, match=message):
        expand(SweepSpec(**spec))


def test_cli_spec_and_dry_run(tmp_path, capsys):
    store = tmp_path / "runs"
    argv = [
        "--store",
        str(store),
        "sweep",
        "--set",
        "epochs=3",
        "--grid",
        "lam=0,0.1,0.3",
        "--grid",
        "alpha=0.5",
        "--seeds",
        "0",
        "1",
        "--sweep-id",
        "dry",
        "--dry-run",
    ]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "sweep dry: 6 runs" in out
    assert "dry-lam0.1-alpha0.5-mel-s1" in out
    assert RunStore(store).ids() == []  # nothing trained, no manifest


def test_cli_points_and_errors(tmp_path, capsys):
    argv = [
        "sweep",
        "--store",
        str(tmp_path),
        "--point",
        "lam=0",
        "alpha=0.5",
        "--point",
        "lam=0.3",
        "alpha=0.1",
        "--sweep-id",
        "pts",
        "--dry-run",
    ]
    assert cli(argv) == 0
    assert "pts-lam0.3-alpha0.1-mel-s0" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        cli(["sweep", "--store", str(tmp_path), "--set", "epochs", "--dry-run"])
    with pytest.raises(ConfigError, match="cannot be a grid axis"):
        cli(["sweep", "--store", str(tmp_path), "--grid", "folds=0,1", "--dry-run"])
    with pytest.raises(ConfigError, match="no sweep 'missing'"):
        cli(["sweep", "--store", str(tmp_path), "--resume", "missing"])


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    spec = SweepSpec(base=TINY, grid={"lam": [0]}, sweep_id="noray")
    store = RunStore(tmp_path)
    with pytest.raises(ConfigError, match="pip install -r requirements-cluster.txt"):
        run_sweep(spec, store, backend="ray")
    assert read_manifest(store, "noray") is None


def test_a_second_launcher_is_refused(tmp_path):
    store = RunStore(tmp_path)
    spec = SweepSpec(base=TINY, grid={"lam": [0]}, sweep_id="busy")
    with sweep_lock(store, "busy"), pytest.raises(RunError, match="already being run"):
        run_sweep(spec, store)


def test_bad_backend_and_workers(tmp_path):
    spec = SweepSpec(base=TINY, sweep_id="x")
    with pytest.raises(ConfigError, match="backend"):
        run_sweep(spec, RunStore(tmp_path), backend="slurm")
    with pytest.raises(ConfigError, match="workers"):
        run_sweep(spec, RunStore(tmp_path), workers=0)


def test_sensitivity_bench_lists_the_papers_two_lines(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_sensitivity", ROOT / "bench" / "sensitivity.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--dry-run"]) is None
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "20 runs"  # (6 lambdas + 5 alphas - the shared (0.3, 0.5)) x 2 seeds
    # the trainer's own recipe by default, named in the sweep id
    assert "sens-emodb-e100p20-speaker-lam0.01-alpha0.5-mel-s1" in lines
    assert "sens-emodb-e100p20-speaker-lam0.3-alpha0.9-mel-s0" in lines
    spec = bench.make_spec(bench.parse_args([]))
    assert (spec.base["epochs"], spec.base["patience"], spec.base["normalise"]) == (100, 20, "speaker")
    args = bench.parse_args(["--quick"])
    assert (
        args.lambdas == [0.0, 0.3] and args.seeds == [0] and args.epochs == 1 and args.patience == 0
        and args.fold == [0]
    )
    # the first, reduced table's recipe is still expressible (and named apart)
    old = bench.make_spec(bench.parse_args(["--epochs", "20", "--patience", "0", "--normalise", "corpus"]))
    assert old.sweep_id == "sens-emodb-e20p0"


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One feature / synthetic-corpus cache for this module's training tests (built once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pooled_sweep(tmp_path_factory, shared_cache):
    """A 2-point tiny sweep trained by the local backend with 2 worker processes."""
    tmp = tmp_path_factory.mktemp("pooled")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_LAB_CACHE", str(shared_cache))
        mp.setenv("SER_LAB_CHECKPOINTS", str(tmp / "runs"))
        store = RunStore(tmp / "runs")
        spec = SweepSpec(base=TINY, grid={"lam": [0, 0.3]}, sweep_id="pool")
        events = []
        result = run_sweep(spec, store, workers=2, progress=events.append)
        yield {"store": store, "spec": spec, "result": result, "events": events, "tmp": tmp}


def test_pool_trains_every_point_into_a_normal_run_folder(pooled_sweep):
    store, result = pooled_sweep["store"], pooled_sweep["result"]
    assert result.ok and result.n_done == 2
    rows = sweep_runs(store, "pool")
    assert sorted(r.name for r in rows) == [
        "pool-lam0-alpha0.5-mel-s0",
        "pool-lam0.3-alpha0.5-mel-s0",
    ]
    for r in rows:
        run = store.get(r.run_id)
        assert r.state == "done" and r.sweep_id == "pool"
        assert run.config["train"]["sweep_id"] == "pool" and run.read_results() is not None
    assert [e["done"] for e in pooled_sweep["events"]] == [1, 2]
    manifest = json.loads(manifest_path(store, "pool").read_text())
    assert [p["state"] for p in manifest["points"]] == ["done", "done"]
    assert {p["run_id"] for p in manifest["points"]} == {r.run_id for r in rows}
    assert manifest["spec"]["grid"] == {"lam": [0.0, 0.3]}


def test_relaunching_a_finished_sweep_trains_nothing(pooled_sweep, monkeypatch):
    store, spec = pooled_sweep["store"], pooled_sweep["spec"]
    monkeypatch.setenv("SER_LAB_CACHE", str(pooled_sweep["tmp"] / "unused-cache"))
    before = {
        r.run_id: (store.path(r.run_id) / "results.json").stat().st_mtime_ns
        for r in sweep_runs(store, "pool")
    }
    events = []
    result = run_sweep(
        SweepSpec.from_dict(spec.to_dict()), store, workers=2, progress=events.append
    )
    assert result.ok and all(p.skipped for p in result.points)
    assert [e["event"] for e in events] == ["skipped", "skipped"]
    after = {
        r.run_id: (store.path(r.run_id) / "results.json").stat().st_mtime_ns
        for r in sweep_runs(store, "pool")
    }
    assert after == before
    assert not (pooled_sweep["tmp"] / "unused-cache").exists()  # no data was even loaded


def test_report_command_on_a_trained_sweep(pooled_sweep, capsys):
    store = pooled_sweep["store"]
    out = pooled_sweep["tmp"] / "report"
    assert cli(["report", "pool", "--store", str(store.root), "--out", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    report = json.loads((out / "report.json").read_text())
    for row in report["table"]:
        run = store.get(row["runs"][0])
        fold_ua = [100 * f["UA"] for f in run.read_results()["folds"]]
        assert row["UA_mean"] == pytest.approx(sum(fold_ua) / len(fold_ua))
        assert row["n_units"] == 1 and run.config["train"]["lam"] == row["lam"]
    assert "Mel spectrogram" in capsys.readouterr().out


def test_an_interrupted_sweep_finishes_without_redoing_finished_runs(
    tmp_path, monkeypatch, shared_cache
):
    monkeypatch.setenv("SER_LAB_CACHE", str(shared_cache))
    store = RunStore(tmp_path / "runs")
    spec = SweepSpec(base=TINY, grid={"lam": [0, 0.3]}, sweep_id="intr")

    def stop_after_first(event):
        if event["event"] == "finished":
            raise KeyboardInterrupt  # Ctrl-C right after the first run finished

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, workers=1, progress=stop_after_first)
    rows = sweep_runs(store, "intr")
    assert len(rows) == 1 and rows[0].state == "done"
    first = rows[0].run_id
    first_mtime = (store.path(first) / "results.json").stat().st_mtime_ns
    manifest = read_manifest(store, "intr")
    assert [p["state"] for p in manifest["points"]] == ["done", "interrupted"]

    # A crash can also leave the next point's folder created but never trained: it must be
    # resumed in place, not duplicated.
    second_cfg = expand(SweepSpec.from_dict(spec.to_dict()))[1]
    orphan = new_run(second_cfg, store, name="intr-lam0.3-alpha0.5-mel-s0")

    result = run_sweep(SweepSpec.from_dict(manifest["spec"]), store, workers=1)
    assert result.ok
    assert [p.run_id for p in result.points] == [first, orphan.run_id]
    assert [p.skipped for p in result.points] == [True, False]
    assert (store.path(first) / "results.json").stat().st_mtime_ns == first_mtime
    rows = sweep_runs(store, "intr")
    assert len(rows) == 2 and {r.state for r in rows} == {"done"}
    assert [p["state"] for p in read_manifest(store, "intr")["points"]] == ["done", "done"]


def test_relaunch_with_other_base_settings_is_refused(tmp_path, monkeypatch):
    import ser_lab.experiments.sweep as sweep

    monkeypatch.setattr(sweep, "_run_local", lambda *args: None)  # launch without training
    store = RunStore(tmp_path)
    run_sweep(SweepSpec(base=TINY, grid={"lam": [0]}, sweep_id="fixed"), store, workers=1)
    assert [p["state"] for p in read_manifest(store, "fixed")["points"]] == ["pending"]
    changed = SweepSpec(base={**TINY, "epochs": 5}, grid={"lam": [0]}, sweep_id="fixed")
    with pytest.raises(ConfigError, match="use a new --sweep-id"):
        run_sweep(changed, store)
    # more points with the same settings extend the sweep; the manifest keeps the old ones
    run_sweep(SweepSpec(base=TINY, grid={"lam": [0.1]}, sweep_id="fixed"), store, workers=1)
    assert [p["key"] for p in read_manifest(store, "fixed")["points"]] == [
        "lam0-alpha0.5-mel-s0",
        "lam0.1-alpha0.5-mel-s0",
    ]


def test_sensitivity_bench_reports_from_run_cards_as_from_the_store(tmp_path, monkeypatch, capsys):
    """The local bench trains through run cards: its report equals the store's sweep report, and
    with the store gone the same command trains nothing and reports the same numbers."""
    from ser_lab.experiments.report import build_report

    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("bench_sensitivity", ROOT / "bench" / "sensitivity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--corpus", "synthetic", "--size", "tiny", "--quick", "--folds", "2", "--store",
            str(tmp_path / "runs"), "--out", str(tmp_path / "s.json"), "--report", str(tmp_path / "rep"),
            "--reference", "off"]
    first = bench.main(argv)
    assert first["runs"] == first["runs_done"] == 2
    assert sorted(p.name for p in (tmp_path / "runs-cards").iterdir()) == [
        "sens-synthetic-e1p0-speaker-quick-lam0-alpha0.5-mel-s0.json",
        "sens-synthetic-e1p0-speaker-quick-lam0.3-alpha0.5-mel-s0.json"]
    from_store = build_report(RunStore(tmp_path / "runs"), first["sweep_id"], tmp_path / "rep-store")
    for key in ("table", "comparisons", "discriminability"):
        assert json.dumps(first[key], sort_keys=True) == json.dumps(
            json.loads(json.dumps(from_store[key], default=float)), sort_keys=True), key
    assert (tmp_path / "rep" / "report.md").is_file()
    assert [c["vary"] for c in first["curves"]] == ["lam"]

    assert first["reference"] is None

    shutil.rmtree(tmp_path / "runs")
    again = bench.main(argv)
    for key in ("table", "comparisons", "discriminability", "curves"):
        assert again[key] == first[key], key
    assert not RunStore(tmp_path / "runs").list()

    # the eGeMAPS + SVM row on the same folds, next to a grid known from its cards alone: only
    # the SVM is trained
    pytest.importorskip("opensmile")
    with_ref = bench.main(argv[:-1] + ["on"])
    assert with_ref["table"] == first["table"]
    [svm] = RunStore(tmp_path / "runs").list()
    assert svm.name == "classical-synthetic-tiny-egemaps-svm-speaker2-s0"
    ref = with_ref["reference"]
    assert ref["run_ids"] == [svm.run_id] and ref["table"]["n_units"] == 1  # fold 0, seed 0
    assert [c["setting"]["lam"] for c in ref["comparisons"]] == [0.0, 0.3]
    assert "eGeMAPS + linear SVM" in (tmp_path / "rep" / "report.md").read_text()
