"""The repository's shape: no module imports a layer above it (docs/architecture.md), the tests are laid out by what
they guard and no test module imports another (shared code lives in the helper modules of tests/), and nothing points
outside the repository (a clone has everything it refers to)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from train_helpers import ROOT

PACKAGE = ROOT / "titans"

# docs/architecture.md: each module of titans/ in its layer, lowest first; a module may import its own layer and
# the layers below it. Within the bottom, titans.memory may use titans.layers (never the reverse); beside each
# other, titans.eval may use titans.data (the tokenizer of a checkpoint), never the reverse. titans.eval.lm_eval_cli
# is an entry point above titans.cli (layer 10) kept in titans.eval so that `python -m titans.eval.lm_eval_cli` stays stable.
LAYERS = {
    "titans": 0, "titans.errors": 0, "titans.cpu_threads": 0, "titans.progress": 0,
    "titans.hub": 1,
    "titans.layers": 2,
    "titans.memory": 3,
    "titans.models": 4,
    "titans.tasks": 5,
    "titans.data": 6,
    "titans.eval": 7,
    "titans.training": 8,
    "titans.cli": 9,
    "titans.eval.lm_eval_cli": 10,  # an entry point (lm-eval's command line, over titans.cli) kept beside its adapter
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The LAYERS entry a module belongs to: its longest prefix there."""
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len, default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS and docs/architecture.md"
    if best == "titans" and module != "titans":
        raise AssertionError(f"{module} has no layer: add it to LAYERS and docs/architecture.md")
    return best


