"""The run store: ids, listing of broken folders, locks, safe model loading, atomic files."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import ser_lab
from ser_lab import runs
from ser_lab.errors import RunError, SerLabError
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import Run, RunStore, read_config, safe_run_id, validate_run_id

CONFIG = {  # the layout ser_lab.learn.trainer.new_run writes: the settings once, under "train"
    "train": {
        "corpus": "emodb",
        "features": "mel",
        "lam": 0.3,
        "alpha": 0.5,
        "epochs": 4,
        "n_folds": 5,
        "protocol": "speaker",
        "seed": 7,
    }
}


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


def embeddings(n: int = 6, c: int = 4, dim: int = 64) -> dict:
    rng = np.random.default_rng(0)
    probs = rng.random((n, c))
    return {
        "z": rng.normal(size=(n, dim)),  # float64 on purpose: stored as float32
        "labels": np.arange(n) % c,
        "preds": probs.argmax(1),
        "probs": probs / probs.sum(1, keepdims=True),
        "utt_ids": [f"u{i}" for i in range(n)],
        "split": (["train", "val", "test"] * n)[:n],
        "centers": rng.normal(size=(c, dim)),
        "label_names": ["neutral", "angry", "happy", "sad"][:c],
    }


@contextlib.contextmanager
def lock_held_elsewhere(run_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process that holds the run's lock until killed (like a training process)."""
    code = (
        "import sys, time\n"
        "from ser_lab.runs import Run\n"
        "with Run(sys.argv[1]).lock():\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)],
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def set_status(run: Run, **fields: object) -> None:
    """Write status.json directly (update_status would refresh the heartbeat)."""
    status = run.read_status()
    status.update(fields)
    (run.dir / "status.json").write_text(json.dumps(status))


# ----------------------------------------------------------------------------- ids


def test_safe_run_id_is_one_safe_component() -> None:
    for name in ["../../etc/passwd", "a/b\\c", "Mel λ=0.3 (center loss)", "x" * 300, "", None]:
        run_id = safe_run_id(name)
        assert re.fullmatch(r"\d{8}-\d{6}-[a-z0-9.-]{1,64}-[0-9a-f]{4}", run_id), run_id
        assert validate_run_id(run_id) == run_id
        assert "/" not in run_id and ".." not in run_id
    # a dot inside a number stays, so λ and α stay readable; any other dot becomes a dash
    assert safe_run_id("Mel λ=0.3 (center loss)").split("-")[2:5] == ["mel", "0.3", "center"]
    assert "-lam0.3-alpha0.5-mel-s0-" in safe_run_id("sweep-20261201-101010-abcd-lam0.3-alpha0.5-mel-s0")
    assert "-x-" in safe_run_id("x.") and "-hidden-" in safe_run_id(".hidden")
    assert "-run-" in safe_run_id(None)


@pytest.mark.parametrize(
    "bad",
    ["../x", "/etc", "a/b", "..", "", "x\x00", "a" * 500, ".hidden", "-rf", "a\\b", "x\n", " x"],
)
def test_bad_run_ids_are_refused(store: RunStore, bad: str) -> None:
    with pytest.raises(RunError):
        validate_run_id(bad)
    with pytest.raises(RunError):
        store.get(bad)
    with pytest.raises(RunError):
        store.delete(bad)


def test_non_string_run_id_is_refused() -> None:
    with pytest.raises(RunError, match="string"):
        validate_run_id(5)  # type: ignore[arg-type]


def test_demo_style_ids_are_valid() -> None:
    assert validate_run_id("demo-mel-center") == "demo-mel-center"
    assert validate_run_id("demo_lam0.3") == "demo_lam0.3"


# ----------------------------------------------------------------------------- create/get/list


def test_create_get_list_round_trip(store: RunStore) -> None:
    config = json.loads(json.dumps(CONFIG))
    run = store.create(config, name="Mel + center loss")
    assert config == CONFIG  # the caller's dict is not modified
    assert run.dir.parent == store.root and run.dir.is_dir()

    saved = json.loads((run.dir / "config.json").read_text())
    assert saved["format_version"] == ser_lab.RUN_FORMAT_VERSION
    assert saved["run_id"] == run.run_id
    assert saved["name"] == "Mel + center loss"
    assert set(saved["versions"]) == {"python", "torch", "numpy", "scipy", "sklearn", "ser_lab"}
    assert saved["versions"]["ser_lab"] == ser_lab.__version__
    assert {k: saved[k] for k in CONFIG} == CONFIG

    status = run.read_status()
    assert status["state"] == "queued"
    assert status["n_folds"] == 5 and status["n_epochs"] == 4 and status["progress"] == 0.0

    again = store.get(run.run_id)
    assert again.dir == run.dir and again.config == saved

    [row] = store.list()
    assert (row.run_id, row.name, row.state) == (run.run_id, "Mel + center loss", "queued")
    assert (row.corpus, row.features, row.lam, row.alpha) == ("emodb", "mel", 0.3, 0.5)
    assert (row.epochs, row.n_folds, row.protocol, row.seed) == (4, 5, "speaker", 7)
    assert row.UA is None and row.WA is None and row.problem is None
    assert not row.is_demo and row.sweep_id is None


def test_create_refuses_non_json_config(store: RunStore) -> None:
    with pytest.raises(RunError, match="JSON"):
        store.create({"x": object()})
    assert store.list() == []


def test_create_draws_a_new_id_on_collision(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.create({})
    ids = iter([first.run_id, first.run_id, "20990101-000000-run-beef"])
    monkeypatch.setattr(runs, "safe_run_id", lambda name=None: next(ids))
    second = store.create({})
    assert second.run_id == "20990101-000000-run-beef"
    assert first.config["run_id"] == first.run_id  # the first run was not overwritten
    assert sorted(store.ids()) == sorted([first.run_id, second.run_id])


def test_default_root_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "ckpt"))
    store = RunStore()
    run = store.create({})
    assert run.dir.parent == tmp_path / "ckpt"


