"""``dynamix s3 push|pull``: move checkpoints and dataset snapshots to and from S3/MinIO.

A remote is a full ``s3://bucket/key`` URI or a name under ``storage.checkpoints_uri``
(``--kind snapshots``: ``storage.snapshots_uri``). A local directory is pushed with a
manifest written last; ``pull`` restores a directory when the remote has one, else a file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dynamix.config import StorageConfig, load_params

log = logging.getLogger(__name__)

KINDS = ("checkpoints", "snapshots")


def resolve_remote(remote: str | None, local: Path, kind: str, config: StorageConfig) -> str:
    """``s3://`` URIs pass through; a bare name (default: the local one) goes under the kind."""
    if remote and remote.startswith("s3://"):
        return remote
    base = getattr(config, f"{kind}_uri").rstrip("/")
    name = (remote or local.resolve().name).strip("/")
    return f"{base}/{name}"


def _push(args: argparse.Namespace) -> int:
    from dynamix.storage import s3

    config = load_params(args.params, args.set).storage
    local = Path(args.local)
    uri = resolve_remote(args.remote, local, args.kind, config)
    if local.is_dir():
        manifest = s3.upload_dir(local, uri, config=config)
        print(f"pushed {len(manifest['files'])} files {local} -> {uri}")
    else:
        info = s3.upload_file(local, uri, config=config)
        print(f"pushed {local} -> {uri} ({info['size']} bytes, sha256 {info['sha256']})")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from dynamix.storage import s3
    from dynamix.storage.client import StorageError, make_client

    config = load_params(args.params, args.set).storage
    local = Path(args.local)
    uri = resolve_remote(args.remote, local, args.kind, config)
    client = make_client(config)
    if s3.is_dir_upload(client, uri):
        s3.download_dir(uri, local, config=config, client=client, overwrite=args.overwrite)
    else:
        if local.exists() and not args.overwrite:
            raise StorageError(f"{local}: already exists; pass --overwrite to replace it")
        s3.download_file(uri, local, config=config, client=client)
    print(f"pulled {uri} -> {local}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("s3", help="push/pull checkpoints and dataset snapshots to S3/MinIO (params: storage)")
    sub = p.add_subparsers(dest="s3_command", metavar="push|pull", required=True)
    push = sub.add_parser("push", help="upload a file or directory (verified, manifest last)")
    push.add_argument("local", help="file or directory, e.g. runs/train")
    push.add_argument("remote", nargs="?", help="s3://bucket/key, or a name under the kind's URI")
    push.set_defaults(func=_push)
    pull = sub.add_parser("pull", help="download a file or directory (atomic, checksum-verified)")
    pull.add_argument("remote", help="s3://bucket/key, or a name under the kind's URI")
    pull.add_argument("local", help="destination path")
    pull.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    pull.set_defaults(func=_pull)
    for q in (push, pull):
        q.add_argument(
            "--kind", choices=KINDS, default="checkpoints", help="which storage.<kind>_uri a bare name is under"
        )
        q.add_argument("--params", default="params.yaml")
        q.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a params.yaml key (storage.region=...)",
        )
