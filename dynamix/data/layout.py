"""Shared checks and fast parsing for the dataset loaders.

Every loader fails the same way: one :class:`DatasetLayoutError` line that starts with the
path at fault (``<path>: <problem>; expected <what>``, or ``<list file>:<line>: ...`` for
list files), so a user can fix the folder without reading loader code.

Speed matters because single-camera sources reach millions of files: folders are read
with ``os.scandir`` (no per-file ``stat``), file names are parsed with pyarrow's vectorized
RE2 ``extract_regex`` (about 15x faster than ``pandas.Series.str.extract``, which loops in
Python even on Arrow strings), and no image is ever opened — decoding is checked later by
the validation stage.

Two rules keep a folder read the way the reference toolkits (torchreid, fast-reid, M3L)
read it, so that counts match theirs image for image:

- **Extensions per format.** The peers glob one extension, case-sensitively (``*.jpg``
  for Market-1501, DukeMTMC-reID and CUHK-SYSU, ``*.png`` for CUHK03-NP).
  :func:`scan_images` keeps only those; any other image file (a ``.png`` or ``.JPG``
  converted copy) is left out and reported in ONE warning with its count
  (:func:`warn_other_images`), never silently counted twice.
- **Roots as users give them.** :func:`find_release_root` accepts the folder the peers
  take (``data/`` holding ``Market-1501-v15.09.15/``, or torchreid's
  ``data/market1501/Market-1501-v15.09.15/``) and descends into the one release folder
  below it, with a log line; two candidates are an error listing both.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dynamix.errors import DatasetLayoutError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_LINE_HINT = "'<relative/path.jpg> <pid>' with a non-negative integer pid"


def layout_error(path: str | os.PathLike[str], problem: str, expected: str) -> DatasetLayoutError:
    """The one-line error every loader raises: ``<path>: <problem>; expected <expected>``."""
    return DatasetLayoutError(f"{path}: {problem}; expected {expected}")


def require_dir(path: str | os.PathLike[str], expected: str) -> Path:
    """Return ``path`` as a Path if it is a directory, else raise naming it."""
    p = Path(path)
    if not p.is_dir():
        problem = "not a directory" if p.exists() else "folder not found"
        raise layout_error(p, problem, expected)
    return p


def require_file(path: str | os.PathLike[str], expected: str) -> Path:
    """Return ``path`` as a Path if it is a regular file, else raise naming it."""
    p = Path(path)
    if not p.is_file():
        raise layout_error(p, "file not found", expected)
    return p


def is_image_name(name: str) -> bool:
    """An image by its extension; hidden files (macOS ``._x.jpg`` forks) never are."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_images(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder``.

    Non-image and hidden files (``Thumbs.db``, ``.DS_Store``, ``._0002_c1s1_000451_03.jpg``)
    are skipped, because real archives ship them; sorting makes the manifest byte-identical
    between runs.
    """
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file()]
    images = sorted(n for n in names if is_image_name(n))
    if len(images) != len(names):
        log.debug("%s: ignored %d non-image files", folder, len(names) - len(images))
    return images


def scan_images(folder: Path, extensions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(sorted names ending in one of ``extensions``, sorted other image names) in ``folder``.

    The match is case-sensitive, as the peers' ``glob('*.jpg')`` is on Linux: ``x.JPG`` is
    another image, reported by the caller (:func:`warn_other_images`), not loaded.
    """
    taken, other = [], []
    for name in list_images(folder):
        (taken if name.endswith(tuple(extensions)) else other).append(name)
    return taken, other


def warn_other_images(what: str, base: Path, others: Sequence[str], extensions: Sequence[str]) -> None:
    """ONE warning for all image files of another extension the loader left out of ``what``.

    ``others``: their paths relative to ``base``. Quiet when there are none.
    """
    if others:
        log.warning(
            "%s at %s: %d image files not %s left out, as the reference loaders do (e.g. %s); "
            "delete converted copies or convert them all",
            what,
            base,
            len(others),
            "/".join(f"*{e}" for e in extensions),
            ", ".join(sorted(others)[:3]),
        )


def find_release_root(
    root: str | os.PathLike[str],
    title: str,
    is_release: Callable[[Path], bool],
    expected: str,
    name_hint: str | None = None,
    depth: int = 2,
) -> Path:
    """``root`` if it is a release folder, else the one release folder up to ``depth`` below.

    The peers take the parent of the release (``data/`` + ``Market-1501-v15.09.15/``, or
    torchreid's ``data/market1501/Market-1501-v15.09.15``); this accepts both and says in
    the log which folder it reads. Levels are searched nearest first. Several candidates
    at one level are narrowed by ``name_hint`` (a case-insensitive regex on the relative
    path, e.g. ``market`` for a ``data/`` holding Market and Duke); still several is an
    error listing them. None found returns ``root`` unchanged: the loader's own checks
    then name what is missing. Only folder entries are listed (no per-file ``stat``).
    """
    top = require_dir(root, expected)
    if is_release(top):
        return top
    level = [top]
    for _ in range(depth):
        level = [sub for folder in level for sub in _subdirs(folder)]
        found = [p for p in level if is_release(p)]
        if len(found) > 1 and name_hint:
            hinted = [p for p in found if re.search(name_hint, p.relative_to(top).as_posix(), re.IGNORECASE)]
            found = hinted or found
        if len(found) > 1:
            listed = ", ".join(p.relative_to(top).as_posix() + "/" for p in found)
            raise layout_error(top, f"holds {len(found)} {title} releases ({listed})", "the root of one of them")
        if found:
            log.info("%s: reading the %s release found at %s", top, title, found[0])
            return found[0]
    return top


