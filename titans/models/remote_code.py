"""The model's code as Hugging Face remote code, generated from the package's own sources at save time.

``TitansPreTrainedModel.save_pretrained`` writes it beside the weights and puts ``auto_map`` (``AUTO_MAP``) into
``config.json``, so that ``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)`` builds the model
where only torch and transformers are installed.

transformers loads remote code from one flat directory: it copies the module that ``auto_map`` names and, found by
their ``from .name import ...`` lines, the modules it imports (and theirs), all as files beside it. The model's
modules live in three packages and import ``titans.layers`` and ``titans.memory`` absolutely. So the bundle is
written as one flat package: every module that ``titans.models.config`` and ``titans.models.modeling`` reach
becomes ``titans_<package>_<module>.py`` (titans/memory/scan.py -> ``titans_memory_scan.py``, a package's
``__init__.py`` -> ``titans_memory.py``), and only its imports of the package change, to relative imports of those
flat names; every other line is the source's (one header line is added on top). A module imported as a module
(``from . import mlp``) becomes ``from .titans_memory_mlp import __name__ as ...; from . import titans_memory_mlp as
mlp``: the first statement is the line transformers looks for.

Stand-ins (``STANDINS``) replace the two reachable modules that cannot be bundled as they are: the Triton kernels
of the memory scan (they need the triton package; the bundle runs the torch scan, which computes the same values)
and this module (a model loaded from bundled code is saved by transformers itself, which copies that code).

transformers loads the config class and the model class each into a directory of its own (named after a hash of the
files that class's module reaches), so a loaded config holds the MemoryConfig of one copy of titans_memory_config and
the model builds its memory with the other copy's: ``NeuralMemory`` accepts a MemoryConfig of either.

Nothing generated is kept in the repository; tests/models/test_models_remote_code.py checks that the bundle is the
sources line for line and that transformers finds every file of it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "titans"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: the modules auto_map names; the bundle is what they import, transitively
ENTRY_MODULES = ("titans.models.config", "titans.models.modeling")
AUTO_MAP = {
    "AutoConfig": "titans_models_config.TitansConfig",
    "AutoModelForCausalLM": "titans_models_modeling.TitansForCausalLM",
}
#: third-party packages the bundled code may import (besides the standard library)
ALLOWED_PACKAGES = ("torch", "transformers")
#: the first line of every generated file (``{source}``: the package file it comes from)
HEADER = ("# Generated from {source} of the titans package by titans.models.remote_code for trust_remote_code=True; "
          "do not edit (save_pretrained rewrites it).\n")

_TRITON_STANDIN = '''\
"""Stand-in for titans.memory.triton: the Triton kernels of the memory scan need the triton package and are not
part of the bundled code, so the dispatcher (titans_memory_dispatch) always runs the chunk loop with torch
(scan.MemoryScan), which computes the same values and gradients: "auto" finds no triton, and "triton" falls back
with a warning that names this reason."""
NOT_BUNDLED = ("the bundled remote code, which does not include them (install the titans package for them; the "
               "torch scan computes the same values)")


def triton_import_error():
    return NOT_BUNDLED


def check_runnable(device):
    return None


def unsupported_reason(spec, flat):
    return NOT_BUNDLED
'''

_SELF_STANDIN = '''\
"""Stand-in for titans.models.remote_code: these classes were loaded from bundled code, which transformers'
save_pretrained copies itself (custom_object_save, with auto_map), so there is nothing more to write."""
AUTO_MAP = {auto_map!r}


def write_remote_code(directory):
    return []
'''

#: reachable modules that are replaced, not bundled: module -> the text of its stand-in
STANDINS = {
    "titans.memory.triton": _TRITON_STANDIN,
    "titans.models.remote_code": _SELF_STANDIN.format(auto_map=AUTO_MAP),
}


class BundleError(RuntimeError):
    """The package's sources cannot be bundled as they are (an import form or a dependency the bundle cannot carry)."""


def flat_name(module: str) -> str:
    """The bundle's module for a package module: titans.memory.scan -> titans_memory_scan."""
    return module.replace(".", "_")


