"""The package's import graph: no circles, no private names across subpackages.

Every ``import`` and ``from ... import`` in every module of the package is
read from the source (those inside functions too, which run later but tie
the modules together all the same), and so is every ``alias._name`` taken
from an imported package module. The graph must have no cycle, and no module
may use another subpackage's underscore modules or names: what a subpackage
offers the others is its public names.
"""

import ast
from pathlib import Path

import napari_pyramids

PACKAGE = "napari_pyramids"
ROOT = Path(napari_pyramids.__file__).parent


def _modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package in ``package_dir``, by its dotted name."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _modules(ROOT)


def _resolve(module: str, level: int, name: str | None, is_package: bool) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(module: str, modules: dict) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import."""
    path = modules[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, None, node.lineno))
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module, is_package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # "from package import module"
                    found.append((sub, None, node.lineno))
                    aliases[alias.asname or alias.name] = sub
                else:
                    found.append((target, alias.name, node.lineno))
    for node in ast.walk(tree):  # alias._private on an imported package module
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append((aliases[node.value.id], node.attr, node.lineno))
    return [(m, n, line) for m, n, line in found if m.split(".")[0] == PACKAGE]


def _subpackage(module: str) -> str:
    """The first-level part a module belongs to (``core``, ``nn``, ``layers``...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private_part(module: str, name: str | None) -> str | None:
    """The underscore module or name in ``module`` (+ ``name``), if any."""
    for part in [*module.split(".")[1:], name or ""]:
        if part.startswith("_") and not part.startswith("__"):
            return part
    return None


def _graph(modules: dict) -> dict[str, list[str]]:
    """Each module's imports of other package modules."""
    return {
        module: sorted({m for m, _, _ in _imports(module, modules) if m in modules})
        for module in modules
    }


def _crossings(modules: dict) -> list[str]:
    """Each use of another subpackage's underscore module or name."""
    return [
        f"{module} line {line}: {target}" + (f".{name}" if name else "")
        for module in modules
        for target, name, line in _imports(module, modules)
        if _subpackage(target) != _subpackage(module) and _private_part(target, name)
    ]


GRAPH = _graph(MODULES)


def test_the_walk_sees_the_package():
    assert {"napari_pyramids.core.pyramid", "napari_pyramids.console"} <= set(MODULES)
    # imports inside functions count: dispatch loads lazy.pyramid in one
    assert "napari_pyramids.dispatch" in GRAPH["napari_pyramids.actions.pyramid"]
    assert "napari_pyramids.lazy.pyramid" in GRAPH["napari_pyramids.dispatch"]


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle among the package's modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in graph[module]:
            # a package's __init__ runs when any of its modules is imported:
            # importing the package from inside it is no edge of its own
            if dep == module or module.startswith(dep + "."):
                continue
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in graph:
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_circle():
    cycle = _cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_private_names_across_subpackages():
    assert _crossings(MODULES) == []


def _make_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    """A made-up napari_pyramids under ``root`` with ``files`` ({"sub/a.py": code})."""
    for name, code in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    for folder in [root / PACKAGE, *(root / PACKAGE).rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    return _modules(root / PACKAGE)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """On made-up packages, the two checks find what they are written to find."""
    # a circle closed by an import inside a function
    circle = _make_package(
        tmp_path / "circle",
        {
            "pkg/a.py": "def f():\n    from . import b\n",
            "pkg/b.py": "from . import a\n",
        },
    )
    assert _cycle(_graph(circle)) is not None
    # a private name reached through a module alias, and an underscore module
    private = _make_package(
        tmp_path / "private",
        {
            "one/a.py": "from ..other import b\nb._hidden\n",
            "one/c.py": "from napari_pyramids.other._inner import x\n",
            "other/b.py": "",
            "other/_inner.py": "x = 1\n",
        },
    )
    found = _crossings(private)
    assert [f.split(": ")[1] for f in found] == [
        "napari_pyramids.other.b._hidden",
        "napari_pyramids.other._inner.x",
    ]
    assert _cycle(_graph(private)) is None
