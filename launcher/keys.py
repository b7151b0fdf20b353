"""`msq keys generate`: make CURVE key pairs (pyzmq's certificate files) and authorize them.

`msq keys generate DIR` writes the standard set `msq serve --curve-dir DIR` uses: the pairs
`broker`, `worker` and `gateway`, the worker's public key in `DIR/authorized-workers/` and the
gateway's in `DIR/authorized-gateways/`. `--name NAME --authorize workers|gateways` adds a pair
for another host and authorizes it (copy the `.key` file into the broker's directory of that
role when the broker runs elsewhere).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from msq.proto.curve import CurveError, generate_key_pair
from msq.security import AUTHORIZED_DIRS, STANDARD_PAIRS


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `msq keys` to the launcher's subcommands."""
    parser = commands.add_parser(
        "keys",
        help="make CURVE key pairs for the broker, workers and gateways",
        description="Make CURVE key pairs: NAME.key (public) and NAME.key_secret (mode 0600).",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True)
    generate = actions.add_parser(
        "generate",
        help="write key pairs into DIR",
        description="Without --name: the pairs broker, worker and gateway, the worker and "
        "gateway keys authorized (the layout `msq serve --curve-dir DIR` reads).",
    )
    generate.add_argument("directory", type=Path, metavar="DIR")
    generate.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="a key pair to make (repeatable; default: broker, worker, gateway)",
    )
    generate.add_argument(
        "--authorize",
        choices=sorted(AUTHORIZED_DIRS),
        help="also copy the public keys into DIR/authorized-<ROLE>/",
    )


def generate(directory: Path, names: dict[str, str | None]) -> list[Path]:
    """Make the key pair `NAME` for each of `names` and copy its public key into the
    authorized-keys directory of its role (when it has one); the files written, in order."""
    written: list[Path] = []
    for name, role in names.items():
        public, secret = generate_key_pair(directory, name)
        written += [public, secret]
        if role is not None:
            authorized = directory / AUTHORIZED_DIRS[role]
            authorized.mkdir(exist_ok=True)
            copy = authorized / public.name
            if copy.exists():
                raise CurveError(f"{copy} exists; remove it first")
            shutil.copyfile(public, copy)
            written.append(copy)
    return written


def run(args: argparse.Namespace) -> int:
    """`msq keys generate`: print each file written; 2 (and a message) when it cannot."""
    if args.name is None and args.authorize is not None:
        print("msq keys: --authorize goes with --name", file=sys.stderr)
        return 2
    names = STANDARD_PAIRS if args.name is None else dict.fromkeys(args.name, args.authorize)
    try:
        for path in generate(args.directory, names):
            print(path)
    except (CurveError, OSError) as exc:
        print(f"msq keys: {exc}", file=sys.stderr)
        return 2
    return 0
