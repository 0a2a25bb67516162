"""``dynamix prepare``: every dataset named in params.yaml → one Parquet manifest each.

This is the first DVC stage: later stages (validation, training, evaluation) read only the
manifests, never the raw folders, so a layout problem surfaces here, once, with the path.

The set is written whole or not at all: every manifest and ``summary.json`` go into a
temporary folder beside ``data.manifests_dir`` that replaces it only when every dataset
loaded (:func:`dynamix.io.atomic_dir`), so a failed prepare leaves the previous complete
set, never the old manifests of some datasets beside the new ones of others.

``summary.json`` records, per dataset, what its manifest was built from: the dataset's
spec (role, format, root, options) and a fingerprint of its root (every file name under
it, plus the bytes of the non-image files: MSMT17's list files, pseudo labels, split
files). :func:`check_manifests` compares that with the params and roots of now, so
``dynamix validate`` and ``dynamix train`` refuse manifests that ``prepare`` would build
differently. Image bytes are not part of it: they do not change a manifest (the gate
decodes every image), and names alone keep the check to a directory walk (~45k files in
a fraction of a second).

A root may be the folder above a release (``data/`` holding ``Market-1501-v15.09.15/``;
see :func:`dynamix.data.layout.find_release_root`): the fingerprint then covers only the
release folder read (``release_root`` in ``summary.json``), not its siblings, so adding
another dataset beside it neither marks this one stale nor walks that one's files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynamix.config import DatasetSpec, Params, load_params
from dynamix.errors import ManifestError
from dynamix.io import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
#: Bump when the fingerprint's recipe changes: older summaries then read as stale.
FINGERPRINT_VERSION = 2
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
HASHED_MAX_BYTES = 16 << 20  # larger non-image files count by name and size only
FIX = "run `dynamix prepare`"


def summary_path(params: Params) -> Path:
    """``<data.manifests_dir>/summary.json``: the set's counts and provenance."""
    return Path(params.data.manifests_dir) / SUMMARY


def _roles(params: Params) -> list[tuple[str, DatasetSpec]]:
    data = params.data
    return [
        *(("source", s) for s in data.sources),
        *(("single_camera", s) for s in data.single_camera),
        *(("target", s) for s in data.targets),
    ]


