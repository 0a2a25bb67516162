"""LUPerson-NL, read in either released form: the extract script's folders or the LMDB.

The release (github.com/DengpanFu/LUPerson-NL, ``LUP-NL/``) comes two ways, and this
loader reads both as they are, with no conversion step:

**Folders**, as ``extract.py`` writes them::

    root/<country>/<city>/<video>/<pid:06d>_<frame:07d>_<obj:02d>.jpg
    e.g. root/France/Paris/abcDEF12345/000123_0004567_02.jpg

**LMDB**, as ``convert_lmdb.py`` writes it from those folders::

    root/lmdb/data.mdb, root/lmdb/lock.mdb
    root/keys.pkl          pickle of {"keys": [str, ...], "pids": [int, ...]}

``convert_lmdb.py`` walks the folders in sorted country, city, video order, numbers the
videos 1, 2, ... (an empty video folder still takes a number; a video name seen before,
in another city, is skipped whole), and stores each ``.jpg``'s bytes under the key
``<video number:05d>_<file name without .jpg>``, e.g. ``00042_000123_0004567_02``;
``pids[i]`` is the first field of ``keys[i]`` as an int. The key keeps no country, city
or video name, so both forms name a video by that number (``video`` = ``"00042"``): the
folder form numbers its videos exactly as the script does, which makes the two
manifests equal row for row (pids, videos, tracklets, order), the paths aside.

The pid is the release's global pseudo identity: the tracker's id, numbered over the
whole set (its own training code uses it directly as a class over all 10 M images), and
noisy, so rows are ``single_camera`` as for :mod:`dynamix.data.single_camera`: ``camid``
is the video's index in video-number order, ``tracklet`` the pid as written in the name
(``"000123"``; the tracker's id is the tracklet), every row ``train``.

``root`` may be the release folder or the folder the peers take above it (``data/``
holding ``LUPerson-NL/``): the one release found within two levels (a folder holding
``lmdb/`` or ``keys.pkl``, or ``<country>/<city>/<video>/`` crops named as above) is read,
and the log says which (:func:`~dynamix.data.layout.find_release_root`). The folder form
takes ``*.jpg`` only, as ``convert_lmdb.py`` does; other image files are left out with the
loaders' one warning and a count (:func:`~dynamix.data.layout.warn_other_images`).

Paths: folder crops are files; LMDB crops are ``lmdb://<root>/lmdb#<key>``
(:mod:`dynamix.data.lmdb_store`), decoded from the store by the dataset at train time.

``keys.pkl`` is loaded by an unpickler that refuses every global name, so a tampered
file cannot run code; the release's file holds only lists of ``str`` and ``int``. A
``keys.pkl`` re-saved with numpy arrays is refused too (rebuilding an array needs a
global): save ``.tolist()`` of it instead.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dynamix.data.layout import (
    extract,
    find_release_root,
    first_false,
    is_image_name,
    layout_error,
    require_dir,
    require_file,
    to_int,
    warn_other_images,
)
from dynamix.data.lmdb_store import SCHEME, lmdb_path, load_plain_pickle, store_entries, stored_size
from dynamix.data.manifest import SINGLE_CAMERA, make_manifest
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

FORMS = ("auto", "folders", "lmdb")
LMDB_DIR = "lmdb"
KEYS_FILE = "keys.pkl"
EXTENSION = ".jpg"  # convert_lmdb.py takes the names ending in "jpg"
EXAMPLE_NAME = "000123_0004567_02.jpg"
EXAMPLE_KEY = "00042_000123_0004567_02"
NAME_PATTERN = r"^(?P<pid>\d{1,18})_(?P<frame>\d{1,18})_(?P<obj>\d{1,9})\.jpg$"
KEY_PATTERN = r"^(?P<video>\d{1,9})_(?P<pid>\d{1,18})_(?P<frame>\d{1,18})_(?P<obj>\d{1,9})$"
FOLDERS_EXPECTED = f"<country>/<city>/<video>/{EXAMPLE_NAME} crops (LUPerson-NL extract.py)"
NAME_HINT = "lup"  # a data/ holding several releases: the one whose path says so
CROP_NAME = re.compile(NAME_PATTERN)
KEYS_EXPECTED = "keys.pkl as LUPerson-NL convert_lmdb.py writes it: {'keys': [str], 'pids': [int]}"


def load_luperson_nl(root: str | os.PathLike[str], domain: str = "luperson-nl", form: str = "auto") -> pd.DataFrame:
    """Manifest (all ``train``, single-camera) of LUPerson-NL under ``root``.

    ``form``: ``folders``, ``lmdb``, or ``auto`` (``lmdb`` when ``root`` holds ``lmdb/`` or
    ``keys.pkl``, else ``folders``).
    """
    if form not in FORMS:
        raise DynamixError(f"luperson-nl: option form={form!r} is not one of {', '.join(FORMS)}")
    base = find_release(root)
    if form == "auto":
        form = "lmdb" if (base / LMDB_DIR).exists() or (base / KEYS_FILE).exists() else "folders"
    if form == "lmdb":
        manifest = read_lmdb_form(base, domain)
    else:
        manifest = read_folder_form(base, domain)
    log_summary(manifest, domain, form, base)
    return manifest


def is_lmdb_release(path: Path) -> bool:
    """The LMDB form: ``lmdb/`` or ``keys.pkl`` directly inside ``path``."""
    return (path / LMDB_DIR).is_dir() or (path / KEYS_FILE).is_file()


def is_folder_release(path: Path) -> bool:
    """The folder form: some ``<country>/<city>/<video>/`` below ``path`` holds a crop named
    ``<pid>_<frame>_<obj>.jpg``. Stops at the first one: at the release root that is the
    first non-empty video; other releases (Market's ``0002_c1s1_...``) never match."""
    for country in _subdirs(str(path)):
        for city in _subdirs(str(path / country)):
            for video in _subdirs(str(path / country / city)):
                with os.scandir(path / country / city / video) as it:
                    if any(CROP_NAME.match(e.name) for e in it):
                        return True
    return False


def is_release(path: Path) -> bool:
    """A LUPerson-NL release in either form."""
    return is_lmdb_release(path) or is_folder_release(path)


def find_release(root: str | os.PathLike[str]) -> Path:
    """``root``, or the one LUPerson-NL release below it (``data/`` + ``LUPerson-NL/``)."""
    expected = f"a LUPerson-NL root holding {LMDB_DIR}/ and {KEYS_FILE}, or {FOLDERS_EXPECTED}"
    return find_release_root(root, "LUPerson-NL", is_release, expected, NAME_HINT)


def _subdirs(folder: str) -> list[str]:
    """Sorted names of the folders inside ``folder``, without hidden and ``__MACOSX`` ones."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith((".", "__MACOSX")))


def _stray_images(folder: str) -> int:
    """Image files directly in ``folder``, a level where the release has only folders."""
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.is_file() and is_image_name(e.name))


def read_folder_form(base: Path, domain: str) -> pd.DataFrame:
    """Rows of the extract script's folders, in ``convert_lmdb.py``'s order and numbering."""
    rel_dirs: list[str] = []  # one per video with crops
    numbers: list[int] = []
    names: list[str] = []
    counts: list[int] = []
    seen: dict[str, str] = {}
    repeated: list[str] = []
    others: list[str] = []  # image files of another extension, relative to base
    stray = 0
    number = 0
    for country in _subdirs(str(base)):
        stray += _stray_images(str(base / country))
        for city in _subdirs(str(base / country)):
            city_dir = base / country / city
            stray += _stray_images(str(city_dir))
            for video in _subdirs(str(city_dir)):
                rel = f"{country}/{city}/{video}"
                if video in seen:  # convert_lmdb.py skips a video name it has stored
                    repeated.append(rel)
                    continue
                seen[video] = rel
                number += 1
                with os.scandir(city_dir / video) as it:
                    files = [e.name for e in it if e.is_file() and not e.name.startswith(".")]
                crops = sorted(n for n in files if n.endswith(EXTENSION))
                others += [f"{rel}/{n}" for n in files if is_image_name(n) and not n.endswith(EXTENSION)]
                if crops:
                    rel_dirs.append(rel)
                    numbers.append(number)
                    names += crops
                    counts.append(len(crops))
    if repeated:
        log.warning(
            "%s: %d video folders skipped, their name repeats an earlier video (convert_lmdb.py skips them too), "
            "e.g. %s (first: %s)",
            base,
            len(repeated),
            repeated[0],
            seen[repeated[0].rsplit("/", 1)[-1]],
        )
    if stray:
        log.warning("%s: %d image files outside <country>/<city>/<video>/ left out", base, stray)
    warn_other_images(f"{domain} (LUPerson-NL)", base, others, (EXTENSION,))
    if not names:
        raise layout_error(base, "no <country>/<city>/<video>/*.jpg crops found", FOLDERS_EXPECTED)

    name_arr = pa.array(names, type=pa.string())
    groups, ok = extract(name_arr, NAME_PATTERN)
    row_video = np.repeat(np.arange(len(rel_dirs)), counts)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(
            base / rel_dirs[row_video[bad]] / names[bad],
            "name is not <pid:06d>_<frame:07d>_<obj:02d>.jpg",
            f"crops named like {EXAMPLE_NAME}",
        )
    dirs = pa.array([f"{str(base).rstrip('/')}/{d}" for d in rel_dirs], type=pa.string()).take(pa.array(row_video))
    paths = pc.binary_join_element_wise(dirs, name_arr, "/")
    return _manifest(
        paths, np.asarray(numbers, dtype=np.int64)[row_video], groups["pid"], to_int(groups["pid"]), domain
    )


def read_lmdb_form(base: Path, domain: str) -> pd.DataFrame:
    """Rows of ``keys.pkl`` in its order, every path naming its key in ``<root>/lmdb``."""
    store = require_dir(base / LMDB_DIR, f"the LMDB folder ({LMDB_DIR}/data.mdb) next to {KEYS_FILE}")
    require_file(store / "data.mdb", "the LMDB data file written by LUPerson-NL convert_lmdb.py")
    keys_file = require_file(base / KEYS_FILE, KEYS_EXPECTED)
    data = load_plain_pickle(keys_file, KEYS_EXPECTED)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not isinstance(data.get("pids"), list):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise layout_error(keys_file, f"holds {found}, not lists 'keys' and 'pids'", KEYS_EXPECTED)
    keys, pids = data["keys"], data["pids"]
    if len(keys) != len(pids):
        raise layout_error(keys_file, f"{len(keys)} keys but {len(pids)} pids", "one pid per key")
    if not keys:
        raise layout_error(keys_file, "no keys", KEYS_EXPECTED)
    try:
        key_arr = pa.array(keys, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise layout_error(keys_file, f"'keys' holds a non-string ({exc})", KEYS_EXPECTED) from exc
    groups, ok = extract(key_arr, KEY_PATTERN)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(keys_file, f"keys[{bad}] = {keys[bad]!r} is not <video>_<pid>_<frame>_<obj>", EXAMPLE_KEY)
    pid = np.asarray(pids)
    if pid.dtype.kind not in "iu":
        raise layout_error(keys_file, f"'pids' holds {pid.dtype} values, not integers", KEYS_EXPECTED)
    key_pid = to_int(groups["pid"])
    bad = first_false(key_pid == pid)
    if bad is not None:
        raise layout_error(
            keys_file, f"pids[{bad}] = {pid[bad]} but keys[{bad}] = {keys[bad]!r}", "the pid written in each key"
        )
    if len(pc.unique(key_arr)) < len(keys):
        dup = pd.Series(keys)[pd.Series(keys).duplicated()].iloc[0]
        raise layout_error(keys_file, f"key {dup!r} is listed twice", "each key once")
    try:
        entries = store_entries(store)
    except OSError as exc:
        raise layout_error(store, f"not a readable LMDB store ({exc})", "the lmdb/ written by convert_lmdb.py") from exc
    if entries != len(keys):
        raise layout_error(
            store,
            f"holds {entries} entries but {keys_file} lists {len(keys)} keys",
            "the lmdb/ and keys.pkl written by one run of convert_lmdb.py",
        )
    for i in (0, len(keys) - 1):  # a cheap sign that keys.pkl belongs to this store; the gate checks every key
        if stored_size(lmdb_path(store, keys[i])) is None:
            raise layout_error(store, f"has no entry for keys[{i}] = {keys[i]!r} of {keys_file}", "every key stored")
    paths = pc.binary_join_element_wise(f"{SCHEME}{store}", key_arr, "#")
    return _manifest(paths, to_int(groups["video"]), groups["pid"], pid.astype(np.int64), domain)


def _manifest(paths: pa.Array, number: np.ndarray, pid_text: pa.Array, pid: np.ndarray, domain: str) -> pd.DataFrame:
    """The single-camera manifest both forms share (video = ``%05d`` video number)."""
    present, camid = np.unique(number, return_inverse=True)
    video = np.char.zfill(present.astype(str), 5)[camid]
    return make_manifest(
        {
            "path": pd.array(paths.to_numpy(zero_copy_only=False), dtype="string"),
            "pid": pid,
            "camid": camid.astype(np.int64),
            "domain": domain,
            "split": "train",
            "source_kind": SINGLE_CAMERA,
            "video": pd.array(video, dtype="string"),
            "tracklet": pd.array(pid_text.to_numpy(zero_copy_only=False), dtype="string"),
        }
    )


def log_summary(manifest: pd.DataFrame, domain: str, form: str, base: Path) -> None:
    """One line of counts, plus a warning when a pseudo id spans several videos."""
    videos_per_pid = manifest.groupby("pid", sort=False)["video"].nunique()
    log.info(
        "%s (LUPerson-NL %s at %s): %d images, %d pseudo ids, %d videos",
        domain,
        form,
        base,
        len(manifest),
        len(videos_per_pid),
        manifest["video"].nunique(),
    )
    spanning = videos_per_pid[videos_per_pid > 1]
    if len(spanning):
        log.warning(
            "%s: %d pseudo ids appear in more than one video (e.g. pid %d)", domain, len(spanning), spanning.index[0]
        )
