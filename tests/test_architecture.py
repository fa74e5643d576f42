"""The shape of the code: no module imports a module that imports it back, apps depend one way
(accounts -> costcalc -> events -> billing -> margins, config above them all), and only tasks modules
(and the apps' ready(), which registers them) import a tasks module: everything else queues a task
by name through accounts.tasking.

The import graph is read with `ast` from the source, lazy imports inside functions included (they
are how a cycle hides), imports under `if TYPE_CHECKING:` left out (they never run).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["accounts", "costcalc", "events", "billing", "margins"]  # each may import only those to its left
PACKAGES = [*LAYERS, "config"]  # config sits above every app


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[_module_name(path, root)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped.update(id(inner) for inner in ast.walk(statement))
    return skipped


def _known(name: str, modules) -> str | None:
    """The project module `name` is, or the nearest package of it that is one."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports (`from pkg import sub` counts as importing pkg.sub)."""
    path = modules[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(filter(None, (_known(alias.name, modules) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else _known(base, modules))
    found.discard(None)
    found.discard(module)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {module: imports_of(module, modules) for module in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {app: position for position, app in enumerate(LAYERS)}
    rank["config"] = len(LAYERS)
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if rank[target.split(".")[0]] > rank[module.split(".")[0]]
    )


def task_module_importers(graph: dict[str, set[str]]) -> list[str]:
    """Modules other than tasks modules and app configs that import a tasks module."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if target.rpartition(".")[2] == "tasks"
        and module.rpartition(".")[2] not in {"tasks", "apps", "hooks"}
        and module != "config.celery"
    )


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_no_module_imports_a_module_that_imports_it_back(graph):
    assert cycles(graph) == []


def test_apps_import_only_apps_to_their_left(graph):
    assert upward_imports(graph) == []


def test_only_tasks_modules_and_app_configs_import_tasks(graph):
    assert task_module_importers(graph) == []


def test_the_checks_see_a_cycle_a_lazy_import_and_an_upward_import(tmp_path):
    """The checks themselves: a ring through a lazy import and an upward import are both found."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "billing" / "services.py").write_text("def later():\n    from .tasks import run\n")
    (tmp_path / "billing" / "tasks.py").write_text("from billing import services\n")
    (tmp_path / "events" / "models.py").write_text("from margins.selectors import x\n")
    (tmp_path / "margins" / "selectors.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from events.models import Customer\n"
    )

    graph = import_graph(tmp_path)

    assert cycles(graph) == [["billing.services", "billing.tasks"]]
    assert upward_imports(graph) == ["events.models -> margins.selectors"]
    assert task_module_importers(graph) == ["billing.services -> billing.tasks"]
