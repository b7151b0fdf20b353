"""Legacy mode (`msq.workers.legacy`): the removed MindSpore 1.x dataset modules and Pillow
constants map to their current equivalents, behave as they did in 1.x, and leave no trace."""

from __future__ import annotations

import importlib
import logging
import sys

import numpy as np
import pytest
from PIL import Image

from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.workers.definition import ServableLoadError
from msq.workers.legacy import REMOVED_MODULES, legacy_imports
from msq.workers.servable import load_servable
from tests.workers.support import OldServables, decode, encode, image_file

MEAN = [0.4914 * 255, 0.4822 * 255, 0.4465 * 255]
STD = [0.2023 * 255, 0.1994 * 255, 0.2010 * 255]
VISION_C = "mindspore.dataset.vision.c_transforms"
VISION_PY = "mindspore.dataset.vision.py_transforms"


@pytest.mark.parametrize("name", sorted(REMOVED_MODULES))
def test_a_removed_module_imports_only_in_legacy_mode(name: str) -> None:
    with pytest.raises(ModuleNotFoundError, match=f"No module named '{name}'"):
        importlib.import_module(name)
    with legacy_imports():
        module = importlib.import_module(name)
        assert module.__name__ == name
    assert name not in sys.modules
    parent, _, child = name.rpartition(".")
    assert not hasattr(sys.modules[parent], child)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)


def test_without_legacy_mode_both_import_forms_say_what_to_do() -> None:
    message = (
        f"No module named '{VISION_C}' (removed in MindSpore 2.0: "
        f"{REMOVED_MODULES[VISION_C].fix}, or start the worker with --legacy-imports)"
    )
    with legacy_imports(enabled=False):
        with pytest.raises(ModuleNotFoundError) as plain:
            import mindspore.dataset.vision.c_transforms  # noqa: F401
        with pytest.raises(ModuleNotFoundError) as from_form:
            from mindspore.dataset.vision import c_transforms  # noqa: F401
    assert str(plain.value) == str(from_form.value) == message


def test_c_transforms_give_what_they_gave_in_mindspore_1() -> None:
    rgb = (200, 100, 50)
    with legacy_imports():
        from mindspore.dataset.transforms import c_transforms as tc
        from mindspore.dataset.vision import c_transforms as vc

        decoded = vc.Decode()(image_file(rgb, size=16))
        resized = vc.Resize([12, 12])(decoded)
        cropped = vc.CenterCrop(8)(resized)
        normalized = vc.Normalize(mean=MEAN, std=STD)(cropped)
        chw = vc.HWC2CHW()(normalized)
        as_int = tc.TypeCast(np.int32)(cropped)
        composed = tc.Compose([vc.Decode(), vc.Resize([4, 4])])(image_file(rgb, size=16))
    assert decoded.dtype == np.uint8
    assert decoded.shape == (16, 16, 3)  # HWC, RGB
    assert (decoded == np.array(rgb, np.uint8)).all()
    assert resized.shape == (12, 12, 3)
    assert (cropped == np.array(rgb, np.uint8)).all()
    assert cropped.shape == (8, 8, 3)
    expected = (np.array(rgb, np.float32) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, np.broadcast_to(expected, (8, 8, 3)), rtol=1e-6)
    assert chw.shape == (3, 8, 8)
    np.testing.assert_array_equal(chw, normalized.transpose(2, 0, 1))
    assert as_int.dtype == np.int32
    assert composed.shape == (4, 4, 3)


