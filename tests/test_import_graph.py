"""The package's import graph: no modules that import each other in a circle, and no folder that imports from a
layer above its own (the layer picture of docs/architecture.md). Every import counts, also those inside functions
and under ``TYPE_CHECKING``: a type a module names is a dependency too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "adir_exp"

# Bottom to top: a folder (or top-level module) imports only from its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"paths", "runtime", "conf"},  # where files and caches are, which device; the configs (data only)
    {"weights", "operators", "diffusion"},  # weight files; the forward models y = A x + e; the noise schedule
    {"data", "corpus", "models", "metrics"},  # image files; the image sets adir-make-data makes; networks; scores
    {"retrieval", "samplers"},  # K-NN over a collection; the reverse process and its guidance
    {"problem"},  # one measured image and its seeds
    {"adaptation"},  # LoRA test-time adaptation
    {"priors"},  # a diffusion model family: network, adaptation loss, reconstructor
    {"bank"},  # adapters fitted once per neighbourhood of the collection
    {"methods"},  # the rows of a table
    {"evaluation"},  # methods × images → rows, summaries, reports
    {"prior_training"},  # training the embedded prior, its model card and SR check
    {"cli"},  # the commands: the only code that knows Hydra
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str) -> Iterator[str]:
    """The package's modules that ``module`` imports (``from a import b`` imports module ``a.b`` where there is one)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                if target in MODULES and target != module:
                    yield target


GRAPH = {module: set(imported(module)) for module in MODULES}


def folder(module: str) -> str:
    """``adir_exp.cli.bench`` → ``cli``; the package's own ``__init__`` has none."""
    return module.split(".")[1] if "." in module else ""


def layer(name: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if name in names)


def circles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_the_graph_sees_the_imports_inside_functions_and_under_type_checking() -> None:
    assert "adir_exp.cli.tracking" in GRAPH["adir_exp.cli.build_and_run"]  # imported inside build()
    assert "adir_exp.problem" in GRAPH["adir_exp.adaptation.fit"]  # imported under TYPE_CHECKING


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles() == []


def test_every_folder_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    folders = {folder(module) for module in MODULES} - {""}
    assert folders - placed == set(), "place the new folder in LAYERS (and in docs/architecture.md's layer picture)"
    assert placed - folders == set(), "LAYERS names a folder the package no longer has"


def test_no_folder_imports_from_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{module} → {target}"
        for module, targets in GRAPH.items() if folder(module)
        for target in targets if folder(target) and layer(folder(target)) > layer(folder(module))
    )
    assert upward == []
