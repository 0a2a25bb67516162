"""The ``dynamix`` command line: one entry point, subcommands contributed by each module.

Each command module exposes ``register(subparsers)``; it adds its parser and sets
``func=handler`` where ``handler(args) -> int``. Heavy imports (torch, faiss) stay inside
the handlers so that ``dynamix --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from dynamix.errors import DynamixError

COMMAND_MODULES = (
    "dynamix.synth.cli",
    "dynamix.data.cli",
    "dynamix.evaluation.cli",
    "dynamix.prepare",
    "dynamix.baseline",
    "flows.validate_cli",  # GX adapter lives outside the core (style.md)
    "dynamix.train.cli",
    "dynamix.storage.cli",
    "dynamix.infer.cli",
    "flows.tracking_cli",  # MLflow adapter: dynamix track, dynamix promote
)

log = logging.getLogger("dynamix")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynamix",
        description="DynaMix: generalizable person re-ID (data, training, evaluation).",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rank = f"[rank {os.environ['RANK']}] " if "RANK" in os.environ else ""  # under torchrun
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s {rank}%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DynamixError as exc:
        print(f"dynamix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dynamix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
