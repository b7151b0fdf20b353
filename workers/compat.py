"""Run MindSpore Serving configs unchanged: `mindspore_serving.server.register` -> msq's.

While `mindspore_serving_alias()` is active, `import mindspore_serving`,
`from mindspore_serving.server import register` and `import
mindspore_serving.server.register` give msq's `register` module. Nothing is installed under
the name `mindspore_serving`; the previous `sys.modules` entries are restored afterwards.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

from msq.workers import register


def _package(name: str, **attributes: types.ModuleType) -> types.ModuleType:
    package = types.ModuleType(name, f"msq's stand-in for {name} while a servable loads")
    package.__path__ = []  # a package without submodules beyond those aliased here
    for attribute, module in attributes.items():
        setattr(package, attribute, module)
    return package


@contextmanager
def mindspore_serving_alias() -> Iterator[None]:
    """Alias `mindspore_serving[.server[.register]]` to msq's modules while the block runs."""
    server = _package("mindspore_serving.server", register=register)
    aliases = {
        "mindspore_serving": _package("mindspore_serving", server=server),
        "mindspore_serving.server": server,
        "mindspore_serving.server.register": register,
    }
    previous = {name: sys.modules.get(name) for name in aliases}
    sys.modules.update(aliases)
    try:
        yield
    finally:
        for name, module in previous.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
