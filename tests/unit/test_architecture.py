"""The shape the design promises: the core imports no adapter or bot, nothing installs a
top-level ``adapters``/``bots``, every package is declared, the public surface is sorted and
real, and the examples in the modules' docstrings run."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import iap_flow

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "iap_flow"
FORBIDDEN = ("iap_flow.adapters", "iap_flow.bots", "adapters", "bots")
MAPPED = {"iap_flow": "iap_flow", "adapters": "iap_flow.adapters", "bots": "iap_flow.bots"}


def module_level_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every module name imported when the module is imported (not inside a function)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package of the file
                yield node.lineno, "." * node.level + base
            else:
                yield node.lineno, base
                yield from ((node.lineno, f"{base}.{a.name}") for a in node.names)
        else:
            stack.extend(ast.iter_child_nodes(node))


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_scan_sees_imports_it_must_refuse() -> None:
    source = (
        "import iap_flow.adapters.sandbox\n"
        "from iap_flow import adapters\n"
        "if True:\n    import bots\n"
        "class C:\n    from adapters import x\n"
        "def f():\n    import iap_flow.bots\n"
    )
    found = [n for _, n in module_level_imports(ast.parse(source)) if forbidden(n)]
    assert sorted(found) == [
        "adapters",
        "adapters.x",
        "bots",
        "iap_flow.adapters",
        "iap_flow.adapters.sandbox",
    ]


EDGES = {
    # What users' tests import: the sandbox and memory notifier re-exported beside the manual
    # clock. Nothing in the core imports it (the import-linter contracts in pyproject.toml).
    "iap_flow/testing.py",
}
"""Modules inside ``iap_flow/`` that are not core and may import adapters."""


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CORE.rglob("*.py") if str(p.relative_to(ROOT)) not in EDGES),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_core_imports_no_adapter_or_bot(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [(line, name) for line, name in module_level_imports(tree) if forbidden(name)]
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}: load adapters by name at run time"


def test_no_top_level_adapters_or_bots_module_is_installed(tmp_path: Path) -> None:
    """Run from an empty folder so the repository itself is not on the path."""
    code = (
        "import importlib.util as u\n"
        "print(u.find_spec('adapters') is None, u.find_spec('bots') is None,"
        " u.find_spec('iap_flow.adapters') is not None)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True", "True"], out.stderr


def declared() -> tuple[set[str], dict[str, str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    return set(setuptools["packages"]), dict(setuptools["package-dir"])


def test_every_package_folder_is_declared_under_its_installed_name() -> None:
    packages, package_dir = declared()
    found = set()
    for folder, name in MAPPED.items():
        base = ROOT / folder
        if not base.is_dir():
            continue
        assert package_dir.get(name) == folder, f"package-dir must map {name} to {folder}/"
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]))
    assert found - packages == set(), "add these to [tool.setuptools] packages"
    assert packages - found == set(), "these declared packages have no folder"


def test_py_typed_ships() -> None:
    assert (CORE / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["iap_flow"]


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022's order: CONSTANTS, then Classes, then everything else, each alphabetical."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def test_public_names_are_sorted_and_exist() -> None:
    names = list(iap_flow.__all__)
    assert names == sorted(names, key=_isort_key)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(iap_flow, name), name
    assert iap_flow.__version__ != "0.0.0"  # installed: the version comes from metadata


def modules() -> list[str]:
    """Every module of the installed package (adapters and bots under their installed names)."""
    names = ["iap_flow"]
    for info in pkgutil.walk_packages(iap_flow.__path__, "iap_flow.", onerror=lambda _: None):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples_run(name: str) -> None:
    """``--doctest-modules`` would import ``adapters/*.py`` as a second, top-level copy
    (the folders install under other names), so each module runs its doctests here."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if name.startswith(("iap_flow.adapters.", "iap_flow.bots.")):
            pytest.skip(f"optional extra not installed: {exc}")
        raise
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_core_modules_have_examples() -> None:
    """A guard on the test above: it must be finding the examples that exist."""
    with_examples = []
    for name in modules():
        if name.startswith(("iap_flow.adapters", "iap_flow.bots")):
            continue
        finder = doctest.DocTestFinder()
        if any(t.examples for t in finder.find(importlib.import_module(name))):
            with_examples.append(name)
    assert {"iap_flow.domain.money", "iap_flow.domain.roles", "iap_flow.flow"} <= set(with_examples)


# -- module size ------------------------------------------------------------------------------

MAX_LINES = 400
"""No shipped module over this many lines: a longer one is split where a name explains the part."""


def test_no_shipped_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("iap_flow", "adapters", "bots")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (at most {MAX_LINES} lines each)"


# -- who touches the store -------------------------------------------------------------------

STORE_OWNERS = (
    "adapters/sqlite_store.py",
    "adapters/postgres/",
    "iap_flow/flow.py",  # the composition root builds the Context around the store
    "iap_flow/services/",  # the core's commands and reads: the Context's own store
)
"""Who may use ``flow.store`` / ``ctx.store``: the stores, the composition root, the core."""

SCANNED = ("iap_flow", "adapters", "bots", "examples")
_HOLDERS = {"flow", "_flow", "ctx", "_ctx"}


def store_uses(tree: ast.AST) -> list[int]:
    """Lines of ``<...>flow.store`` and ``<...>ctx.store`` (``self.flow.store`` included)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr != "store":
            continue
        holder = node.value
        name = holder.id if isinstance(holder, ast.Name) else getattr(holder, "attr", None)
        if name in _HOLDERS:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_store_scan_sees_every_way_of_reaching_the_store() -> None:
    source = (
        "flow.store.get_order('x')\n"
        "self.flow.store.remember_event()\n"
        "f(ctx.store)\n"
        "self._ctx.store.history('x')\n"
        "store.get_order('x')\n"  # a store held directly is a store's own business
        "restore = flow.restore\n"
    )
    assert store_uses(ast.parse(source)) == [1, 2, 3, 4]


def test_only_the_stores_the_composition_root_and_the_core_touch_the_store() -> None:
    found: dict[str, int] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel.startswith(STORE_OWNERS):
                continue
            uses = store_uses(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
            if uses:
                found[rel] = len(uses)
    assert found == {}, "use the core's reads and commands, not flow.store"


# -- what the domain may import --------------------------------------------------------------

DOMAIN_EXTERNALS = {"attrs", "statemachine", "iso4217"}  # iso4217: the currency table
"""Third-party packages the pure domain may import; everything else it imports is stdlib."""


def test_the_domain_imports_only_the_domain_the_standard_library_attrs_and_statemachine() -> None:
    """import-linter (``make imports``) checks the imports between iap-flow's own modules; the
    rule for third-party packages is an allow-list, which import-linter cannot state."""
    import grimp

    graph = grimp.build_graph("iap_flow", include_external_packages=True, cache_dir=None)
    domain = {
        m for m in graph.modules if m == "iap_flow.domain" or m.startswith("iap_flow.domain.")
    }
    imported = {i for m in domain for i in graph.find_modules_directly_imported_by(m)}
    own = {i for i in imported if i.split(".")[0] == "iap_flow"}
    assert own <= domain, f"the domain imports {sorted(own - domain)}"
    others = {i.split(".")[0] for i in imported} - {"iap_flow", *sys.stdlib_module_names}
    assert others <= DOMAIN_EXTERNALS, f"the domain imports {sorted(others - DOMAIN_EXTERNALS)}"
    seen = {i.split(".")[0] for i in imported}
    assert DOMAIN_EXTERNALS.issubset(seen)  # a guard: the scan sees the ones it allows
