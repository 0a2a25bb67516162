"""``dynamix manifest``: read one dataset folder and write its manifest as Parquet.

The single-dataset counterpart of ``dynamix prepare`` (which builds every dataset named in
``params.yaml``): handy to check a freshly downloaded or generated folder. Loaders import
pandas, so they are imported inside the handler and ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import typing
from typing import Any

from dynamix.config import DatasetFormat
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

# The formats params.yaml accepts; a test keeps them equal to ``dynamix.data.registry.LOADERS``
# (not imported here, so that building the parser does not import pandas).
FORMATS = typing.get_args(DatasetFormat)


def parse_options(items: list[str]) -> dict[str, str]:
    """``["merge_val=false", "version=v2"]`` → ``{"merge_val": "false", "version": "v2"}``."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DynamixError(f"--option {item!r}: expected key=value, e.g. merge_val=false")
        options[key.strip()] = value.strip()
    return options


def handler(args: argparse.Namespace) -> int:
    from dynamix.data.manifest import format_counts, split_counts, write_manifest
    from dynamix.data.registry import load_dataset

    options = parse_options(args.option)
    df = load_dataset(args.format, args.root, domain=args.domain, **options)
    path = write_manifest(df, args.out)
    domain = df["domain"].iloc[0]
    log.info("%s %s", domain, format_counts(split_counts(df)))
    log.info("wrote %d rows to %s", len(df), path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("manifest", help="build the manifest (Parquet) of one dataset folder")
    p.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--domain", default=None, help="dataset name in the manifest (default: format)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, e.g. merge_val=false (msmt17), variant=detected (cuhk03-np)",
    )
    p.add_argument("--out", required=True, help="output .parquet file (written atomically)")
    p.set_defaults(func=handler)
