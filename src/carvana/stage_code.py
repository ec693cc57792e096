"""The code a stage runs, as a digest: a rule's ``params``, so that editing the code reruns the
stage and what depends on it, and nothing else.

Snakemake reruns a job when its shell text, inputs or params change, but knows nothing of the
Python that the shell command runs. So each rule carries the digest of its stage's code: the
``run`` of the stage's module in ``carvana.stages`` (with the module-level code it uses) and every
``carvana`` module it or the stage module's top-level imports pull in, directly or through other
modules, found by reading the import statements (those inside functions too). The stage's
``add_arguments`` is left out: the rule passes every flag that matters, so a flag's change is a
change of the rule's shell text. A module's text is read as Python syntax with docstrings dropped:
comments, blank lines, formatting and docstrings change nothing; code does.

A training job of one model leaves out every other architecture's module (``exclude``), so editing
``unet11.py`` retrains the unet11 jobs only.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "carvana"
DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
SOURCE_DIR = Path(__file__).resolve().parent  # the package folder: carvana/<...>.py


def module_path(module: str, source_dir: Path = SOURCE_DIR) -> Path | None:
    """The source file of a ``carvana`` module or package, or None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = source_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _tree(path: Path) -> ast.Module:
    status = path.stat()
    return _parse(path, status.st_mtime_ns, status.st_size)


@cache
def _parse(path: Path, mtime_ns: int, size: int) -> ast.Module:
    """Parsed once per version of the file (the workflow asks once per job)."""
    return ast.parse(path.read_text(), filename=str(path))


def _module_text(path: Path) -> str:
    status = path.stat()
    return _module_text_of(path, status.st_mtime_ns, status.st_size)


@cache
def _module_text_of(path: Path, mtime_ns: int, size: int) -> str:
    """A module's code text, made once per version of the file: every stage shares most modules."""
    return _code_text(_parse(path, mtime_ns, size))


def _module_imports(module: str, source_dir: Path) -> frozenset[str]:
    """The ``carvana`` modules that ``module``'s file imports (see ``_imported_modules``)."""
    path = module_path(module, source_dir)
    assert path is not None  # only resolvable names are asked for
    status = path.stat()
    return _module_imports_of(module, source_dir, path, status.st_mtime_ns, status.st_size)


@cache
def _module_imports_of(module: str, source_dir: Path, path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """Found once per version of the file: each stage's digest walks most modules' imports."""
    return frozenset(_imported_modules(_parse(path, mtime_ns, size), module, source_dir))


def _imported_modules(node: ast.AST, module: str, source_dir: Path) -> set[str]:
    """``carvana`` modules that ``node`` imports, anywhere in it (``from carvana import rle``
    names the module ``carvana.rle``; ``from carvana.layout import X`` names ``carvana.layout``)."""
    found: set[str] = set()
    path = module_path(module, source_dir)
    package = module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found.update(alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in child.names)
    return {name for name in found if module_path(name, source_dir) is not None}


def _with_packages(modules: Iterable[str]) -> set[str]:
    """The modules and every package above them: importing one runs its packages' __init__."""
    result: set[str] = set()
    for module in modules:
        parts = module.split(".")
        result.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return result


def module_closure(
    roots: Iterable[str], exclude: Iterable[str] = (), source_dir: Path = SOURCE_DIR
) -> set[str]:
    """``roots`` and every ``carvana`` module they import, transitively, not entering ``exclude``."""
    excluded = set(exclude)
    seen: set[str] = set()
    todo = [name for name in _with_packages(roots) if name not in excluded]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _with_packages(_module_imports(module, source_dir)):
            if name not in seen and name not in excluded:
                todo.append(name)
    return seen


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    """A module's, class's or function's body without its docstring (a ``pass`` if nothing is left)."""
    first = body[0].value if body and isinstance(body[0], ast.Expr) else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return body[1:] or [ast.Pass()]
    return body


def _code_text(node: object) -> str:
    """The node as Python syntax, without positions, comments or docstrings. Like ``ast.dump``,
    but the same text on every Python version: fields that are empty (new versions add some, e.g.
    3.12's ``type_params=[]``, and 3.13's dump leaves them out) are left out, so rebuilding the
    environment on a newer Python reruns nothing. Docstrings are left out as the tree is read (the
    tree itself, shared by every stage's digest, is not changed)."""
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            value = getattr(node, name, None)
            if name == "body" and isinstance(node, DOCSTRING_OWNERS):
                value = _without_docstring(node.body)
            if value is None or value == []:
                continue
            fields.append(f"{name}={_code_text(value)}")
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(_code_text(item) for item in node)}]"
    return repr(node)


def stage_names(source_dir: Path = SOURCE_DIR) -> list[str]:
    """The ``carvana`` subcommands: one module each in ``carvana/stages``."""
    folder = source_dir / "stages"
    return sorted(
        path.stem.replace("_", "-") for path in folder.glob("*.py") if not path.name.startswith("_")
    )


def _stage_definitions(module: str, stage: str, source_dir: Path) -> list[ast.stmt]:
    """The stage module's ``run`` and the module-level functions, classes and constants it uses,
    transitively (not ``add_arguments`` or ``HELP``: a flag change changes the rule's shell line)."""
    path = module_path(module, source_dir)
    if path is None or path.parent != source_dir / "stages":
        raise ValueError(f"no stage {stage!r}; stages: {', '.join(stage_names(source_dir))}")
    definitions: dict[str, ast.stmt] = {}
    for node in _tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            definitions[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                definitions.update({name.id: node for name in ast.walk(target) if isinstance(name, ast.Name)})
    if "run" not in definitions:
        raise ValueError(f"stage module {module} has no run(args)")
    chosen: dict[str, ast.stmt] = {}
    todo = ["run"]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen[name] = definitions[name]
        used = {node.id for node in ast.walk(definitions[name]) if isinstance(node, ast.Name)}
        todo.extend(sorted(used & set(definitions) - set(chosen)))
    unique = {id(node): node for node in chosen.values()}  # one statement may define several names
    return sorted(unique.values(), key=lambda node: node.lineno)


def stage_digest(stage: str, exclude: Iterable[str] = (), source_dir: Path = SOURCE_DIR) -> str:
    """A 16-hex-digit digest of the code that ``carvana <stage>`` (e.g. ``train`` or
    ``tune-threshold``) runs: its module's ``run`` with the module-level code it uses, and every
    ``carvana`` module that code or the module's top-level imports pull in, leaving out the
    modules in ``exclude`` and what only they import."""
    module = f"{PACKAGE}.stages.{stage.replace('-', '_')}"
    definitions = _stage_definitions(module, stage, source_dir)
    path = module_path(module, source_dir)
    assert path is not None  # checked by _stage_definitions
    top_level_imports = [node for node in _tree(path).body if isinstance(node, ast.Import | ast.ImportFrom)]
    roots = _with_packages([module]) - {module}  # importing the stage runs its packages' __init__
    for node in [*definitions, *top_level_imports]:
        roots |= _imported_modules(node, module, source_dir)
    digest = hashlib.sha256()
    for definition in definitions:
        digest.update(_code_text(definition).encode())
    for name in sorted(module_closure(roots, exclude, source_dir)):
        module_file = module_path(name, source_dir)
        assert module_file is not None
        digest.update(f"\n{name}\n".encode())
        digest.update(_module_text(module_file).encode())
    return digest.hexdigest()[:16]