def test_get_unknown_run_names_close_ids(store: RunStore) -> None:
    run = store.create({}, name="baseline")
    typo = run.run_id[:-1] + ("0" if run.run_id[-1] != "0" else "1")
    with pytest.raises(RunError, match="not found") as info:
        store.get(typo)
    assert run.run_id in str(info.value)


def test_list_is_newest_first(store: RunStore) -> None:
    old = store.create({}, name="aa-old")  # sorts first by id: the date must decide
    store.create({}, name="zz-new")
    config = json.loads((old.dir / "config.json").read_text())
    config["created"] = "2001-01-01T00:00:00+00:00"
    (old.dir / "config.json").write_text(json.dumps(config))
    assert [row.name for row in store.list()] == ["zz-new", "aa-old"]


def test_summary_flags_demo_and_sweep(store: RunStore) -> None:
    store.create({"train": {"demo": True, "sweep_id": "s1"}}, name="flagged")
    demo_dir = store.root / "demo-mel-center"
    demo_dir.mkdir()
    (demo_dir / "config.json").write_text(
        json.dumps({"format_version": ser_lab.RUN_FORMAT_VERSION, "name": "Demo"})
    )
    (demo_dir / "status.json").write_text(json.dumps({"state": "done", "progress": 1.0}))
    rows = {row.name: row for row in store.list()}
    assert rows["flagged"].is_demo and rows["flagged"].sweep_id == "s1"
    assert rows["Demo"].is_demo and rows["Demo"].state == "done"


# ----------------------------------------------------------------------------- broken folders


def test_listing_tolerates_broken_folders(store: RunStore) -> None:
    good = store.create(CONFIG, name="good")

    corrupt = store.create({}, name="corrupt")
    (corrupt.dir / "config.json").write_text('{"format_version": 1, "na')
    future = store.create({}, name="future")
    config = json.loads((future.dir / "config.json").read_text())
    config["format_version"] = 99
    (future.dir / "config.json").write_text(json.dumps(config))
    no_status = store.create({}, name="nostatus")
    (no_status.dir / "status.json").unlink()
    (store.root / "20200101-000000-empty-0000").mkdir()
    (store.root / "README.md").write_text("not a run")
    (store.root / ".creating-x").mkdir()  # hidden folders are not runs

    rows = {row.run_id: row for row in store.list()}
    assert len(rows) == 5
    assert rows[good.run_id].state == "queued" and rows[good.run_id].problem is None
    assert rows[good.run_id].corpus == "emodb"

    expected = {
        corrupt.run_id: "not valid JSON",
        future.run_id: "incompatible run format version 99",
        no_status.run_id: "status.json missing",
        "20200101-000000-empty-0000": "config.json missing",
    }
    for run_id, reason in expected.items():
        assert rows[run_id].state == "broken"
        assert reason in rows[run_id].problem
        with pytest.raises(RunError, match=reason):
            store.get(run_id)
    assert rows[future.run_id].name == "future"  # what can be read is still shown


