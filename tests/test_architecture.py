"""The backend's packages follow the data flow: no import cycles between them, inference never
loads training code, and every source folder is a package (so a wheel ships it).

The graph's nodes are backend/'s top-level packages and modules (fcg, render, training, audio...);
an edge a -> b is any import (module level or inside a function, absolute or relative) in a's
files of something in b."""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[1] / "backend"


def _module(path: Path, root: Path) -> tuple[list[str], bool]:
    """backend/x/y.py -> (['flowvq', 'x', 'y'], is_package_init)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    init = parts[-1] == "__init__"
    return ["flowvq"] + (parts[:-1] if init else parts), init


def _imported(node: ast.AST, module: list[str], init: bool) -> list[str]:
    """Absolute dotted names an import statement refers to (module and, for `from`, module.name)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module if init else module[:-1]
        base = base[: len(base) - (node.level - 1)]
        stem = ".".join(base + (node.module.split(".") if node.module else []))
    else:
        stem = node.module or ""
    return [stem] + [f"{stem}.{a.name}" for a in node.names if a.name != "*"]


def package_graph(root: Path = BACKEND) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """{package: {packages it imports}} and, per edge, the files that make it."""
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module, init = _module(path, root)
        if len(module) < 2:
            continue  # backend/__init__.py: the root package itself
        source = module[1]
        with warnings.catch_warnings():  # a bad escape in someone's docstring is not this test's business
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for name in _imported(node, module, init):
                parts = name.split(".")
                if parts[0] != "flowvq" or len(parts) < 2 or parts[1] == source:
                    continue
                if not ((root / parts[1]).is_dir() or (root / f"{parts[1]}.py").exists()):
                    continue  # a name of flowvq/__init__.py (e.g. __version__), not a package
                graph[source].add(parts[1])
                where[(source, parts[1])].add(str(path.relative_to(root)))
    return graph, where


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_package_graph_has_no_cycles():
    graph, where = package_graph()
    cycle = find_cycle(graph)
    if cycle:
        edges = "\n".join(f"  {a} -> {b}: {', '.join(sorted(where[(a, b)]))}" for a, b in zip(cycle, cycle[1:]))
        raise AssertionError(f"import cycle {' -> '.join(cycle)}\n{edges}")


def test_cycle_detection_reports_the_cycle(tmp_path):
    """The scan sees function-local and relative imports, and find_cycle names the loop."""
    for pkg in ("a", "b"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "a" / "x.py").write_text("def f():\n    from ..b import y\n")
    (tmp_path / "b" / "y.py").write_text("import flowvq.a.x\n")
    graph, where = package_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"a"}} and where[("a", "b")] == {"a/x.py"}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_inference_imports_nothing_from_training():
    code = ("import importlib, sys\n"
            "import flowvq.server, flowvq.fcg, flowvq.render\n"
            "for name in ('flowvq.generate.pipeline', 'flowvq.fcg.generator', 'flowvq.render.plates'):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ModuleNotFoundError as e:\n"
            "        if e.name != name:\n"
            "            raise\n"
            "print(' '.join(sorted(m for m in sys.modules if m == 'flowvq.training' "
            "or m.startswith('flowvq.training.'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"inference loaded training modules: {out.stdout.strip()}"


def test_every_source_folder_is_a_package():
    """setuptools ships packages: a folder of .py files without __init__.py would be left out of a wheel."""
    missing = [str(d.relative_to(BACKEND)) for d in sorted(BACKEND.rglob("*"))
               if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]
    assert not missing, f"folders with .py files but no __init__.py: {missing}"
