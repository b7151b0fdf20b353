"""The migration check behind `msq check`: what will fail when a servable written for MindSpore
Serving runs on msq, each finding with its fix.

Two sources, both without a broker or a socket:

- the servable folder's Python files, read (`ast`, not run) for imports of the MindSpore 1.x
  modules and uses of the Pillow constants that `msq.workers.legacy` maps;
- the worker's own loading (`msq.workers.servable`): the config is imported (again under the
  legacy mode when only the removed modules stopped it, so the rest is still checked), the
  version folders listed, and each version's models loaded, checked against the methods and
  warmed up on the CPU. A method input or output whose dtype the loaded servable cannot tell
  (its signature's `TensorSpec.dtype` is None) is reported as untyped.

Errors will stop the worker or fail requests; warnings (untyped tensors, ignored folders) will
not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from msq.workers.decryption import Decryption
from msq.workers.definition import ServableDef, ServableLoadError
from msq.workers.legacy import (
    OR_LEGACY,
    REMOVED_MODULES,
    REMOVED_PILLOW_CONSTANTS,
    legacy_imports,
)
from msq.workers.model import ModelDecryptionError
from msq.workers.servable import (
    CONFIG_FILE,
    LoadedServable,
    import_config,
    is_version_folder,
    load_version,
)


class Severity(StrEnum):
    """How bad a finding is: an error stops the worker or fails requests."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of a servable: where it is, what will fail, and the fix."""

    servable: str
    severity: Severity
    where: str
    problem: str
    fix: str


def check_servable(
    servable_dir: Path, name: str, decryption: Decryption | None = None
) -> list[Finding]:
    """Everything `msq check` finds in servable `name` of `servable_dir`."""
    if not (servable_dir / name).is_dir():
        problem = f"servable folder {servable_dir / name} does not exist"
        return [_finding(name, "", problem, f"check the name, or create {name}/{CONFIG_FILE}")]
    findings = list(_scan_sources(servable_dir, name))
    definition, failure = _import(servable_dir, name, legacy=False)
    if failure is not None and isinstance(failure.__cause__, ImportError) and findings:
        # Most likely the removed modules reported above: check what remains without them.
        definition, failure = _import(servable_dir, name, legacy=True)
    if failure is not None:
        problem = f"{failure}: the worker exits at start-up"
        findings.append(_finding(name, CONFIG_FILE, problem, "fix servable_config.py"))
    findings.extend(_check_versions(servable_dir, name, definition, decryption))
    return findings


def _finding(
    servable: str, where: str, problem: str, fix: str, severity: Severity = Severity.ERROR
) -> Finding:
    return Finding(servable, severity, f"{servable}/{where}" if where else servable, problem, fix)


# ---------------------------------------------------------------------------------- sources


def _scan_sources(servable_dir: Path, name: str) -> Iterator[Finding]:
    folder = servable_dir / name
    for path in sorted(folder.rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # importing the config reports it
        where = path.relative_to(folder).as_posix()
        yield from _scan_tree(name, where, tree)


def _scan_tree(servable: str, where: str, tree: ast.AST) -> Iterator[Finding]:
    images = _pil_image_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.stmt, ast.expr)):
            continue
        for module in _imported_modules(node):
            if module in REMOVED_MODULES:
                yield _finding(
                    servable,
                    f"{where}:{node.lineno}",
                    f"imports {module}, removed in MindSpore 2.0: the worker exits at start-up "
                    f"(No module named '{module}')",
                    REMOVED_MODULES[module].fix + OR_LEGACY,
                )
        constant = _pillow_constant(node, images)
        if constant is not None:
            current = REMOVED_PILLOW_CONSTANTS[constant]
            yield _finding(
                servable,
                f"{where}:{node.lineno}",
                f"uses PIL.Image.{constant}, removed in Pillow 10: every request that reaches "
                "it fails (AttributeError)",
                f"use PIL.Image.Resampling.{current} (the same filter){OR_LEGACY}",
            )


