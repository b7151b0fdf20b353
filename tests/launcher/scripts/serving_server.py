"""A start script written the way MindSpore Serving's examples write `serving_server.py`
(from its API reference), run unmodified by `msq run`.

    msq run serving_server.py SERVABLE_DIR GRPC_ADDRESS RESTFUL_ADDRESS
"""

import sys

from mindspore_serving import server
from mindspore_serving.server.master import context


def start():
    servable_dir, grpc_address, restful_address = sys.argv[1:4]
    context.set_max_enqueued_requests(100)

    add_config = server.ServableStartConfig(
        servable_directory=servable_dir, servable_name="add", device_ids=(0, 1)
    )
    digits_config = server.ServableStartConfig(servable_dir, "digits", num_parallel_workers=2)
    server.start_servables(servable_configs=(add_config, digits_config))

    server.start_grpc_server(address=grpc_address)
    server.start_restful_server(address=restful_address)


if __name__ == "__main__":
    start()
