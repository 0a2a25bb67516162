"""``dynamix validate``: the data gate between ``prepare`` and everything that trains.

Lives beside the GX adapter (``flows/validation.py``), not in the ``dynamix`` core, and
imports it only inside the handler so that ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from dynamix.config import load_params

EXIT_INVALID = 2


def _handler(args: argparse.Namespace) -> int:
    # GX logs every decorator at import and pins one module logger to INFO: quiet both.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from flows.validation import failure_line, format_summary, validate_data

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    params = load_params(args.params, args.set)
    summary = validate_data(params)
    print(format_summary(summary, with_failures=False))  # failures go to stderr below
    if summary["success"]:
        return 0
    v = params.validation
    print(
        f"dynamix validate: {len(summary['failures'])} expectations failed "
        f"(summary {v.summary_path}, full GX results in {v.reports_dir}/):",
        file=sys.stderr,
    )
    for failure in summary["failures"]:
        print(failure_line(failure), file=sys.stderr)
    return EXIT_INVALID


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate", help="run the Great Expectations suites over every manifest (exit 2 on failure)"
    )
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_handler)
