"""Legacy mode (`msq-worker --legacy-imports`): run servables written for MindSpore 1.x and
Pillow < 10 unchanged.

While `legacy_imports()` is active:

- the MindSpore 1.x dataset modules removed in 2.0 (`REMOVED_MODULES`) import as stand-ins
  holding their 2.x classes (`mindspore.dataset.transforms`, `mindspore.dataset.vision`), with
  the few whose names or defaults changed mapped explicitly (`c_transforms.Decode(rgb=True)`,
  `py_transforms.Decode`, `py_transforms.Normalize`, `py_transforms.Cutout`, `OneHotOp`);
- the `PIL.Image` constants removed in Pillow 10 (`REMOVED_PILLOW_CONSTANTS`) resolve to their
  Pillow 10 names.

Each mapping logs one warning line when it is first used. The user's files are never touched;
on exit the stand-ins leave `sys.modules` and `PIL.Image` is as it was. The worker keeps the
mode on while it serves, since Python stages use these names per request. With the mode off, a
worker still enters `legacy_imports(enabled=False)`: the errors these names raise then say what
to use instead.

`REMOVED_MODULES` and `REMOVED_PILLOW_CONSTANTS` are also what `msq check` reports.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LEGACY_OPTION = "--legacy-imports"
#: The end of every fix: the other way out.
OR_LEGACY = f", or start the worker with {LEGACY_OPTION}"


@dataclass(frozen=True, slots=True)
class RemovedModule:
    """A MindSpore 1.x module gone in 2.x, the module now holding its classes, and the fix."""

    name: str
    target: str
    fix: str


REMOVED_MODULES = {
    module.name: module
    for module in (
        RemovedModule(
            "mindspore.dataset.transforms.c_transforms",
            "mindspore.dataset.transforms",
            "import mindspore.dataset.transforms instead (the same class names: Compose, "
            "TypeCast, OneHot, ...)",
        ),
        RemovedModule(
            "mindspore.dataset.transforms.py_transforms",
            "mindspore.dataset.transforms",
            "import mindspore.dataset.transforms instead (Compose, RandomApply, RandomChoice, "
            "RandomOrder keep their names; OneHotOp is OneHot)",
        ),
        RemovedModule(
            "mindspore.dataset.vision.c_transforms",
            "mindspore.dataset.vision",
            "import mindspore.dataset.vision instead (the same class names: Decode, Resize, "
            "CenterCrop, Normalize, HWC2CHW, ...)",
        ),
        RemovedModule(
            "mindspore.dataset.vision.py_transforms",
            "mindspore.dataset.vision",
            "import mindspore.dataset.vision instead (Decode is Decode(to_pil=True), Normalize "
            "after ToTensor is Normalize(mean, std, is_hwc=False), Cutout is "
            "CutOut(length, num_patches, is_hwc=False); ToTensor, ToType, ToPIL, Resize, "
            "CenterCrop, HWC2CHW keep their names)",
        ),
    )
}

#: `PIL.Image` constants removed in Pillow 10 -> the name of the same filter now.
REMOVED_PILLOW_CONSTANTS = {"ANTIALIAS": "LANCZOS", "LINEAR": "BILINEAR", "CUBIC": "BICUBIC"}


def _c_decode(rgb: bool = True) -> Any:
    """1.x `c_transforms.Decode(rgb=True)`: an RGB numpy array, as 2.x `Decode()`."""
    vision = importlib.import_module("mindspore.dataset.vision")
    if not rgb:
        raise ValueError("c_transforms.Decode(rgb=False) (BGR) has no MindSpore 2.x equivalent")
    return vision.Decode()


def _py_decode() -> Any:
    """1.x `py_transforms.Decode()`: a PIL image, as 2.x `Decode(to_pil=True)`."""
    return importlib.import_module("mindspore.dataset.vision").Decode(to_pil=True)


def _py_normalize(mean: Sequence[float], std: Sequence[float]) -> Any:
    """1.x `py_transforms.Normalize`: on a CHW array (after `ToTensor`)."""
    return importlib.import_module("mindspore.dataset.vision").Normalize(mean, std, is_hwc=False)


def _py_cutout(length: int, num_patches: int = 1) -> Any:
    """1.x `py_transforms.Cutout`: on a CHW array (after `ToTensor`)."""
    vision = importlib.import_module("mindspore.dataset.vision")
    return vision.CutOut(length, num_patches, is_hwc=False)


def _one_hot_op(num_classes: int, smoothing_rate: float = 0.0) -> Any:
    """1.x `py_transforms.OneHotOp`, as 2.x `OneHot`."""
    transforms = importlib.import_module("mindspore.dataset.transforms")
    return transforms.OneHot(num_classes, smoothing_rate)


#: Names whose class or defaults changed, per removed module.
_CHANGED: dict[str, dict[str, Callable[..., Any]]] = {
    "mindspore.dataset.transforms.py_transforms": {"OneHotOp": _one_hot_op},
    "mindspore.dataset.vision.c_transforms": {"Decode": _c_decode},
    "mindspore.dataset.vision.py_transforms": {
        "Decode": _py_decode,
        "Normalize": _py_normalize,
        "Cutout": _py_cutout,
    },
}


def _stand_in(removed: RemovedModule) -> types.ModuleType:
    """A module with the public names of `removed.target` and the changed ones of `_CHANGED`."""
    module = types.ModuleType(removed.name, f"msq legacy mode: {removed.name} -> {removed.target}")
    target = importlib.import_module(removed.target)
    for name in dir(target):
        value = getattr(target, name)
        if not name.startswith("_") and isinstance(value, type):
            setattr(module, name, value)
    for name, factory in _CHANGED.get(removed.name, {}).items():
        setattr(module, name, factory)

    def missing(name: str) -> Any:
        raise AttributeError(
            f"msq legacy mode maps {removed.name} to {removed.target}, which has no {name}: "
            f"{removed.fix}"
        )

    vars(module)["__getattr__"] = missing
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the removed modules and creates their stand-ins, logging each once; with
    `enabled` False, says in the ModuleNotFoundError what to do instead."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.created: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in REMOVED_MODULES:
            return None
        if not self.enabled:
            # No `name`: `from package import module` would turn it into a bare ImportError.
            raise ModuleNotFoundError(
                f"No module named '{fullname}' (removed in MindSpore 2.0: "
                f"{REMOVED_MODULES[fullname].fix}{OR_LEGACY})"
            )
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        removed = REMOVED_MODULES[spec.name]
        logger.warning(
            "legacy imports: %s (removed in MindSpore 2.0) maps to %s", spec.name, removed.target
        )
        self.created.append(spec.name)
        return _stand_in(removed)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: `create_module` filled the stand-in."""


