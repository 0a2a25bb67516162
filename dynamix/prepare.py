"""``dynamix prepare``: every dataset named in params.yaml → one Parquet manifest each.

This is the first DVC stage: later stages (validation, training, evaluation) read only the
manifests, never the raw folders, so a layout problem surfaces here, once, with the path.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dynamix.config import Params, load_params
from dynamix.io import write_json_atomic

log = logging.getLogger(__name__)


def prepare_manifests(params: Params) -> dict[str, Any]:
    """Load every configured dataset and write its manifest (``manifest_path``)."""
    from dynamix.data.manifest import format_counts, manifest_path, split_counts, write_manifest
    from dynamix.data.registry import load_dataset

    out_dir = Path(params.data.manifests_dir)
    summary: dict[str, Any] = {}
    roles = (
        ("source", params.data.sources),
        ("single_camera", params.data.single_camera),
        ("target", params.data.targets),
    )
    for role, specs in roles:
        for spec in specs:
            df = load_dataset(spec.format, spec.root, domain=spec.name, **spec.options)
            path = write_manifest(df, manifest_path(params, spec.name))
            counts = split_counts(df)
            summary[spec.name] = {"role": role, "format": spec.format, "splits": counts}
            log.info("manifest %s (%s) -> %s | %s", spec.name, role, path, format_counts(counts))
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def _handler(args: argparse.Namespace) -> int:
    prepare_manifests(load_params(args.params, args.set))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("prepare", help="build the manifests of every dataset in params.yaml")
    p.add_argument("--params", default="params.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key, e.g. data.manifests_dir=/tmp/m",
    )
    p.set_defaults(func=_handler)
