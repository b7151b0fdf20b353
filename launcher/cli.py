"""`msq`: `msq serve` starts the broker, workers and both gateways (`msq.launcher.serve`);
`msq run` runs a MindSpore Serving start script (`msq.launcher.run_script`); `msq status`
shows a running deployment (`msq.launcher.status`); `msq check` checks servables before serving
them (`msq.launcher.check`); `msq keys` makes CURVE keys (`msq.launcher.keys`)."""

from __future__ import annotations

import argparse
import sys

from msq.launcher import check, keys, run_script, serve, status


def build_parser() -> argparse.ArgumentParser:
    """The options of `msq`: one subcommand per module, each adding its own parser."""
    parser = argparse.ArgumentParser(prog="msq", description="msq: serve MindSpore models.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(commands)
    run_script.add_parser(commands)
    status.add_parser(commands)
    check.add_parser(commands)
    keys.add_parser(commands)
    return parser


#: What runs each subcommand.
COMMANDS = {
    "serve": serve.run,
    "run": run_script.run,
    "status": status.run,
    "check": check.run,
    "keys": keys.run,
}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand of `msq`."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
