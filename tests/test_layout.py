"""The package's shape (issue 13): no import cycle, no module over 600 lines, no module importing another's private
names, and no branching on a family's name outside the registry."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hf_genxfer")
MAX_LINES = 600


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[module.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(module: str, path: str):
    """(imported module, imported names) for every import in the file, at any depth (functions included)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]


def _graph() -> dict[str, set[str]]:
    graph = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for target, names in _imports(module, path):
            candidates = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES] or [target]
            for candidate in candidates:
                while candidate and candidate not in MODULES:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != module:
                    graph[module].add(candidate)
    return graph


def test_no_import_cycle_inside_the_package():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, cycles


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_short(module):
    lines = open(MODULES[module], encoding="utf-8").read().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines"


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for module, path in MODULES.items():
        for target, names in _imports(module, path):
            if target.startswith("hf_genxfer") and target != module:
                offenders += [f"{module}: {target}.{name}" for name in names if name.startswith("_")]
    assert not offenders, offenders


def test_only_the_registry_knows_the_family_names():
    # The benches are protocols written per family (their result sections are named after them); everything on
    # the recipe -> model folder path must ask the registry instead.
    from hf_genxfer.families import FAMILIES

    offenders = []
    for module, path in MODULES.items():
        if module == "hf_genxfer.families" or module.startswith("hf_genxfer.bench"):
            continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Compare):
                constants = [n.value for n in [node.left, *node.comparators] if isinstance(n, ast.Constant)]
                if any(value in FAMILIES for value in constants):
                    offenders.append(f"{module}:{node.lineno}")
    assert not offenders, offenders
