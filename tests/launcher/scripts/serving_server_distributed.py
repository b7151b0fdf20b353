"""A start script for a distributed servable, written the way MindSpore Serving's
`matmul_distributed` example writes `serving_server.py` (from its API reference), run unmodified
by `msq run`. It also starts the same model unsharded, for comparison.

    msq run serving_server_distributed.py SERVABLE_DIR RANK_TABLE DISTRIBUTED_ADDRESS \
        GRPC_ADDRESS RESTFUL_ADDRESS
"""

import sys

from mindspore_serving import server
from mindspore_serving.server import distributed


def start():
    servable_dir, rank_table, distributed_address, grpc_address, restful_address = sys.argv[1:6]
    distributed.start_servable(
        servable_dir,
        "tp_mlp",
        rank_table_json_file=rank_table,
        version_number=1,
        distributed_address=distributed_address,
    )
    server.start_servables(server.ServableStartConfig(servable_dir, "tp_mlp_single"))

    server.start_grpc_server(grpc_address)
    server.start_restful_server(restful_address)


if __name__ == "__main__":
    start()
