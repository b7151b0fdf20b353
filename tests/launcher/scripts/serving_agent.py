"""An agent script written the way MindSpore Serving's `matmul_distributed` example writes
`serving_agent.py` (from its API reference), run unmodified by `msq run`: this host's ranks,
one model file each.

    msq run serving_agent.py DISTRIBUTED_ADDRESS MODEL_DIR RANKS
"""

import sys

from mindspore_serving.server import distributed


def start_agents():
    """Start all the agents in current machine"""
    distributed_address, model_dir, ranks = sys.argv[1:4]
    model_files = []
    for i in range(int(ranks)):
        model_files.append(f"{model_dir}/rank_{i}.mindir")

    distributed.startup_agents(distributed_address=distributed_address, model_files=model_files)


if __name__ == "__main__":
    start_agents()
