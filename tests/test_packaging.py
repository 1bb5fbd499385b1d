"""The package metadata matches the code, checked from the source tree (no virtualenv is built).

Dependencies: every import in ``sparse_bench/`` and ``theory_checks/``, at module level or inside a function
(a lazy import is needed as soon as its function runs, e.g. the report's jinja2), must come from the standard
library, the project itself or a declared runtime dependency. Exceptions: an import guarded by
``try: ... except ImportError`` (the code copes without it), and the modules in ``OPTIONAL``, which belong to
a named extra. The pytest adapters of the theory checks and ``tests/`` may also use the ``test`` and ``peers``
extras. Conversely every runtime dependency must be imported by the library or the checks, so an unused pin
fails.

Layout: ``packages.find`` picks up every directory of Python modules under the two packages, and every data
file there is matched by ``package-data``, so a plain ``pip install .`` ships all of it.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = ("sparse_bench", "theory_checks")
# Imported without a guard, but only by features that need an extra: HF blocks for from_hf and the ratio
# table's HF peer, pytest for the pytest integration of sparse_bench.testing (whose users run pytest anyway).
OPTIONAL = {"transformers": "peers", "pytest": "test"}


def canonical(name: str) -> str:
    """A distribution name in PEP 503 normal form ("Scikit_Learn" -> "scikit-learn")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    """Canonical distribution names of requirement strings ("numpy==2.4.6" -> "numpy"); self-references are
    left out (``dev`` is ``sparse-bench[test,peers]``)."""
    names = {canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in requirements}
    return names - {canonical(PYPROJECT["project"]["name"])}


RUNTIME = declared(PYPROJECT["project"]["dependencies"])
EXTRAS = {extra: declared(reqs) for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


CATCHES_IMPORT_ERROR = ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in the body of a ``try`` whose handlers catch ImportError."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for handler in parent.handlers:
                if handler.type is None:  # a bare except
                    return True
                names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                if any(isinstance(n, ast.Name) and n.id in CATCHES_IMPORT_ERROR for n in names):
                    return True
        node = parent
    return False


@functools.lru_cache(maxsize=None)
def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file, unguarded ones only (``import a.b`` -> "a")."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module]
        else:
            continue
        if not _guarded(node, parents):
            names.update(module.split(".")[0] for module in modules)
    return names


def is_pytest_adapter(path: Path) -> bool:
    """The theory checks' pytest glue, run by pytest only (``sparse-bench run`` never imports it)."""
    return path.name.startswith("test_") or path.name == "conftest.py" or path.name == "pytest_support.py"


def local_names(directory: Path) -> set[str]:
    """Module and package names importable from ``directory`` itself (tests import their helpers by name)."""
    return {p.stem for p in directory.rglob("*.py")} | {p.name for p in directory.rglob("*") if p.is_dir()}


def third_party(paths: list[Path], first_party: set[str]) -> dict[str, set[str]]:
    """Third-party top-level module -> the files importing it."""
    users: dict[str, set[str]] = {}
    for path in paths:
        for module in imported_modules(path):
            if module not in sys.stdlib_module_names and module not in first_party:
                users.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return users


@functools.lru_cache(maxsize=1)
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution's file list: once


def distributions(module: str) -> set[str]:
    """Canonical names of the installed distributions providing ``module`` (empty: not installed)."""
    return {canonical(d) for d in _module_distributions().get(module, [])}


def sources(*directories: str, adapters: bool | None = None) -> list[Path]:
    """The .py files under ``directories``; ``adapters`` True/False keeps only / drops the pytest adapters."""
    paths = [p for d in directories for p in sorted((ROOT / d).rglob("*.py")) if "__pycache__" not in p.parts]
    if adapters is None:
        return paths
    return [p for p in paths if is_pytest_adapter(p) == adapters]


def undeclared(users: dict[str, set[str]], allowed: set[str]) -> list[str]:
    """One line per imported module whose distribution is not in ``allowed`` (or that is not installed)."""
    problems = []
    for module, files in sorted(users.items()):
        dists = distributions(module)
        if module in OPTIONAL and OPTIONAL[module] in EXTRAS and dists & EXTRAS[OPTIONAL[module]]:
            continue
        if not dists:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) is not installed")
        elif not dists & allowed:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) comes from {sorted(dists)}, "
                            f"not declared in {sorted(allowed)}")
    return problems


def test_extras_are_test_peers_and_dev():
    assert {"test", "peers", "dev"} <= set(EXTRAS), sorted(EXTRAS)
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert dev == ["sparse-bench[test,peers]"], f"dev must be the union of test and peers, got {dev}"
    for module, extra in OPTIONAL.items():
        assert distributions(module) & EXTRAS[extra], f"{module} is optional but its extra [{extra}] lacks it"
        assert not distributions(module) & RUNTIME, f"{module} is both a runtime dependency and optional"


def test_library_imports_only_runtime_dependencies():
    first_party = set(PACKAGES)
    users = third_party(sources(*PACKAGES, adapters=False), first_party)
    problems = undeclared(users, RUNTIME)
    assert not problems, "undeclared runtime imports:\n" + "\n".join(problems)


def test_every_runtime_dependency_is_imported():
    users = third_party(sources(*PACKAGES, adapters=False), set(PACKAGES))
    provided = set().union(*(distributions(module) for module in users))
    unused = sorted(RUNTIME - provided)
    assert not unused, f"runtime dependencies that sparse_bench/ and theory_checks/ never import: {unused}"


@pytest.mark.parametrize("directory", ["tests", "theory_checks", "benchmarks"])
def test_tests_import_only_runtime_and_test_extras(directory):
    first_party = set(PACKAGES) | local_names(ROOT / directory) | {"benchmarks"}
    paths = sources(directory, adapters=True if directory == "theory_checks" else None)
    problems = undeclared(third_party(paths, first_party), RUNTIME | EXTRAS["test"] | EXTRAS["peers"])
    assert not problems, "imports missing from the runtime and test extras:\n" + "\n".join(problems)


def test_find_packages_covers_every_module_directory():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(where=str(ROOT), include=include))
    assert set(PACKAGES) <= found, f"packages.find misses {set(PACKAGES) - found}"
    module_dirs = {".".join(p.parent.relative_to(ROOT).parts) for p in sources(*PACKAGES)}
    missing = sorted(module_dirs - found)
    assert not missing, f"module directories that pip install . would leave out (no __init__.py?): {missing}"


def test_package_data_covers_every_data_file():
    package_data = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    unshipped = []
    for package in PACKAGES:
        root = ROOT / package
        for path in root.rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(root).as_posix()
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in package_data.get(package, [])):
                unshipped.append(f"{package}/{relative}")
    assert not unshipped, f"data files that package-data does not ship: {unshipped}"
    templates = list((ROOT / "sparse_bench" / "report" / "templates").glob("*.j2"))
    assert templates, "the report's templates are missing"