def test_read_config_names_both_versions(store: RunStore) -> None:
    run = store.create({})
    config = json.loads((run.dir / "config.json").read_text())
    config["format_version"] = 0
    (run.dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError) as info:
        read_config(run.dir)
    assert str(info.value) == (
        f"incompatible run format version 0 (this SER Lab reads {ser_lab.RUN_FORMAT_VERSION})"
    )
    assert isinstance(info.value, SerLabError)


def test_unknown_status_state_is_broken(store: RunStore) -> None:
    run = store.create({})
    set_status(run, state="exploded")
    [row] = store.list()
    assert row.state == "broken" and "exploded" in row.problem


# ----------------------------------------------------------------------------- stale and locks


def test_running_without_lock_is_interrupted_and_with_lock_is_running(store: RunStore) -> None:
    run = store.create(CONFIG)
    run.update_status(state="running", fold=1, epoch=2, progress=0.3)
    [row] = store.list()
    assert row.state == "interrupted" and "lock" in row.problem
    assert run.read_status()["state"] == "running"  # the file itself is left as written

    with lock_held_elsewhere(run.dir):
        [row] = store.list()
        assert row.state == "running" and row.problem is None
        assert (row.fold, row.epoch, row.progress) == (1, 2, 0.3)
    [row] = store.list()  # the holder was killed: its lock died with it
    assert row.state == "interrupted"


def test_queued_run_gets_a_grace_period(store: RunStore) -> None:
    run = store.create({})
    assert store.list()[0].state == "queued"  # just created, launcher still starting
    set_status(run, heartbeat=time.time() - runs.QUEUED_GRACE_S - 10)
    assert store.list()[0].state == "interrupted"
    set_status(run, pid=os.getpid())  # a launched process that is still alive
    assert store.list()[0].state == "queued"


def test_lock_is_exclusive_across_processes(store: RunStore) -> None:
    run = store.create({})
    assert not run.is_locked() and run.lock_holder() is None
    with lock_held_elsewhere(run.dir) as proc:
        assert run.is_locked()
        assert run.lock_holder() == proc.pid
        with pytest.raises(RunError, match=f"already being trained by process {proc.pid}"):
            with run.lock():
                pass
        with pytest.raises(RunError, match="cannot delete"):
            store.delete(run.run_id)
    with run.lock() as held:
        assert held is run and run.is_locked()
        assert run.lock_holder() == os.getpid()
    assert not run.is_locked()


def test_lock_is_exclusive_within_one_process(store: RunStore) -> None:
    run = store.create({})
    with run.lock():
        with pytest.raises(RunError, match=f"process {os.getpid()}"):
            with Run(run.dir).lock():
                pass
    with run.lock():  # released on exit, so it can be taken again
        pass


# ----------------------------------------------------------------------------- status, metrics


def test_update_status_merges_and_beats(store: RunStore) -> None:
    run = store.create({})
    before = run.read_status()["heartbeat"]
    run.update_status(state="running", pid=123)
    status = run.update_status(epoch=3)
    assert status == run.read_status()
    assert (status["state"], status["pid"], status["epoch"]) == ("running", 123, 3)
    assert status["heartbeat"] >= before
    with pytest.raises(RunError, match="unknown run state"):
        run.update_status(state="sleeping")