def _is_module(name: str) -> bool:
    """``name`` is a module or a package of the repository."""
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def _from_target(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from X import ...`` in ``package`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:`` (imports that only a type checker runs)."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, runtime_only: bool = False):
    """Every import statement of ``path``, at any depth, with the package its relative imports start from;
    ``runtime_only``: without those in the body of an ``if TYPE_CHECKING:`` block."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = set()
    if runtime_only:
        skipped = {id(inner) for block in ast.walk(tree) if _is_type_checking_block(block)
                   for stmt in block.body for inner in ast.walk(stmt)}
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped], package


def _is_own(name: str) -> bool:
    """``name`` is the project's own code."""
    return name == "titans" or name.startswith("titans.")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the project's own code in ``path``, at any depth (function-level
    imports included), relative imports resolved."""
    nodes, package = _imports(path)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        else:
            target = _from_target(node, package)
            found.append((node.lineno, target))
            # ``from titans import eval`` / ``from . import mlp``: the names may be modules themselves
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if _is_module(f"{target}.{alias.name}")]
    return [(line, name) for line, name in found if _is_own(name)]


def module_dependencies(path: Path) -> set[str]:
    """The project's modules that ``path`` imports, at any depth (a function-level import defers a cycle, it does
    not remove it). ``from . import mlp`` depends on the module mlp alone (its package is already being imported);
    ``from .scan import MemoryScan`` on scan; ``from . import memory_scan``, a name of the package's
    ``__init__``, on the package. Imports that only a type checker runs (``if TYPE_CHECKING:``) are left out."""
    nodes, package = _imports(path, runtime_only=True)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        target = _from_target(node, package)
        modules = {f"{target}.{alias.name}" for alias in node.names if _is_module(f"{target}.{alias.name}")}
        found |= modules
        if len(modules) < len(node.names):
            found.add(target)
    return {name for name in found if _is_own(name)}


def package_import_graph(package: Path) -> dict[str, set[str]]:
    """The modules of the package at ``package`` (its subpackages' included) -> the modules of it they import."""
    paths = {module_name(path): path for path in sorted(package.rglob("*.py"))}
    return {module: {m for m in module_dependencies(path) if m in paths and m != module}
            for module, path in paths.items()}


def memory_import_graph() -> dict[str, set[str]]:
    """The modules of titans.memory (its subpackage's included) -> the modules of titans.memory they import."""
    return package_import_graph(PACKAGE / "memory")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    done, stack = set(), []

    def visit(node):
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_test_gaps():
    """The parser sees function-level and relative imports (the kinds an upward import would hide in)."""
    found = {name for _, name in imported_modules(PACKAGE / "memory" / "layer.py")}
    assert {"titans.memory.chunked", "titans.memory.mlp"} <= found  # from .chunked import ..., from . import mlp
    found = {name for _, name in imported_modules(PACKAGE / "eval" / "suites.py")}
    assert "titans.eval.lm_adapter" in found  # imported inside a function


def test_the_memory_import_graph_has_no_test_gaps():
    """The graph has the edges a cycle would hide in (function-level imports, ``from . import x``, a subpackage's
    ``from .. import x``) and none to a package for ``from . import <module>``; the search finds cycles."""
    graph = memory_import_graph()
    assert {"titans.memory.mlp", "titans.memory.dispatch"} <= graph["titans.memory.layer"]
    assert "titans.memory" not in graph["titans.memory.layer"]  # ``from . import mlp`` is an edge to mlp alone
    assert "titans.memory.triton" in graph["titans.memory.dispatch"]  # imported inside apply_scan
    assert "titans.memory.step" in graph["titans.memory.triton.op"]  # ``from .. import step``
    assert "titans.models.config" not in package_import_graph(PACKAGE / "models")["titans.models.variants.base"]
    assert "titans.models.config" in {name for _, name in imported_modules(PACKAGE / "models" / "variants" / "base.py")}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b", "d"}, "d": set()}) == ["b", "c", "b"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_memory_package_has_no_import_cycle():
    """docs/architecture.md, "Inside titans.memory": the modules of titans.memory import each other without a
    cycle (the scan once imported the Triton package's dispatcher, which imported the scan back); the Triton
    package never imports the torch scan or the dispatcher."""
    graph = memory_import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in titans.memory: " + " -> ".join(cycle)
    triton = {m: deps for m, deps in graph.items() if m.startswith("titans.memory.triton")}
    assert all(deps <= {"titans.memory.scan_spec", "titans.memory.step"} | set(triton) for deps in triton.values())


def test_the_report_package_has_no_import_cycle():
    """docs/architecture.md, "Inside titans.eval.report": its modules import each other without a cycle; the
    entries come together in build alone, and no module below the entries imports one of them."""
    graph = package_import_graph(PACKAGE / "eval" / "report")
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in titans.eval.report: " + " -> ".join(cycle)
    entries = {f"titans.eval.report.{name}" for name in
               ("table1", "table2", "tables3_4", "table5", "figure6", "figure7", "figures8_9")}
    assert entries <= graph["titans.eval.report.build"]
    assert all(not deps & entries for module, deps in graph.items() if module != "titans.eval.report.build")


@pytest.mark.parametrize("package", sorted(str(p.parent.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("__init__.py")))
def test_no_package_has_an_import_cycle_among_its_modules(package):
    """Inside every package of titans (its subpackages' modules included) the module-level imports form no cycle,
    function-level imports included: each module can be read after the ones it imports."""
    graph = package_import_graph(PACKAGE.parent / package)
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in {package.replace('/', '.')}: " + " -> ".join(cycle)


def test_no_module_imports_a_layer_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for line, target in imported_modules(path):
            other = layer_of(target)
            if other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target} ({other} is not below it)")
    assert not upward, "\n".join(upward)


def imports_of_test_modules(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, name) of every import in ``source``, at any depth, of a test module (a ``test_*`` module or name:
    ``import test_x``, ``from test_x import f``, ``from tests.test_x import f``, ``from . import test_x``)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if any(p.startswith("test_") for p in name.split("."))]
    return found




def test_the_test_import_check_has_no_gaps():
    source = ("import test_a\nfrom test_b import f\nfrom tests.test_c import g\nfrom . import test_d\n"
              "def h():\n    from test_e import ESSAY\n"
              "import numerics\nfrom train_helpers import ROOT\nfrom scripts import count_ops\nimport pytest\n")
    assert [name for _, name in imports_of_test_modules(source)] == [
        "test_a", "test_b", "tests.test_c", "test_d", "test_e"]


def test_no_test_module_imports_another():
    """A test module imports helper modules (tests/*.py without the test_ prefix: train_helpers, numerics,
    memory_oracle, ...), never another test module: importing one runs its module-level code and, under pytest,
    can collect its tests twice or make a test depend on where another lives."""
    hits = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        hits += [f"{path.relative_to(ROOT)}:{line}: imports {name}"
                 for line, name in imports_of_test_modules(path.read_text(encoding="utf-8"), str(path))]
    assert not hits, "\n".join(hits)


# tests/<folder>/: what its test modules guard (tests/README.md describes each). The helper modules they share
# (conftest.py, train_helpers.py, numerics.py, ...) sit in tests/ itself, which pyproject.toml puts on the pythonpath.
TEST_FOLDERS = {
    "memory": "titans.memory", "layers": "titans.layers", "models": "titans.models", "data": "titans.data",
    "eval": "titans.eval", "training": "titans.training", "cli": "titans.cli and the command-line entry points",
    "tasks": "the Table 3-4 tasks (forecasting, genomics)", "scripts": "scripts/",
    "repo": "the repository as a whole",
}


def test_the_tests_are_laid_out_by_what_they_guard():
    """Every test module is in one of TEST_FOLDERS (each described in tests/README.md), one level down; every helper
    module is in tests/ itself (the folders are not on the pythonpath); no test module shares its file name with
    another: pytest's default import mode (prepend) imports a test module by its file name, with its folder put on
    sys.path, so two test_x.py in two folders would clash."""
    tests = ROOT / "tests"
    misplaced, names = [], {}
    for path in sorted(tests.rglob("*.py")):
        relative = path.relative_to(tests)
        if path.name.startswith("test_"):
            if len(relative.parts) != 2 or relative.parts[0] not in TEST_FOLDERS:
                misplaced.append(f"tests/{relative.as_posix()}: a test module outside tests/<folder>/ "
                                 f"(folders: {', '.join(TEST_FOLDERS)})")
            names.setdefault(path.name, []).append(relative.as_posix())
        elif len(relative.parts) != 1:
            misplaced.append(f"tests/{relative.as_posix()}: a helper module outside tests/ (not importable)")
    assert not misplaced, "\n".join(misplaced)
    assert all(len(paths) == 1 for paths in names.values()), {n: p for n, p in names.items() if len(p) > 1}
    assert {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(TEST_FOLDERS)
    readme = (tests / "README.md").read_text(encoding="utf-8")
    assert all(f"`tests/{folder}/`" in readme for folder in TEST_FOLDERS), "tests/README.md describes every folder"


def _repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
        return [ROOT / name for name in listed if (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked archive)
        skip = {".git", ".venv", "logs", "outputs", "multirun", "wandb", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_nothing_points_outside_the_repository():
    """A user who clones the project has no sibling directories and no private notes: every decision and reference
    is written into the repository (docs/design.md). The patterns are spelt in pieces so this file does not hold
    them."""
    anywhere = ["../" + "shared", "/work/" + "shared", "paper " + "notes", "paper" + "-notes"]
    outside_docs = ["DESIGN" + ".md"]
    hits = []
    for path in _repository_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        lowered = text.lower()
        relative = path.relative_to(ROOT).as_posix()
        hits += [f"{relative}: {p}" for p in anywhere if p.lower() in lowered]
        if not relative.startswith("docs/"):
            hits += [f"{relative}: {p}" for p in outside_docs if p in text]
    assert not hits, hits


def test_the_readme_links_the_design_and_architecture_documents():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("docs/design.md", "docs/architecture.md"):
        assert (ROOT / doc).is_file() and f"({doc})" in readme, doc
