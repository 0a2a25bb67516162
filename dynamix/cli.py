"""The ``dynamix`` command line: one entry point, subcommands contributed by each module.

Each command module exposes ``register(subparsers)``; it adds its parser and sets
``func=handler`` where ``handler(args) -> int``. Heavy imports (torch, faiss) stay inside
the handlers so that ``dynamix --help`` is instant.

The core's own commands are imported here. Commands built on the orchestration stack
(``validate`` on Great Expectations, ``track`` and ``promote`` on MLflow) live in ``flows/``,
which the core never imports: they register through the ``dynamix.commands`` entry-point
group (pyproject.toml), so any installed package can add a subcommand the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from dynamix import baseline, prepare
from dynamix.data import cli as data_cli
from dynamix.errors import DynamixError
from dynamix.evaluation import cli as evaluation_cli
from dynamix.infer import cli as infer_cli
from dynamix.storage import cli as storage_cli
from dynamix.synth import cli as synth_cli
from dynamix.train import cli as train_cli

ENTRY_POINT_GROUP = "dynamix.commands"

#: ``register(subparsers)`` of each core command module, in ``--help`` order.
CORE_COMMANDS: tuple[Callable[[Any], None], ...] = (
    synth_cli.register,
    data_cli.register,
    evaluation_cli.register,
    prepare.register,
    baseline.register,
    train_cli.register,
    storage_cli.register,
    infer_cli.register,
)

log = logging.getLogger("dynamix")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynamix",
        description="DynaMix: generalizable person re-ID (data, training, evaluation).",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in CORE_COMMANDS:
        register(subparsers)
    plugins = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    for plugin in plugins:
        plugin.load()(subparsers)
    if not plugins:  # a checkout used without `pip install -e .`: say why commands are missing
        parser.epilog = (
            f"No {ENTRY_POINT_GROUP!r} entry points installed: `pip install -e .` adds validate, track and promote."
        )
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