def _subdirs(folder: Path) -> list[Path]:
    """Sorted visible sub-folders of ``folder`` (``__MACOSX/`` and hidden ones skipped)."""
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if e.is_dir() and not e.name.startswith((".", "__MACOSX"))]
    except OSError:  # unreadable: not a candidate
        return []
    return [folder / n for n in sorted(names)]


def list_files_recursive(folder: Path, prefix: str = "") -> list[str]:
    """``prefix`` + relative POSIX path of every file below ``folder`` (any depth, unsorted)."""
    out: list[str] = []
    stack = [(str(folder), prefix)]
    while stack:
        absdir, rel = stack.pop()
        with os.scandir(absdir) as it:
            for entry in it:
                name = rel + entry.name
                if entry.is_dir():
                    stack.append((entry.path, name + "/"))
                elif entry.is_file():
                    out.append(name)
    return out


def extract(
    values: Sequence[str] | pa.Array, pattern: str
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Match every value against RE2 ``pattern`` (named groups) in one vectorized call.

    Returns the group columns and a boolean mask of the matches; group values of rows that
    did not match are meaningless, so callers report the first non-match before using them.
    """
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    matched = pc.extract_regex(arr, pattern)
    ok = matched.is_valid().to_numpy(zero_copy_only=False)
    groups = {f.name: matched.field(i) for i, f in enumerate(matched.type)}
    return groups, ok


def to_int(column: pa.Array) -> np.ndarray:
    """Digits captured by :func:`extract` → ``int64`` (call only on matched rows)."""
    return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)


def first_false(mask: np.ndarray) -> int | None:
    """Index of the first ``False`` in ``mask``, or None when all are True."""
    bad = np.flatnonzero(~mask)
    return int(bad[0]) if len(bad) else None


def read_list_file(path: Path) -> pd.DataFrame:
    """Parse a ``<relative path> <pid>`` list file into columns ``line``, ``rel``, ``pid``.

    Blank lines are skipped (release files often end with one); any other line that is not
    exactly a path and a non-negative integer raises, naming ``file:line``. A path listed
    twice is also an error, since one image cannot carry two labels.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise layout_error(path, f"not UTF-8 text ({exc.reason})", LIST_LINE_HINT) from exc
    lines = pa.array(text.splitlines(), type=pa.string())
    blank = pc.match_substring_regex(lines, r"^\s*$").to_numpy(zero_copy_only=False)
    line_no = np.flatnonzero(~blank) + 1
    lines = lines.filter(pa.array(~blank))
    groups, ok = extract(lines, r"^\s*(?P<rel>\S+)\s+(?P<pid>\d{1,18})\s*$")
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(
            f"{path}:{line_no[bad]}", f"malformed line {lines[bad].as_py()!r}", LIST_LINE_HINT
        )
    if not len(lines):
        return pd.DataFrame({"line": [], "rel": [], "pid": []})
    table = pd.DataFrame(
        {
            "line": line_no,
            "rel": groups["rel"].to_numpy(zero_copy_only=False),
            "pid": to_int(groups["pid"]),
        }
    )
    if len(pc.unique(groups["rel"])) < len(table):  # C++ hash; the pandas check is 10x slower
        row = table[table["rel"].duplicated()].iloc[0]
        first = int(table.loc[table["rel"] == row["rel"], "line"].iloc[0])
        raise layout_error(
            f"{path}:{row['line']}",
            f"{row['rel']} is listed again (first at line {first})",
            "each image listed once",
        )
    return table


def require_listed_files(
    table: pd.DataFrame, base: Path, existing: Sequence[str], list_file: Path
) -> None:
    """Raise for the first row of ``table`` whose ``rel`` path is not in ``existing``.

    ``existing`` comes from one :func:`list_files_recursive` scan of ``base``: one hashed
    set lookup per row (pyarrow ``is_in``) instead of one ``stat`` system call per image.
    """
    rel = pa.array(table["rel"].to_numpy(), type=pa.string())
    known = pa.array(existing, type=pa.string())
    present = pc.is_in(rel, value_set=known).to_numpy(zero_copy_only=False)
    bad = first_false(present)
    if bad is not None:
        row = table.iloc[bad]
        raise layout_error(
            f"{list_file}:{row['line']}",
            f"listed file {base / row['rel']} does not exist",
            f"every listed path to exist under {base}",
        )


def join_paths(prefix: Path, rel: Sequence[str] | np.ndarray) -> pd.Series:
    """``str(prefix / r)`` for every relative path, vectorized (``/`` separators)."""
    head = str(prefix).rstrip("/\\") + "/"
    return head + pd.Series(rel, dtype="string")
