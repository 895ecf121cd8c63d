"""The layering of docs/design.md, enforced on memtrace's imports (every import, TYPE_CHECKING ones too).

    leaf       errors patterns timeutil ids jsonlimits config rows rowfilter keys crypto metrics logs supervise pgsql
               threadnames
               (and the package root, for __version__): import only leaf modules
    storage    metadata/ journal/ arc/: leaf modules and themselves, never each other
    services   memory/ delivery/ auth authlimit activity names readiness: storage, leaf and other services
    api/       services, leaf, and of metadata/ only the models and the repositories that serve as the agents,
               sessions and audit services (agents, sessions, forgetting)
    top        app runtime stores server/ admin/ dev mcp/ client/ arclite/ integrations/ __main__: anything below,
               except client/ (nothing of the server), mcp/ and integrations/ (client/ and leaf only) and
               arclite/ (leaf logging only)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "memtrace"

LEAF = {"memtrace", "errors", "patterns", "timeutil", "ids", "jsonlimits", "config", "rows", "rowfilter", "keys",
        "crypto", "metrics", "logs", "supervise", "pgsql", "threadnames", "terms"}
STORAGE = {"metadata", "journal", "arc"}
SERVICES = {"memory", "delivery", "auth", "authlimit", "activity", "names", "readiness"}
API_METADATA = {"memtrace.metadata.models", "memtrace.metadata.agents", "memtrace.metadata.sessions",
                "memtrace.metadata.forgetting"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every memtrace module `path` imports, `from memtrace.x import y` naming `memtrace.x.y` when y is one."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "memtrace")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "memtrace":
            out.add(node.module)
            for alias in node.names:
                sub = ROOT.parent.joinpath(*node.module.split("."), alias.name)
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    out.add(f"{node.module}.{alias.name}")
    return out


def unit(module: str) -> str:
    """The layer unit of a module: its top-level package or module under memtrace (the root is `memtrace`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "memtrace"


def allowed(importer: str, imported: str) -> bool:
    src, dst = unit(importer), unit(imported)
    if src == dst:
        return True
    if src in LEAF:
        return dst in LEAF
    if src in STORAGE:
        return dst in LEAF
    if src in SERVICES:
        return dst in LEAF | STORAGE | SERVICES
    if src == "api":
        return dst in LEAF | SERVICES or (dst == "metadata" and imported in API_METADATA | {"memtrace.metadata"})
    if src == "client":
        return False
    if src in ("mcp", "integrations"):
        return dst == "client" or dst in LEAF
    if src == "arclite":
        return imported in ("memtrace.logs", "memtrace")  # `from memtrace import logs`
    return True  # the top: composition root and entry points


def edges() -> list[tuple[str, str]]:
    return sorted((module_name(p), dst) for p in ROOT.rglob("*.py") for dst in imports(p))


def test_every_module_is_in_a_layer() -> None:
    top = {"app", "runtime", "stores", "server", "admin", "dev", "mcp", "client", "arclite", "integrations",
           "__main__", "api"}
    units = {unit(module_name(p)) for p in ROOT.rglob("*.py")}
    assert units - (LEAF | STORAGE | SERVICES | top) == set()


def test_no_module_imports_against_the_layering() -> None:
    wrong = [f"{src} -> {dst}" for src, dst in edges() if not allowed(src, dst)]
    assert wrong == []


@pytest.mark.parametrize("package", ["metadata", "journal", "arc"])
def test_storage_packages_know_nothing_of_each_other(package: str) -> None:
    others = STORAGE - {package}
    crossing = [f"{src} -> {dst}" for src, dst in edges() if unit(src) == package and unit(dst) in others]
    assert crossing == []


def test_the_checker_sees_a_violation() -> None:
    """The walk really finds imports: a storage module importing a service is refused, a leaf one allowed."""
    assert ("memtrace.journal.committer", "memtrace.rows") in edges()
    assert not allowed("memtrace.journal.forget", "memtrace.memory.filters")
    assert not allowed("memtrace.api.deps", "memtrace.journal")
    assert not allowed("memtrace.metadata.arc_instances", "memtrace.arc.binding")


MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 210  # "about 200": arclite's Database is the largest
MAX_MODULE_LINES = 400


def test_no_function_class_or_module_is_too_long() -> None:
    """One job per unit: the sizes the structure review settled on (static assets are not code)."""
    too_long: list[str] = []
    for path in ROOT.rglob("*.py"):
        source = path.read_text()
        name = module_name(path)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"module {name}")
        for node in ast.walk(ast.parse(source)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if isinstance(node, ast.stmt) else 0
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION_LINES:
                too_long.append(f"function {name}.{node.name} ({size})")
            elif isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                too_long.append(f"class {name}.{node.name} ({size})")
    assert too_long == []
