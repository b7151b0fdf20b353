"""Run MindSpore Serving configs and start scripts unchanged: `mindspore_serving.server` -> msq's.

While `mindspore_serving_alias()` is active, `import mindspore_serving`,
`from mindspore_serving.server import register` and `import
mindspore_serving.server.register` give msq's `register` module,
`from mindspore_serving.server import distributed` gives a namespace with msq's
`declare_servable` (`msq.workers.distributed`, for configs) and `start_servable` /
`startup_agents` (`msq.launcher.ms_distributed`, for start scripts), and
`mindspore_serving.server` has MindSpore Serving's start API (`start_servables`,
`ServableStartConfig`, `start_grpc_server`, `start_restful_server`, `SSLConfig`, `stop`,
`master.context.set_max_enqueued_requests`) from `msq.launcher.ms_server`. Nothing is installed
under the name `mindspore_serving`; the previous `sys.modules` entries are restored afterwards.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

from msq.workers import distributed, register


def _package(name: str, **attributes: object) -> types.ModuleType:
    package = types.ModuleType(name, f"msq's stand-in for {name}")
    package.__path__ = []  # a package without submodules beyond those aliased here
    for attribute, value in attributes.items():
        setattr(package, attribute, value)
    return package


@contextmanager
def mindspore_serving_alias() -> Iterator[None]:
    """Alias `mindspore_serving[.server[.register|.distributed|.master[.context]]]` to msq's
    modules while the block runs."""
    from msq.launcher import ms_distributed, ms_server  # noqa: PLC0415 - workers need `register`

    context = _package(
        "mindspore_serving.server.master.context",
        set_max_enqueued_requests=ms_server.set_max_enqueued_requests,
    )
    master = _package("mindspore_serving.server.master", context=context)
    distributed_api = _package(
        "mindspore_serving.server.distributed",
        declare_servable=distributed.declare_servable,
        **{name: getattr(ms_distributed, name) for name in ms_distributed.MINDSPORE_SERVING_API},
    )
    api = {name: getattr(ms_server, name) for name in ms_server.MINDSPORE_SERVING_API}
    server = _package(
        "mindspore_serving.server",
        register=register,
        master=master,
        distributed=distributed_api,
        **api,
    )
    aliases = {
        "mindspore_serving": _package("mindspore_serving", server=server),
        "mindspore_serving.server": server,
        "mindspore_serving.server.register": register,
        "mindspore_serving.server.distributed": distributed_api,
        "mindspore_serving.server.master": master,
        "mindspore_serving.server.master.context": context,
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
