"""The house's shape, kept by parsing every import in nbkit/ (those inside functions too):

    core         nbkit/*.py, nbkit/tasks/, nbkit/room/: models, sampling, train, runs, tasks, claims, ...
    serve        nbkit/serve/: what the apps call                  (imports the core)
    experiments  nbkit/experiments/: star, rft, budget, prefs      (imports the core and serve: prefs reads the
                                                                    arena's votes and adds its model to the arena)
    workshop     nbkit/workshop/: report, exercises, archive       (imports the core, serve and the experiments)
    cli          nbkit/cli.py: routes to all of them

Imports go down only, no two modules import each other (directly or around a circle), and no module imports
another's private (_underscored) names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "nbkit"
# what each wing may import besides itself
ALLOWED = {
    "core": {"core"},
    "serve": {"core"},
    "experiments": {"core", "serve"},
    "workshop": {"core", "serve", "experiments"},
    "cli": {"core", "experiments", "serve", "workshop"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def wing(module: str) -> str:
    parts = module.split(".")
    if module == "nbkit.cli":
        return "cli"
    if (
        len(parts) > 2
        and parts[1] in {"experiments", "serve", "workshop"}
        or module
        in {
            "nbkit.experiments",
            "nbkit.serve",
            "nbkit.workshop",
        }
    ):
        return parts[1]
    return "core"


def imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported nbkit module, names taken from it) for every import statement in `module`."""
    out = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("nbkit")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbkit"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub, []) if sub in MODULES else (node.module, [a.name]))
    return out


def graph() -> dict[str, set[str]]:
    return {m: {target for target, _ in imports(m) if target != m} for m in MODULES}


def test_every_import_resolves_to_a_module():
    unknown = {(m, t) for m in MODULES for t, _ in imports(m) if t not in MODULES}
    assert not unknown


def test_imports_only_go_down():
    upward = [
        f"{m} ({wing(m)}) imports {t} ({wing(t)})"
        for m, targets in graph().items()
        for t in targets
        if wing(t) != wing(m) and wing(t) not in ALLOWED[wing(m)]
    ]
    assert not upward, "\n".join(upward)


def test_no_private_names_across_modules():
    private = [
        f"{m} imports {name} from {t}"
        for m in MODULES
        for t, names in imports(m)
        for name in names
        if name.startswith("_") and t != m
    ]
    assert not private, "\n".join(private)


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _package_edges_ignored(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ re-exporting its own submodules is not a circle with them."""
    return {
        m: {t for t in ts if not (t.startswith(m + ".") and MODULES[m].name == "__init__.py")}
        for m, ts in g.items()
    }


def test_no_import_circles():
    assert _cycles(_package_edges_ignored(graph())) == []


@pytest.mark.parametrize(
    "g, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(g, expected):
    assert _cycles(g) == expected


def test_the_wings():
    assert wing("nbkit.runs") == wing("nbkit.tasks.arithmetic") == "core"
    assert wing("nbkit.experiments.star.run") == "experiments"
    assert wing("nbkit.serve.arena") == "serve"
    assert wing("nbkit.workshop.report") == "workshop"