def test_concurrent_status_updates_lose_nothing(store: RunStore) -> None:
    run = store.create({})

    def writer(key: str) -> None:
        for i in range(15):
            run.update_status(**{f"{key}{i}": i})

    threads = [threading.Thread(target=writer, args=(key,)) for key in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = run.read_status()
    assert all(status[f"{key}{i}"] == i for key in "ab" for i in range(15))


def test_metrics_tolerate_a_torn_last_line(store: RunStore) -> None:
    run = store.create({})
    run.append_metrics({"fold": 0, "epoch": 0, "loss": 1.5})
    run.append_metrics({"fold": 0, "epoch": 1, "loss": np.float32(1.25)})
    with open(run.metrics_path, "a") as f:
        f.write('{"fold": 0, "epoch": 2, "lo')  # a writer killed mid-line
    assert [r["epoch"] for r in run.read_metrics()] == [0, 1]
    assert run.read_metrics()[1]["loss"] == 1.25
    run.append_metrics({"fold": 0, "epoch": 2, "loss": 1.0})  # a resumed trainer goes on
    assert [r["epoch"] for r in run.read_metrics()] == [0, 1, 2]


def test_keep_jsonl_drops_records_and_a_torn_line_and_leaves_a_clean_file_alone(tmp_path) -> None:
    from ser_lab import fileio

    path = tmp_path / "log.jsonl"
    for epoch in (1, 2, 3):
        fileio.append_jsonl(path, {"epoch": epoch})
    before = path.stat().st_mtime_ns
    fileio.keep_jsonl(path, lambda r: True)
    assert path.stat().st_mtime_ns == before  # nothing dropped: not rewritten
    with open(path, "a") as f:
        f.write('{"epoch": 4, "lo')  # a writer killed mid-line
    fileio.keep_jsonl(path, lambda r: r["epoch"] <= 2)
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    fileio.append_jsonl(path, {"epoch": 3})  # the resumed writer's line stands on its own
    assert [r["epoch"] for r in fileio.read_jsonl(path)] == [1, 2, 3]
    fileio.keep_jsonl(tmp_path / "absent.jsonl", lambda r: False)
    assert not (tmp_path / "absent.jsonl").exists()


# ----------------------------------------------------------------------------- model files


def test_model_round_trip(store: RunStore) -> None:
    run = store.create({})
    gru = torch.nn.GRU(4, 3, bidirectional=True)
    payload = {
        "state_dict": gru.state_dict(),
        "centers": torch.randn(4, 64),
        "norm": {"mean": np.float32(0.5), "std": [1.0, 2.0]},
        "label_names": ["neutral", "angry", "happy", "sad"],
        "model_config": {"n_bins": 128, "hidden": (128, 64), "dropout": None},
    }
    run.save_model(2, payload)
    loaded = run.load_model(2)
    fresh = torch.nn.GRU(4, 3, bidirectional=True)
    fresh.load_state_dict(loaded["state_dict"])
    for key, value in gru.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    assert torch.equal(loaded["centers"], payload["centers"])
    assert loaded["norm"] == {"mean": 0.5, "std": [1.0, 2.0]}
    assert loaded["model_config"] == payload["model_config"]
    assert loaded["label_names"] == payload["label_names"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"x": np.zeros(3)}, "numpy array"),
        ({"x": object()}, "object"),
        ({"x": {1.5: 2}}, "key of type float"),
        ([1, 2], "must be a dict"),
    ],
)
def test_save_model_refuses_unsafe_payloads(store: RunStore, payload: object, reason: str) -> None:
    run = store.create({})
    with pytest.raises(RunError, match=reason):
        run.save_model(0, payload)  # type: ignore[arg-type]
    assert not (run.fold_dir(0) / "model.pt").exists()