def source_file(module: str) -> Path | None:
    """The file of a package module (a package's ``__init__.py``), or None if ``module`` is no module of it."""
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    if path.is_dir() and (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _is_package_module(module: str) -> bool:
    return (module == PACKAGE or module.startswith(PACKAGE + ".")) and source_file(module) is not None


def _import_target(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute module a ``from X import ...`` of ``module`` (file ``path``) names."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _rewrite_import(node: ast.stmt, module: str, path: Path) -> tuple[str | None, list[str]]:
    """(the statement's replacement, or None to keep it; the package modules it imports)."""
    where = f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}"
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        if any(name == PACKAGE or name.startswith(PACKAGE + ".") for name in names):
            raise BundleError(f"{where}: `import {', '.join(names)}` cannot be bundled; import the names with "
                              f"`from {PACKAGE}.x import y` or relatively")
        return None, []
    target = _import_target(node, module, path)
    if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
        return None, []
    statements, modules, names = [], [], []
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        if _is_package_module(submodule):  # `from . import mlp`: a module imported as a module
            flat = flat_name(submodule)
            statements += [f"from .{flat} import __name__ as _{flat}",
                           f"from . import {flat} as {alias.asname or alias.name}"]
            modules.append(submodule)
        else:
            names.append(alias.name if alias.asname is None else f"{alias.name} as {alias.asname}")
    if names:
        if not _is_package_module(target):
            raise BundleError(f"{where}: {target} is not a module of the package")
        statements.insert(0, f"from .{flat_name(target)} import {', '.join(names)}")
        modules.insert(0, target)
    return "; ".join(statements), modules


def _bundle_module(module: str) -> tuple[str, list[str], set[str]]:
    """(the bundled text of ``module``, the package modules it imports, the other top-level packages it imports)."""
    path = source_file(module)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text, filename=str(path))
    statement_lines: dict[int, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            statement_lines[node.lineno] = statement_lines.get(node.lineno, 0) + 1
    imports, outside, replacements = [], set(), []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            outside |= {alias.name.split(".")[0] for alias in node.names}
        elif not node.level and node.module:
            outside.add(node.module.split(".")[0])
        replacement, modules = _rewrite_import(node, module, path)
        if replacement is None:
            continue
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        if statement_lines[node.lineno] > 1 or first[: node.col_offset].strip():
            raise BundleError(f"{path}:{node.lineno}: put this import on lines of its own to bundle it")
        # same indentation, whatever followed the statement on its last line (a comment), and the same line count
        new = first[: node.col_offset] + replacement + last[node.end_col_offset:]
        replacements.append((node.lineno, node.end_lineno, new + "\n" * (node.end_lineno - node.lineno)))
        imports += modules
    for start, end, new in sorted(replacements, reverse=True):
        lines[start - 1: end] = [new]
    outside.discard(PACKAGE)
    source = path.relative_to(PACKAGE_DIR.parent).as_posix()
    return HEADER.format(source=source) + "".join(lines), imports, outside


def bundle_sources() -> dict[str, str]:
    """The bundle: file name -> text, for every module the entry modules reach (stand-ins for ``STANDINS``)."""
    files, seen, todo = {}, set(), list(ENTRY_MODULES)
    allowed = set(ALLOWED_PACKAGES) | set(sys.stdlib_module_names)
    while todo:
        module = todo.pop(0)
        if module in seen:
            continue
        seen.add(module)
        name = flat_name(module) + ".py"
        if name in files:
            raise BundleError(f"two modules of the package flatten to {name}: rename one of them")
        if module in STANDINS:
            source = Path(*module.split(".")).as_posix()
            files[name] = HEADER.format(source=f"{source} (a stand-in)") + STANDINS[module]
            continue
        text, imports, outside = _bundle_module(module)
        if outside - allowed:
            raise BundleError(f"{source_file(module)} imports {', '.join(sorted(outside - allowed))}: the bundled "
                              f"code may use only {', '.join(ALLOWED_PACKAGES)} and the standard library")
        files[name] = text
        todo += imports
    return dict(sorted(files.items()))


def is_generated(path: Path) -> bool:
    """A file an earlier ``write_remote_code`` wrote (its first line is the header)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(HEADER.partition("{source}")[0])
    except (OSError, UnicodeDecodeError):
        return False


def write_remote_code(directory: str | Path) -> list[Path]:
    """Write the bundle into ``directory`` (generated files of an earlier bundle that it no longer has are removed);
    return the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = bundle_sources()
    for stale in directory.glob("titans_*.py"):
        if stale.name not in files and is_generated(stale):
            stale.unlink()
    written = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written