def root_fingerprint(root: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256, number of files) over every file name under ``root`` and the bytes of its
    non-image files; ``("missing", 0)`` when ``root`` is not a folder.

    Names are relative to ``root`` (the same world elsewhere gives the same value) and no
    modification time enters (a ``dvc checkout`` or a copy rewrites them).
    """
    top = Path(root)
    if not top.is_dir():
        return "missing", 0
    digest, count = hashlib.sha256(), 0
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames.sort()
        rel = Path(dirpath).relative_to(top).as_posix()
        for name in sorted(filenames):
            digest.update(f"{rel}/{name}\n".encode())
            count += 1
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                continue
            path = Path(dirpath) / name
            size = path.stat().st_size
            digest.update(f"{size}\n".encode())
            if size <= HASHED_MAX_BYTES:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest(), count


def _release_finders() -> dict[str, Callable[[DatasetSpec], Path]]:
    """Format → the function giving the release folder its loader reads under a root."""
    from dynamix.data import cuhk03, cuhk_sysu, luperson_nl, msmt17
    from dynamix.data.market1501 import DUKEMTMC, MARKET1501, find_folder_release

    return {
        "market1501": lambda spec: find_folder_release(spec.root, MARKET1501),
        "dukemtmc": lambda spec: find_folder_release(spec.root, DUKEMTMC),
        "msmt17": lambda spec: msmt17.find_release(spec.root),
        "cuhk03-np": lambda spec: cuhk03.find_release(spec.root, str(spec.options.get("variant", "labeled"))),
        "cuhk-sysu": lambda spec: cuhk_sysu.find_release(spec.root),
        "luperson-nl": lambda spec: luperson_nl.find_release(spec.root),
    }


def release_root(spec: DatasetSpec) -> Path:
    """The release folder ``spec``'s loader reads: its root, or the one release below it.

    Formats without a known release folder (and a root that is not a folder) give the
    root itself. Two candidate releases raise, listing them.
    """
    finder = _release_finders().get(spec.format)
    if finder is None or not Path(spec.root).is_dir():
        return Path(spec.root)
    return finder(spec)


def provenance(role: str, spec: DatasetSpec, release: Path | None = None) -> dict[str, Any]:
    """What one dataset's manifest is built from, as recorded in ``summary.json``
    (``release``: :func:`release_root` of ``spec``, computed when not given)."""
    release = release_root(spec) if release is None else release
    digest, files = root_fingerprint(release)
    return {
        "role": role,
        "format": spec.format,
        "root": spec.root,
        "release_root": str(release),
        "options": dict(spec.options),
        "files": files,
        "fingerprint": f"v{FINGERPRINT_VERSION}:{digest}",
    }


def prepare_manifests(params: Params) -> dict[str, Any]:
    """Load every configured dataset and write the manifest set (``manifest_path``) whole.

    Returns the summary (also ``summary.json``): per dataset its split counts and
    :func:`provenance`.
    """
    from dynamix.data.manifest import format_counts, manifest_path, split_counts, write_manifest
    from dynamix.data.registry import load_dataset

    out_dir = Path(params.data.manifests_dir)
    summary: dict[str, Any] = {}
    with atomic_dir(out_dir) as staging:
        for role, spec in _roles(params):
            release = release_root(spec)
            source = provenance(role, spec, release)  # before loading: a file added meanwhile reads as stale
            df = load_dataset(spec.format, release, domain=spec.name, **spec.options)
            path = write_manifest(df, staging / manifest_path(params, spec.name).name)
            counts = split_counts(df)
            summary[spec.name] = {**source, "splits": counts}
            log.info("manifest %s (%s) -> %s | %s", spec.name, role, path.name, format_counts(counts))
        write_json_atomic(staging / SUMMARY, summary)
    log.info("manifests of %d datasets in %s", len(summary), out_dir)
    return summary


def check_manifests(params: Params) -> dict[str, str]:
    """Whether the manifest set is the one ``prepare`` would build now.

    Raises :class:`ManifestError` (one line naming ``summary.json`` and the fix) when the
    set was built for other params: no summary, a configured dataset missing from it, or
    another role, format, root or options. Returns ``{dataset: why}`` for the datasets whose
    root's files changed since (empty: every manifest is current), so that the data gate
    can report them beside what it finds in the images, and train can refuse them.
    """
    from dynamix.data.manifest import manifest_path

    path = summary_path(params)
    if not path.is_file():
        raise ManifestError(f"{path}: not found (manifests not built by `dynamix prepare`); {FIX}")
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable ({exc}); {FIX}") from exc
    stale: dict[str, str] = {}
    for role, spec in _roles(params):
        entry = recorded.get(spec.name) if isinstance(recorded, dict) else None
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: no manifest of {spec.name} (built for other data.* params); {FIX}")
        if not str(entry.get("fingerprint", "")).startswith(f"v{FINGERPRINT_VERSION}:"):
            raise ManifestError(f"{path}: {spec.name} has no current fingerprint (an older dynamix built it); {FIX}")
        now = json.loads(json.dumps(provenance(role, spec)))  # compared as summary.json holds it
        for key in ("role", "format", "root", "release_root", "options"):
            if entry.get(key) != now[key]:
                raise ManifestError(
                    f"{path}: {spec.name} was built with {key} {entry.get(key)!r}, the params now say "
                    f"{now[key]!r}; {FIX}"
                )
        if not manifest_path(params, spec.name).is_file():
            raise ManifestError(f"{manifest_path(params, spec.name)}: missing from the manifest set; {FIX}")
        if entry["fingerprint"] != now["fingerprint"]:
            stale[spec.name] = (
                f"{path}: the files under {spec.root} changed since the manifest of {spec.name} was built "
                f"({entry.get('files')} files then, {now['files']} now); {FIX}"
            )
    return stale


def require_current_manifests(params: Params) -> None:
    """:func:`check_manifests`, raising on the first dataset whose root changed too."""
    stale = check_manifests(params)
    if stale:
        raise ManifestError(next(iter(stale.values())))


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
