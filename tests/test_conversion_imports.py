"""The project's import graph, read from the source with `ast`: no module imports a module that imports it back (at any
depth, counting imports inside functions and `importlib.import_module("...")` too), and inference code (the two library
packages and every command but `convert`) never imports conversion code."""

import ast
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("transformers_llada_uni", "diffusers_llada_uni", "llada_uni_cli", "llada_uni_conversion")
INFERENCE = ("transformers_llada_uni", "diffusers_llada_uni", "llada_uni_cli")
CONVERSION = ("llada_uni_conversion", "llada_uni_cli.convert")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            modules[_module_name(path)] = path
    return modules


def _imported_names(module: str, path: Path) -> set[str]:
    """Every module name `module` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            # `from package import submodule` imports the submodule.
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            # The longest project module that the name is, or is inside of.
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != module:
                        targets.add(candidate)
                    break
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def _is_in(module: str, roots) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def test_the_graph_sees_every_package_and_its_imports():
    graph = _graph()
    for package in PACKAGES:
        assert package in graph
    # The walker itself: a relative import, a function-level import and an import by name are all edges.
    assert "llada_uni_conversion.weights" in graph["llada_uni_conversion.backbone"]
    assert "llada_uni_conversion.backbone" in graph["llada_uni_conversion.converter"]
    assert "transformers_llada_uni.released_layout_llada_uni" in graph["diffusers_llada_uni.pipeline_llada_uni_decoder"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("package", INFERENCE)
def test_inference_never_imports_conversion_code(package):
    graph = _graph()
    offending = {
        module: sorted(t for t in targets if _is_in(t, CONVERSION))
        for module, targets in graph.items()
        if _is_in(module, (package,)) and not _is_in(module, CONVERSION)
    }
    offending = {module: targets for module, targets in offending.items() if targets}
    assert not offending, f"inference modules importing conversion code: {offending}"


def test_conversion_parts_never_import_the_orchestrator():
    graph = _graph()
    parts = [m for m in graph if m.startswith("llada_uni_conversion.") and m != "llada_uni_conversion.converter"]
    assert parts
    for part in parts:
        assert "llada_uni_conversion.converter" not in graph[part], part
        assert "llada_uni_conversion" not in graph[part], f"{part} imports the package (its __init__ is the orchestrator)"