def _imported_modules(node: ast.AST) -> list[str]:
    """The absolute module names an import statement imports (`from a import b`: a and a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _pil_image_names(tree: ast.AST) -> set[str]:
    """The names bound to the module PIL.Image (`from PIL import Image as X`, ...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "PIL" and node.level == 0:
            names.update(a.asname or a.name for a in node.names if a.name == "Image")
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.name == "PIL.Image" and a.asname)
    return names


def _pillow_constant(node: ast.AST, images: set[str]) -> str | None:
    """The removed constant this node uses: `Image.ANTIALIAS`, `from PIL.Image import ...`."""
    if isinstance(node, ast.Attribute) and node.attr in REMOVED_PILLOW_CONSTANTS:
        owner = ast.unparse(node.value)
        if owner in images or owner == "PIL.Image":
            return node.attr
    if isinstance(node, ast.ImportFrom) and node.module == "PIL.Image":
        for alias in node.names:
            if alias.name in REMOVED_PILLOW_CONSTANTS:
                return alias.name
    return None


# ---------------------------------------------------------------------------------- loading


def _import(
    servable_dir: Path, name: str, *, legacy: bool
) -> tuple[ServableDef | None, ServableLoadError | None]:
    try:
        if not legacy:
            return import_config(servable_dir, name), None
        with legacy_imports():
            return import_config(servable_dir, name), None
    except ServableLoadError as exc:
        return None, exc


def _check_versions(
    servable_dir: Path, name: str, definition: ServableDef | None, decryption: Decryption | None
) -> Iterator[Finding]:
    folder = servable_dir / name
    entries = sorted(entry for entry in folder.iterdir() if entry.is_dir())
    for entry in entries:
        if entry.name.isdigit() and not is_version_folder(entry):
            number = int(entry.name)
            rename = f"rename it to {number}" if number else "number versions from 1"
            yield _finding(
                name,
                entry.name,
                f"folder {entry.name} is not a version folder (1, 2, ... without leading "
                "zeros): it is never served",
                rename,
                Severity.WARNING,
            )
    versions = sorted((e for e in entries if is_version_folder(e)), key=lambda e: int(e.name))
    if not versions:
        yield _finding(
            name,
            "",
            "no version folder (1, 2, ...): the worker exits at start-up",
            "put the model files in a version folder named 1",
        )
        return
    if definition is None:
        return
    loaded: LoadedServable | None = None
    for version in versions:
        missing = [
            file
            for model in definition.models
            for file in model.files
            if not (version / file).is_file()
        ]
        for file in missing:
            yield _finding(
                name,
                f"{version.name}/{file}",
                f"model file {file} declared by servable_config.py is missing: the worker "
                f"exits at start-up when it serves version {version.name}",
                f"put {file} in {name}/{version.name}, or correct model_file in declare_model",
            )
        if missing:
            continue
        try:
            loaded = load_version(definition, version, decryption=decryption)
        except ServableLoadError as exc:
            fix = (
                "give the models' key with --dec-key-file and --dec-mode (msq check, msq-worker, "
                "msq serve)"
                if isinstance(exc, ModelDecryptionError)
                else "export the model again, or correct servable_config.py to match it"
            )
            yield _finding(
                name,
                version.name,
                f"{exc}: the worker exits at start-up when it serves version {version.name}",
                fix,
            )
    if loaded is not None:
        yield from _untyped(loaded)


def _untyped(servable: LoadedServable) -> Iterator[Finding]:
    for signature in servable.signatures:
        untyped = []
        for kind, specs in (("input", signature.inputs), ("output", signature.outputs)):
            names = [spec.name for spec in specs if spec.dtype is None]
            if names:
                untyped.append(f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}")
        if untyped:
            yield _finding(
                servable.name,
                CONFIG_FILE,
                f"method {signature.name}: {'; '.join(untyped)} cannot be typed (a Python stage "
                "stands between them and a model): V2 metadata shows no datatype or shape",
                "declare the method's tensor dtypes and shapes in servable_config.py",
                Severity.WARNING,
            )
