# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Every public function and method of the five packages carries type hints (issue 19, item 13).

Public: a module whose path has no `_`-prefixed part (besides `__init__.py`), a class whose name and enclosing
classes' names do not start with `_`, and a function or method whose name does not start with `_` (plus `__init__`
and `__call__`). Every parameter except `self` / `cls` is annotated, and so is the return (except for `__init__`).
"""

import ast
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("transformers_llada_uni", "diffusers_llada_uni", "llada_uni_conversion", "llada_uni_cli", "llada_uni_app")


def _public_module(relative: Path) -> bool:
    return not any(part.startswith("_") and part != "__init__.py" for part in relative.parts)


def _offenders_in(tree: ast.AST, where: str) -> list[str]:
    offenders = []

    def visit(node: ast.AST, cls: str | None, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child.name, public and not child.name.startswith("_"))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
                if not public or (name.startswith("_") and name not in ("__init__", "__call__")):
                    continue
                args = child.args
                params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
                params += [a for a in (args.vararg, args.kwarg) if a is not None]
                missing = [a.arg for a in params if a.annotation is None]
                if child.returns is None and name != "__init__":
                    missing.append("return")
                if missing:
                    offenders.append(f"{where}:{child.lineno} {cls + '.' if cls else ''}{name} {missing}")

    visit(tree, None, True)
    return offenders


def _offenders(package: str) -> tuple[list[str], int]:
    root = SRC / package
    offenders, modules = [], 0
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if not _public_module(relative):
            continue
        modules += 1
        offenders += _offenders_in(ast.parse(path.read_text(encoding="utf-8")), f"{package}/{relative}")
    return offenders, modules


@pytest.mark.parametrize("package", PACKAGES)
def test_public_functions_have_type_hints(package):
    offenders, modules = _offenders(package)
    assert modules > 0, f"no modules found under {SRC / package}"
    assert not offenders, "public functions without type hints:\n" + "\n".join(offenders)


def test_checker_flags_missing_hints():
    # The checker itself: a public function missing hints is reported; private names and annotated ones are not.
    source = (
        "def bad(x, *args, y: int = 0, **kwargs): ...\n"
        "def good(x: int) -> int: ...\n"
        "def _private(x): ...\n"
        "class A:\n"
        "    def __init__(self, a): ...\n"
        "    def method(self) -> None: ...\n"
        "    def __call__(self, b: int): ...\n"
        "class _Hidden:\n"
        "    def method(self, z): ...\n"
    )
    offenders = _offenders_in(ast.parse(source), "m.py")
    assert offenders == [
        "m.py:1 bad ['x', 'args', 'kwargs', 'return']",
        "m.py:5 A.__init__ ['a']",
        "m.py:7 A.__call__ ['return']",
    ]
