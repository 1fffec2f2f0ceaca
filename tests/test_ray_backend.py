"""The Ray backend: a tiny 2 x 2 grid through a local Ray instance (skipped without Ray)."""

import os

import pytest

from ser_lab.experiments.sweep import SweepSpec, ray_runtime_env, read_manifest, run_sweep, sweep_runs
from ser_lab.runs import RunStore

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-cluster.txt")


@pytest.fixture
def local_ray(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    # The workers get this ser_lab package (and SER_LAB_CACHE) from the job's runtime env.
    ray.init(
        num_cpus=2, include_dashboard=False, runtime_env=ray_runtime_env(), logging_level="WARNING"
    )
    try:
        yield
    finally:
        ray.shutdown()


def test_a_tiny_grid_runs_on_ray_into_the_shared_store(tmp_path, local_ray):
    store = RunStore(tmp_path / "runs")
    spec = SweepSpec(
        base={
            "corpus": "synthetic",
            "corpus_options": {"size": "tiny"},
            "epochs": 1,
            "n_folds": 2,
            "folds": [0],
            "workers": 1,
        },
        grid={"lam": [0, 0.3], "alpha": [0.3, 0.5]},
        sweep_id="ray",
    )
    events = []
    result = run_sweep(spec, store, backend="ray", workers=1, progress=events.append)
    assert result.ok, [(p.key, p.state, p.error) for p in result.points]
    assert [e["done"] for e in events] == [1, 2, 3, 4]  # progress as each run finishes
    rows = sweep_runs(store, "ray")
    assert len(rows) == 4 and {r.state for r in rows} == {"done"}
    assert {(r.lam, r.alpha) for r in rows} == {(0, 0.3), (0, 0.5), (0.3, 0.3), (0.3, 0.5)}
    for r in rows:
        run = store.get(r.run_id)
        assert run.read_status()["pid"] != os.getpid() and run.folds_done() == [0]  # a Ray worker
    assert [p["state"] for p in read_manifest(store, "ray")["points"]] == ["done"] * 4

    # the runs are found again by sweep id + config: a re-launch trains nothing
    again = run_sweep(SweepSpec.from_dict(spec.to_dict()), store, backend="ray", workers=1)
    assert all(p.skipped for p in again.points) and len(sweep_runs(store, "ray")) == 4
