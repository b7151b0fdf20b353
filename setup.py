"""msq: a message-queue driven serving system for MindSpore models."""

from pathlib import Path

from setuptools import find_packages, setup

SUBPACKAGES = ["broker", "workers", "gateways", "client", "proto", "benchmarks", "launcher"]

setup(
    name="msq",
    version="0.1.0",
    description="Serve MindSpore models in production: ZeroMQ broker, workers, gRPC and REST",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=[
        "msq",
        *(f"msq.{name}" for name in SUBPACKAGES),
        # nested packages (msq.gateways.grpc, ...) live in their folder's subfolders
        *(f"msq.{name}.{nested}" for name in SUBPACKAGES for nested in find_packages(name)),
    ],
    package_dir={"msq": "msq", **{f"msq.{name}": name for name in SUBPACKAGES}},
    package_data={
        "msq": ["py.typed"],
        "msq.proto": ["*.proto", "*.pyi"],
        "msq.benchmarks": ["models/*.py", "servables/*/servable_config.py", "servables/*/1/*"],
    },
    install_requires=[
        "mindspore>=2.5",
        "numpy>=1.24",
        "pyzmq>=25",
        "msgspec>=0.22",
        "grpcio>=1.85.1",
        "grpcio-health-checking>=1.85",
        "grpcio-reflection>=1.85",
        "protobuf>=7.35.1,<8",
        "typing-extensions>=4.6",
        "falcon>=4.0",
        "gunicorn>=24",
        "prometheus-client>=0.20",
        "rich>=13",
        "pillow>=10",
    ],
    extras_require={
        "test": [
            # schemathesis 4.32's pytest plugin fails under pytest 9 ("'Function' object has no
            # attribute '_nodeid'"); raise this bound once a schemathesis release supports 9.
            "pytest>=8,<9",
            "pytest-timeout>=2.3",
            "psutil>=5.9",
            "hypothesis>=6.100",
            "scikit-learn>=1.3",
            "tritonclient[grpc,http]>=2.40",
            "openapi-spec-validator>=0.7",
            "schemathesis>=3.30",
            "grpcio-tools>=1.85.1",
            "cryptography>=42",
            "ruff>=0.5",
            "mypy>=1.10",
            "types-protobuf",
            "msgpack>=1.0",  # tests write raw frames with an independent msgpack implementation
            "msgpack-types",
            "tqdm>=4.66",
            "matplotlib>=3.8",
            "aiohttp>=3.9",
            "opentelemetry-api>=1.25",  # the tracing extra, so that CI runs the tracing tests
            "opentelemetry-sdk>=1.25",
        ],
        "tracing": ["opentelemetry-api>=1.25", "opentelemetry-sdk>=1.25"],
        "bench": ["tqdm>=4.66", "matplotlib>=3.8", "aiohttp>=3.9", "psutil>=5.9"],
        "ray": ["ray[serve]>=2.9"],
        "litserve": ["litserve>=0.2.19"],
    },
    entry_points={
        "console_scripts": [
            "msq=msq.launcher.cli:main",
            "msq-broker=msq.broker.cli:main",
            "msq-worker=msq.workers.cli:main",
            "msq-agent=msq.workers.distributed.agent_cli:main",
            "msq-grpc-gateway=msq.gateways.grpc.cli:main",
            "msq-rest-gateway=msq.gateways.rest.cli:main",
            "msq-bench=msq.benchmarks.cli:main",
        ]
    },
)
