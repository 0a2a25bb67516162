"""Atomic file writes: a reader sees either the old file or the complete new one.

Checkpoints, manifests, reports and metrics are all written through here so that a crash
mid-write never leaves a truncated file that a later stage would trust. A process killed
outright (SIGKILL, power loss) can still leave its temporary file (``.<name>.<random>.tmp``
beside the target): :func:`clean_temp_files` removes them, and whoever owns a folder (the
trainer its ``out_dir``) calls it before writing there again. A set of files that must
change together (the manifests) is written into a temporary folder and swapped in whole
(:func:`atomic_dir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike[str], payload: Any, *, indent: int = 2) -> None:
    """Write ``payload`` as JSON, atomically, with a trailing newline."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent, sort_keys=True) + "\n")


def clean_temp_files(directory: str | os.PathLike[str], names: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files a killed :func:`atomic_path` write left in ``directory``.

    ``names``: only those of these targets (``.last.pt.<random>.tmp`` for ``last.pt``);
    None: every ``.*.tmp`` file there. Not recursive. Call it only where no other process is
    writing at the same time: a live writer's temporary file looks the same. Returns what
    was removed.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    patterns = [f".{name}.*{TEMP_SUFFIX}" for name in names] if names is not None else [f".*{TEMP_SUFFIX}"]
    removed = []
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of a killed write in %s", len(removed), folder)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; if the block succeeds, it replaces
    ``path`` whole, else it is removed.

    A reader then finds the previous complete set of files, or (for the instant between the
    two renames, or after a kill right there) no folder at all, never a mix of old and new
    files. Leftovers of a killed earlier call (``.<name>.*.tmp`` / ``.<name>.*.old``
    folders) are removed first, so one writer per ``path`` at a time.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{target.name}.*{TEMP_SUFFIX}", f".{target.name}.*.old"):
        for stale in target.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes 0700; give the usual mode
    try:
        yield tmp
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists() or old.is_symlink():
            old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (a 62 MB checkpoint in ~0.1 s)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