def _pillow_getattr(
    image: types.ModuleType, enabled: bool, previous: Callable[[str], Any] | None
) -> Callable[[str], Any]:
    """A module `__getattr__` for `PIL.Image` answering the removed constants (with `enabled`
    False, saying in the AttributeError what to use instead); other names go to Pillow's own
    `__getattr__`, if it has one."""
    logged: set[str] = set()

    def lookup(name: str) -> Any:
        missing = f"module 'PIL.Image' has no attribute '{name}'"
        if name not in REMOVED_PILLOW_CONSTANTS:
            if previous is not None:
                return previous(name)
            raise AttributeError(missing)
        current = REMOVED_PILLOW_CONSTANTS[name]
        if not enabled:
            raise AttributeError(
                f"{missing} (removed in Pillow 10: use PIL.Image.Resampling.{current}{OR_LEGACY})"
            )
        if name not in logged:
            logged.add(name)
            logger.warning(
                "legacy imports: PIL.Image.%s (removed in Pillow 10) maps to PIL.Image.%s",
                name,
                current,
            )
        return getattr(image, current)

    return lookup


@contextmanager
def legacy_imports(enabled: bool = True) -> Iterator[None]:
    """Map the removed MindSpore 1.x modules and Pillow constants while the block runs; with
    `enabled` False, only say in their errors what to use instead."""
    finder = _Finder(enabled)
    sys.meta_path.insert(0, finder)
    image = importlib.import_module("PIL.Image")
    previous = vars(image).get("__getattr__")
    vars(image)["__getattr__"] = _pillow_getattr(image, enabled, previous)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in finder.created:
            sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is not None:
                delattr(sys.modules[parent], child)
        if previous is None:
            del vars(image)["__getattr__"]
        else:
            vars(image)["__getattr__"] = previous