class _Evil:
    """Runs a shell command when unpickled (what a malicious checkpoint would do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("container", ["pickle protocol 2", "pickle default", "torch.save"])
def test_malicious_model_is_refused(store: RunStore, tmp_path: Path, container: str) -> None:
    run = store.create({})
    target = tmp_path / "pwned"
    path = run.fold_dir(0) / "model.pt"
    path.parent.mkdir()
    evil = {"state_dict": {}, "x": _Evil(target)}
    if container == "pickle protocol 2":
        path.write_bytes(pickle.dumps(evil, protocol=2))
    elif container == "pickle default":
        path.write_bytes(pickle.dumps(evil))
    else:
        torch.save(evil, path)
    with pytest.raises(RunError, match="refused fold 0 model.pt") as info:
        run.load_model(0)
    if container != "pickle default":  # torch stops the default protocol even earlier
        assert "system" in str(info.value)  # the reason names the blocked call
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no model.pt"), (b"", "corrupt"), (b"not a checkpoint", "corrupt")],
)
def test_missing_or_corrupt_model(store: RunStore, content: bytes | None, reason: str) -> None:
    run = store.create({})
    if content is not None:
        run.fold_dir(1).mkdir()
        (run.fold_dir(1) / "model.pt").write_bytes(content)
    with pytest.raises(RunError, match=reason):
        run.load_model(1)


def test_model_that_is_not_a_dict_is_refused(store: RunStore) -> None:
    run = store.create({})
    run.fold_dir(0).mkdir()
    torch.save(torch.zeros(2), run.fold_dir(0) / "model.pt")
    with pytest.raises(RunError, match="expected a dict"):
        run.load_model(0)


@pytest.mark.parametrize("k", [-1, True, 1.0, "0"])
def test_fold_index_is_checked(store: RunStore, k: object) -> None:
    with pytest.raises(RunError, match="fold index"):
        store.create({}).fold_dir(k)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- embeddings


def test_embeddings_round_trip_without_pickle(store: RunStore) -> None:
    run = store.create({})
    arrays = embeddings(n=6)
    run.save_embeddings(0, **arrays)
    loaded = run.load_embeddings(0)
    assert loaded["z"].dtype == np.float32 and loaded["z"].shape == (6, 64)
    assert loaded["probs"].dtype == np.float32 and loaded["centers"].shape == (4, 64)
    assert loaded["labels"].dtype == np.int64 and loaded["preds"].dtype == np.int64
    assert loaded["utt_ids"].tolist() == arrays["utt_ids"]
    assert loaded["split"].tolist() == arrays["split"]
    assert loaded["label_names"].tolist() == arrays["label_names"]
    np.testing.assert_allclose(loaded["z"], arrays["z"], rtol=1e-6)
    with np.load(run.fold_dir(0) / "embeddings.npz", allow_pickle=False) as raw:
        assert set(raw.files) == set(runs.EMBEDDING_KEYS)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"z": np.zeros(64)}, "2-D"),
        ({"labels": np.zeros(5, dtype=int)}, "expected 6 rows"),
        ({"labels": np.zeros(6)}, "integer class ids"),
        ({"split": ["train"] * 5 + ["holdout"]}, "unknown split"),
        ({"centers": np.zeros((4, 32))}, "centers"),
        ({"extra": np.array([object()])}, "dtype object"),
    ],
)
def test_bad_embeddings_are_refused(store: RunStore, change: dict, reason: str) -> None:
    run = store.create({})
    with pytest.raises(RunError, match=reason):
        run.save_embeddings(0, **{**embeddings(n=6), **change})
    assert not (run.fold_dir(0) / "embeddings.npz").exists()


def test_missing_embedding_array_is_refused(store: RunStore) -> None:
    arrays = embeddings()
    del arrays["probs"]
    with pytest.raises(RunError, match="missing arrays: probs"):
        store.create({}).save_embeddings(0, **arrays)


def test_corrupt_embeddings_file(store: RunStore) -> None:
    run = store.create({})
    with pytest.raises(RunError, match="no embeddings"):
        run.load_embeddings(0)
    run.fold_dir(0).mkdir()
    (run.fold_dir(0) / "embeddings.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match="corrupt"):
        run.load_embeddings(0)


def test_folds_done_needs_model_and_embeddings(store: RunStore) -> None:
    run = store.create({})
    run.save_model(0, {"w": torch.zeros(1)})
    run.save_embeddings(0, **embeddings())
    run.save_model(1, {"w": torch.zeros(1)})  # fold 1 died before its embeddings
    run.save_embeddings(3, **embeddings())
    run.save_model(3, {"w": torch.zeros(1)})
    assert run.folds_done() == [0, 3]


def test_snapshots(store: RunStore) -> None:
    run = store.create({})
    assert run.list_snapshots(0) == []
    arrays = {k: v for k, v in embeddings().items() if k in runs.SNAPSHOT_KEYS}
    for epoch in (10, 0, 2):
        run.save_snapshot(0, epoch, **{**arrays, "z": arrays["z"] + epoch})
    assert run.list_snapshots(0) == [0, 2, 10]
    assert (run.fold_dir(0) / "snapshots" / "epoch_002.npz").is_file()
    np.testing.assert_allclose(run.load_snapshot(0, 10)["z"], arrays["z"] + 10, rtol=1e-6)
    with pytest.raises(RunError, match="no snapshot of epoch 5 \\(have: 0, 2, 10\\)"):
        run.load_snapshot(0, 5)


# ----------------------------------------------------------------------------- results


def results(ua: float = 0.62, wa: float = 0.6) -> dict:
    fold = {
        "fold": 0,
        "UA": ua,
        "WA": wa,
        "recall": {"neutral": 0.5, "angry": 0.74},
        "confusion": [[5, 5], [3, 7]],
        "n_test": 20,
        "best_epoch": 3,
    }
    return {
        "labels": ["neutral", "angry"],
        "folds": [fold],
        "pooled": {"UA": ua, "WA": wa, "recall": fold["recall"], "confusion": fold["confusion"]},
        "mean": {"UA": ua, "WA": wa, "UA_std": 0.0, "WA_std": 0.0},
    }


def test_results_round_trip_and_summary(store: RunStore) -> None:
    run = store.create({})
    assert run.read_results() is None
    run.write_results(results())
    run.update_status(state="done", progress=1.0)
    assert run.read_results() == results()
    [row] = store.list()
    assert (row.state, row.UA, row.WA, row.progress) == ("done", 0.62, 0.6, 1.0)


def test_results_in_percent_are_refused(store: RunStore) -> None:
    run = store.create({})
    with pytest.raises(RunError, match="fraction"):
        run.write_results(results(ua=62.0))
    assert run.read_results() is None


# ----------------------------------------------------------------------------- atomicity, delete


def test_writes_leave_no_temporary_files(store: RunStore) -> None:
    run = store.create(CONFIG)
    run.update_status(state="running")
    run.append_metrics({"epoch": 0})
    run.save_model(0, {"w": torch.zeros(2)})
    run.save_embeddings(0, **embeddings())
    arrays = {k: v for k, v in embeddings().items() if k in runs.SNAPSHOT_KEYS}
    run.save_snapshot(0, 0, **arrays)
    run.write_results(results())
    with run.lock():
        pass
    leftovers = [p for p in store.root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert [p.name for p in store.root.iterdir()] == [run.run_id]  # no staging folders
    assert sorted(p.name for p in run.dir.iterdir()) == [
        ".lock",
        "config.json",
        "fold_0",
        "metrics.jsonl",
        "results.json",
        "status.json",
    ]


def test_delete(store: RunStore) -> None:
    keep, gone = store.create({}, name="keep"), store.create({}, name="gone")
    (gone.dir / "config.json").write_text("broken")  # broken runs can be deleted too
    store.delete(gone.run_id)
    assert not gone.dir.exists()
    assert [p.name for p in store.root.iterdir()] == [keep.run_id]
    with pytest.raises(RunError, match="not found"):
        store.delete(gone.run_id)
    with keep.lock():
        with pytest.raises(RunError, match="cannot delete"):
            store.delete(keep.run_id)
    assert keep.dir.is_dir()


def test_write_config_keeps_identity(store: RunStore) -> None:
    run = store.create(CONFIG)
    config = dict(run.config, data={"fingerprint": "abc", "n_utterances": 10})
    run.write_config(config)
    assert run.config["data"]["fingerprint"] == "abc"
    assert Run(run.dir).config == run.config  # on disk, not only in the cache
    with pytest.raises(RunError, match="'run_id' cannot change"):
        run.write_config(dict(config, run_id="other"))
    without_identity = {k: v for k, v in config.items() if k not in runs.IDENTITY_KEYS}
    run.write_config(without_identity)
    assert read_config(run.dir)["created"] == config["created"]


def test_summary_reads_nested_train_config(store: RunStore) -> None:
    train = {
        "corpus": "iemocap",
        "features": "stft",
        "lam": 0.0,
        "alpha": 0.5,
        "epochs": 30,
        "n_folds": 5,
        "folds": [0],
        "protocol": "session",
        "seed": 1,
    }
    store.create({"train": train})
    [row] = store.list()
    assert (row.corpus, row.features, row.lam, row.alpha) == ("iemocap", "stft", 0.0, 0.5)
    assert (row.epochs, row.n_folds, row.protocol, row.seed) == (30, 5, "session", 1)
