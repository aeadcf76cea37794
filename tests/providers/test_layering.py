"""The providers package's imports, read from the source (AST): what it may depend on, and
no cycle inside it (the registry imports provider modules, never the other way round)."""

from __future__ import annotations

import ast
from pathlib import Path

import stockpipe

ROOT = Path(stockpipe.__file__).parent
PROVIDERS = ROOT / "providers"
# DESIGN.md: providers import models/errors/config only (plus the redaction leaf and the
# calendars' suffix table); storage, the pipeline and the CLI are above them.
ALLOWED_OUTSIDE = {"stockpipe.errors", "stockpipe.redaction", "stockpipe.config", "stockpipe.calendars",
                   "stockpipe.models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The stockpipe modules `path` imports, at any depth of the file (lazy imports too)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.startswith("stockpipe")}


def provider_modules() -> dict[str, set[str]]:
    known = {module_name(p) for p in ROOT.rglob("*.py")}
    return {module_name(p): {m for m in imports(p) if m in known and m != module_name(p)}
            for p in PROVIDERS.rglob("*.py")}


def test_providers_import_nothing_above_them():
    for module, deps in provider_modules().items():
        outside = {d for d in deps if not d.startswith("stockpipe.providers") and d != "stockpipe"}
        assert outside <= ALLOWED_OUTSIDE, (module, outside - ALLOWED_OUTSIDE)


def test_no_provider_module_imports_the_registry():
    importers = [m for m, deps in provider_modules().items() if "stockpipe.providers.registry" in deps]
    assert importers == []


def test_no_import_cycle_among_providers():
    graph = {m: {d for d in deps if d.startswith("stockpipe.providers")} for m, deps in provider_modules().items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join(path + (module,))
        if module in done:
            return
        for dep in graph.get(module, ()):
            visit(dep, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())
