"""What the tests of MindSpore Serving's start calls share: the refusal check and the argument
cases every call that names a servable has (MindSpore Serving's exact messages)."""

from __future__ import annotations

from typing import Any

import pytest

#: How MindSpore Serving's type messages go on: "..., but actually <class 'int'>".
ACTUALLY = "but actually <class"

#: (keyword arguments, message) of a servable's directory, name and version.
SERVABLE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"servable_directory": 1}, f"Parameter 'servable_directory' should be str, {ACTUALLY} 'int'>"),
    ({"servable_name": ""}, "Parameter 'servable_name' should not be empty str"),
    ({"version_number": -1}, "Parameter 'version_number' should be >= 0"),
    ({"version_number": True}, f"Parameter 'version_number' should be int, {ACTUALLY} 'bool'>"),
]


def refused(message: str, call: Any, *args: Any, **kwargs: Any) -> None:
    """`call(*args, **kwargs)` raises RuntimeError with exactly `message`."""
    with pytest.raises(RuntimeError) as error:
        call(*args, **kwargs)
    assert str(error.value) == message
