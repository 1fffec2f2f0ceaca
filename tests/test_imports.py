"""The import graph of ser_lab: no cycle, one-way layers, and no Streamlit anywhere in the package.

The layers, lowest first (a module may import its own layer and the ones below, never above):

    0 base         ser_lab.errors, paths, fileio, procs, choices, config, runs (and the package)
    1 data         ser_lab.data.*         audio, features, corpora, splits
    2 analysis     ser_lab.analysis.*     maps, discriminability, statistics, comparison
    3 learn        ser_lab.learn.*        model, losses, objectives, trainer, evaluation
    4 experiments  ser_lab.experiments.*  sweeps, report, launcher, demo, quick start
    5 app          ser_lab.app.*          what the pages need that is not drawing
    6 entry        ser_lab.cli, inference, export, serve, __main__

analysis sits below learn because the trainer caches each fold's maps when the fold ends
(`learn.trainer.cache_fold_maps` -> `analysis.maps.precompute_maps`), while analysis reads run
folders with numpy alone and never needs the model.

Read from the source with `ast` (nothing is imported), so the test is fast and sees imports
inside functions too: a cycle hidden in a function-level import is still a cycle (the two
modules cannot be understood, tested or moved apart), it only fails later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ser_lab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The modules (ser_lab's and others') that `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from ser_lab import fileio` imports the module ser_lab.fileio
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)
    return found


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        deps = {m for m in _imports(path, top_level_only=top_level_only) if m in MODULES}
        deps.discard(name)
        deps.discard("ser_lab")  # the package's __init__ (a version number) imports nothing
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_package():
    graph = _graph(top_level_only=False)
    assert {"ser_lab.cli", "ser_lab.runs", "ser_lab.data.corpora.synthetic"} <= set(graph)
    assert "ser_lab.runs" in graph["ser_lab.analysis.maps"]
    assert "ser_lab.fileio" in graph["ser_lab.runs"]  # `from ser_lab import fileio`
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "all imports"])
def test_no_import_cycle(top_level_only):
    assert _cycles(_graph(top_level_only=top_level_only)) == []


LAYERS = ("base", "data", "analysis", "learn", "experiments", "app", "entry")
BASE = {"ser_lab", "ser_lab.errors", "ser_lab.paths", "ser_lab.fileio", "ser_lab.procs",
        "ser_lab.choices", "ser_lab.config", "ser_lab.runs"}
ENTRY = {"ser_lab.cli", "ser_lab.inference", "ser_lab.export", "ser_lab.serve", "ser_lab.__main__"}


def _layer(module: str) -> int:
    """The rank of a module's layer (see the docstring); KeyError for a module in none."""
    if module in BASE:
        return 0
    if module in ENTRY:
        return LAYERS.index("entry")
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS[1:-1]:
        return LAYERS.index(parts[1])
    raise KeyError(f"{module} is in no layer: add it to one in tests/test_imports.py")


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} ({LAYERS[_layer(m)]}) imports {d} ({LAYERS[_layer(d)]})"
        for m, deps in graph.items()
        for d in deps
        if _layer(d) > _layer(m)
    )


def test_every_module_has_a_layer():
    for name in MODULES:
        _layer(name)  # raises for a module outside every layer


def test_the_layer_rule_catches_an_upward_import():
    graph = {"ser_lab.data.features": {"ser_lab.learn.trainer", "ser_lab.errors"},
             "ser_lab.learn.trainer": {"ser_lab.data.features", "ser_lab.analysis.maps"},
             "ser_lab.cli": {"ser_lab.app.corpus"}, "ser_lab.errors": set(),
             "ser_lab.analysis.maps": set(), "ser_lab.app.corpus": set()}
    assert _layer_violations(graph) == [
        "ser_lab.data.features (data) imports ser_lab.learn.trainer (learn)"
    ]


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "all imports"])
def test_layers_depend_one_way(top_level_only):
    assert _layer_violations(_graph(top_level_only=top_level_only)) == []


def test_ser_lab_never_imports_streamlit():
    offenders = [
        name
        for name, path in MODULES.items()
        if any(m.split(".")[0] == "streamlit" for m in _imports(path, top_level_only=False))
    ]
    assert offenders == []