def test_py_transforms_give_what_they_gave_in_mindspore_1() -> None:
    with legacy_imports():
        from mindspore.dataset.transforms import py_transforms as tp
        from mindspore.dataset.vision import py_transforms as vp

        picture = vp.Decode()(image_file((255, 0, 51), size=8))
        resized = vp.Resize([4, 4])(picture)
        cropped = vp.CenterCrop(2)(resized)
        tensor = vp.ToTensor()(cropped)
        normalized = vp.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(tensor)
        one_hot = tp.OneHotOp(4)(np.array(2))
    assert isinstance(picture, Image.Image)
    assert picture.mode == "RGB"
    assert isinstance(resized, Image.Image)
    assert resized.size == (4, 4)
    assert cropped.size == (2, 2)
    assert tensor.dtype == np.float32
    assert tensor.shape == (3, 2, 2)  # CHW in 0..1
    np.testing.assert_allclose(tensor[:, 0, 0], [1.0, 0.0, 0.2], rtol=1e-6)
    np.testing.assert_allclose(normalized[:, 0, 0], [2.0, -2.0, -1.2], rtol=1e-6)
    np.testing.assert_array_equal(one_hot, [0, 0, 1, 0])


def test_a_name_without_equivalent_says_what_to_do() -> None:
    with legacy_imports():
        from mindspore.dataset.vision import c_transforms as vc

        with pytest.raises(AttributeError) as caught:
            _ = vc.SoftDvppDecodeResizeJpeg
    assert str(caught.value) == (
        f"msq legacy mode maps {VISION_C} to mindspore.dataset.vision, which has no "
        f"SoftDvppDecodeResizeJpeg: {REMOVED_MODULES[VISION_C].fix}"
    )


def test_removed_pillow_constants_resolve_only_in_legacy_mode() -> None:
    with legacy_imports():
        assert Image.ANTIALIAS == Image.Resampling.LANCZOS  # type: ignore[attr-defined]
        assert Image.LINEAR == Image.Resampling.BILINEAR  # type: ignore[attr-defined]
        assert Image.CUBIC == Image.Resampling.BICUBIC  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="has no attribute 'NOT_A_FILTER'"):
            _ = Image.NOT_A_FILTER  # type: ignore[attr-defined]
    assert not hasattr(Image, "ANTIALIAS")
    assert "__getattr__" not in vars(Image)


def test_each_mapping_logs_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="msq.workers.legacy")
    with legacy_imports():
        importlib.import_module(VISION_C)
        importlib.import_module(VISION_C)
        for _ in range(3):
            _ = Image.ANTIALIAS  # type: ignore[attr-defined]
    assert caplog.messages == [
        f"legacy imports: {VISION_C} (removed in MindSpore 2.0) maps to mindspore.dataset.vision",
        "legacy imports: PIL.Image.ANTIALIAS (removed in Pillow 10) maps to PIL.Image.LANCZOS",
    ]


def test_resnet1x_fails_to_load_without_legacy_mode_saying_what_to_do(
    old_servables: OldServables,
) -> None:
    with pytest.raises(ServableLoadError) as caught, legacy_imports(enabled=False):
        load_servable(old_servables.root, "resnet1x")
    removed = "mindspore.dataset.transforms.c_transforms"
    assert str(caught.value) == (
        f"import resnet1x/servable_config.py failed: ModuleNotFoundError: No module named "
        f"'{removed}' (removed in MindSpore 2.0: {REMOVED_MODULES[removed].fix}, or start the "
        "worker with --legacy-imports)"
    )


def test_lenet1x_fails_per_request_without_legacy_mode_and_works_with_it(
    old_servables: OldServables,
) -> None:
    grey = {"image": image_file((51, 51, 51), mode="L")}
    with legacy_imports(enabled=False):
        plain = load_servable(old_servables.root, "lenet1x")
        [outcome] = plain.methods["brightness"].run(stack([encode(grey)])).rows()
    assert outcome == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'brightness' stage 1 (function preprocess_eager) failed: AttributeError: module "
        "'PIL.Image' has no attribute 'ANTIALIAS' (removed in Pillow 10: use "
        "PIL.Image.Resampling.LANCZOS, or start the worker with --legacy-imports)",
    )
    with legacy_imports():
        legacy = load_servable(old_servables.root, "lenet1x")
        [result] = [
            decode(o) for o in legacy.methods["brightness"].run(stack([encode(grey)])).rows()
        ]
    assert isinstance(result, dict)
    np.testing.assert_allclose(result["brightness"], np.float32(0.2), rtol=1e-6)
