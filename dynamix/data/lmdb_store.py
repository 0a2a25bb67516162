"""Images inside an LMDB store, named in a manifest by ``lmdb://<store dir>#<key>``.

LUPerson-NL ships its ~10 M crops as one LMDB (``lmdb/data.mdb``) plus ``keys.pkl``.
Dumping that to files would cost hours and millions of inodes, so the manifest names each
image by its store and key instead, and :mod:`dynamix.data.images` decodes it from the
store at train time. ``<store dir>`` is the folder holding ``data.mdb``, written as the
loader was given it (like every other manifest path); the key is ASCII without ``#``, so
the last ``#`` splits the two. :func:`open_image`, :func:`open_image_bytes`,
:func:`image_nbytes` and :func:`image_exists` take a file path or an ``lmdb://`` one, so
every reader of manifest paths (the dataset, the data gate) handles both; they live here,
free of torch, and :mod:`dynamix.data.images` re-exports them.

One read-only environment per store and process, opened on first use: a DataLoader
worker forked from the trainer must not use the parent's handle (LMDB forbids it), so on
a change of process id the child closes its inherited copies (unmapping them in the child
only; py-lmdb refuses to open a path twice in one process) and opens fresh ones. ``lock=False``
because the store is never written while training reads it (and a read-only medium or
another user's files have no lock file to write), ``readahead=False`` because reads are
random.

``keys.pkl`` is a pickle, and unpickling runs whatever the file names;
:func:`load_plain_pickle` therefore refuses every global name, so only the plain
containers, strings and numbers that pickle builds without one can come out.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
from pathlib import Path
from typing import Any

from PIL import Image

from dynamix.errors import DynamixError

SCHEME = "lmdb://"

_envs: dict[str, Any] = {}
_owner_pid = os.getpid()


def lmdb_path(store: str | os.PathLike[str], key: str) -> str:
    """The manifest path of ``key`` in the store folder ``store``."""
    return f"{SCHEME}{os.fspath(store)}#{key}"


def is_lmdb_path(path: str) -> bool:
    return path.startswith(SCHEME)


def split_lmdb_path(path: str) -> tuple[str, str]:
    """``lmdb://<dir>#<key>`` → ``(dir, key)``; a path without a key raises ``OSError``."""
    store, sep, key = path[len(SCHEME) :].rpartition("#")
    if not sep or not store or not key:
        raise OSError(f"not an LMDB image path (expected {SCHEME}<store dir>#<key>)")
    return store, key


def _env(store: str) -> Any:
    """This process's read-only environment of ``store`` (opened on first use)."""
    global _owner_pid
    if os.getpid() != _owner_pid:  # forked: the parent's handles are not ours to use
        for inherited in {id(e): e for e in _envs.values()}.values():
            inherited.close()  # frees only this process's copy; py-lmdb refuses a 2nd open of a path
        _envs.clear()
        _owner_pid = os.getpid()
    env = _envs.get(store)
    if env is None:
        real = os.path.realpath(store)  # one handle per store however its path is spelled
        env = _envs.get(real)
        if env is None:
            env = _open(real)
            _envs[real] = env
        _envs[store] = env
    return env


def _open(store: str) -> Any:
    import lmdb

    if not (Path(store) / "data.mdb").is_file():
        raise FileNotFoundError(f"no LMDB store at {store} (data.mdb not found)")
    try:
        return lmdb.open(store, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as exc:
        raise OSError(f"cannot open the LMDB store {store}: {exc}") from exc


def read_bytes(path: str) -> bytes:
    """The stored bytes of an ``lmdb://`` path; ``FileNotFoundError`` for a missing key."""
    store, key = split_lmdb_path(path)
    import lmdb

    try:
        with _env(store).begin(write=False) as txn:
            data = txn.get(key.encode("ascii"))
    except (lmdb.Error, UnicodeEncodeError) as exc:
        raise OSError(f"cannot read key {key!r} from the LMDB store {store}: {exc}") from exc
    if data is None:
        raise FileNotFoundError(f"key {key!r} not in the LMDB store {store}")
    return data


def stored_size(path: str) -> int | None:
    """Bytes stored under an ``lmdb://`` path, or None when the store or key is missing.

    Reads the length in place (no copy of the value), so checking every entry of a
    10 M-image store costs one B-tree lookup each.
    """
    try:
        store, key = split_lmdb_path(path)
        with _env(store).begin(write=False, buffers=True) as txn:
            data = txn.get(key.encode("ascii"))
            return None if data is None else len(data)
    except Exception:  # missing store, bad key, unreadable file: all "not there"
        return None


def store_entries(store: str | os.PathLike[str]) -> int:
    """Number of entries in the store (from its header, without reading them)."""
    return int(_env(os.fspath(store)).stat()["entries"])


def open_image_bytes(path: str) -> bytes:
    """The encoded bytes of a manifest path (file or LMDB entry); ``OSError`` if absent."""
    if is_lmdb_path(path):
        return read_bytes(path)
    with open(path, "rb") as f:
        return f.read()


def image_nbytes(path: str) -> int | None:
    """Encoded size in bytes of a manifest path, or None when the file or entry is missing.

    One ``stat`` for a file, one in-place key lookup for an LMDB entry: the cheap
    existence-and-size check for millions of images.
    """
    if is_lmdb_path(path):
        return stored_size(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def image_exists(path: str) -> bool:
    """A regular file, or a key present in its LMDB store."""
    if is_lmdb_path(path):
        return stored_size(path) is not None
    return os.path.isfile(path)


def open_image(path: str) -> Image.Image:
    """``Image.open`` of a manifest path (lazy, as Pillow's): LMDB entries from their bytes."""
    if is_lmdb_path(path):
        return Image.open(io.BytesIO(read_bytes(path)))
    return Image.open(path)


class _Refused(pickle.UnpicklingError):
    """A pickle asked for a global name."""


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds no object through a global name (functions, classes)."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(f"refused global {module}.{name}")


def load_plain_pickle(path: Path, expected: str) -> Any:
    """Unpickle ``path`` allowing only dict/list/tuple/set, str, bytes, int, float, bool, None.

    Anything that needs a global (``os.system``, a class, a numpy array) raises a one-line
    :class:`DynamixError` naming the file, before that global is ever looked up.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DynamixError(f"{path}: cannot read ({exc.strerror or exc}); expected {expected}") from exc
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except _Refused as exc:
        raise DynamixError(
            f"{path}: {exc} (only plain lists, dicts, strings and numbers are loaded); expected {expected}"
        ) from exc
    except Exception as exc:  # truncated or not a pickle: EOFError, ValueError, ...
        raise DynamixError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); expected {expected}") from exc
