"""Vendor files from npm packages into ``vendor/<name>@<version>/``, pinned by sha256.

The HTML pages the project writes (``dvc plots show``, GX Data Docs) must render on an
offline machine, so the JavaScript and CSS they need are committed instead of loaded from a
CDN. This script is how those files get here and how we know they are the published ones:

    python scripts/vendor_npm.py            # npm pack each package, copy the listed files
    python scripts/vendor_npm.py --record   # same, and add the hashes of files new to the list
    python scripts/vendor_npm.py --check    # no network: vendor/ matches PACKAGES and the sums

``npm pack <name>@<version>`` downloads the registry tarball (npm checks its integrity);
only the files listed in :data:`PACKAGES` are copied, each flat under its base name (the
repository's ``.gitignore`` ignores ``build/`` and ``dist/`` folders), and every copied file
must match its line in ``vendor/SHA256SUMS`` (``sha256sum -c`` reads it too). Adding a
package: add it to :data:`PACKAGES` with its licence file, run with ``--record`` once, commit
``vendor/``. A file whose hash differs from the committed one is an error, never rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "vendor"
SUMS_NAME = "SHA256SUMS"

# name@version -> files inside the package (paths as in its tarball, without ``package/``).
PACKAGES: dict[str, list[str]] = {
    # `dvc plots show` (vendor/dvc_plots_template.html, built by scripts/dvc_plots_template.py):
    # the versions dvc-render's default page loads from jsDelivr.
    "vega@5.20.2": ["LICENSE", "build/vega.min.js"],
    "vega-lite@5.2.0": ["LICENSE", "build/vega-lite.min.js"],
    "vega-embed@6.18.2": ["LICENSE", "build/vega-embed.min.js"],
    # GX Data Docs (flows/data_docs.py rewrites its CDN links to these): the versions its
    # 1.24 page templates load; vega, vega-lite and vega-embed are the ones above.
    "jquery@3.7.1": ["LICENSE.txt", "dist/jquery.min.js"],
    "popper.js@1.12.9": ["dist/umd/popper.min.js"],  # MIT; the notice is in the file
    "bootstrap@4.3.1": ["LICENSE", "dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js"],
    "bootstrap-table@1.19.1": [
        "LICENSE",
        "dist/bootstrap-table.min.css",
        "dist/bootstrap-table.min.js",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    ],
    "bootstrap-datepicker@1.9.0": [
        "LICENSE",
        "dist/css/bootstrap-datepicker.min.css",
        "dist/js/bootstrap-datepicker.min.js",
    ],
    "@forevolve/bootstrap-dark@1.1.0": ["LICENSE", "dist/css/bootstrap-prefers-dark.css"],
    "@fortawesome/fontawesome-free@6.6.0": [
        "LICENSE.txt",
        "css/all.min.css",
        "webfonts/fa-brands-400.woff2",
        "webfonts/fa-regular-400.woff2",
        "webfonts/fa-solid-900.woff2",
        "webfonts/fa-v4compatibility.woff2",
    ],
}


def stored_files(packages: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """``{"<spec>/<base name>": (spec, path in package)}``; two files with one name are an error."""
    out: dict[str, tuple[str, str]] = {}
    for spec, paths in packages.items():
        for path in paths:
            rel = f"{spec}/{PurePosixPath(path).name}"
            if rel in out:
                raise ValueError(f"{spec}: {path} and {out[rel][1]} would both be stored as {rel}")
            out[rel] = (spec, path)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sums(vendor: Path) -> dict[str, str]:
    """``{"<spec>/<name>": hex digest}`` from ``vendor/SHA256SUMS`` (``sha256sum`` format)."""
    sums_path = vendor / SUMS_NAME
    if not sums_path.is_file():
        return {}
    sums = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.lstrip("*")] = digest
    return sums


def write_sums(vendor: Path, sums: dict[str, str]) -> None:
    lines = [f"{digest}  {rel}\n" for rel, digest in sorted(sums.items())]
    vendor.mkdir(parents=True, exist_ok=True)
    (vendor / SUMS_NAME).write_text("".join(lines))


def check(vendor: Path = VENDOR, packages: dict[str, list[str]] = PACKAGES) -> list[str]:
    """Every problem that makes ``vendor/`` differ from the list and the sums (empty: clean).

    Offline: missing, unhashed, altered and unlisted files, and sums of files no longer listed.
    Only the package folders (``<name>@<version>``) are inspected; other files in ``vendor/``
    (generated templates) belong to their own scripts.
    """
    want = stored_files(packages)
    sums = read_sums(vendor)
    problems = []
    for rel in want:
        path = vendor / rel
        if rel not in sums:
            problems.append(f"{rel}: no line in {SUMS_NAME} (run with --record)")
        elif not path.is_file():
            problems.append(f"{rel}: missing (run scripts/vendor_npm.py)")
        elif sha256(path) != sums[rel]:
            problems.append(f"{rel}: sha256 differs from {SUMS_NAME}")
    problems += [f"{rel}: in {SUMS_NAME} but not in PACKAGES" for rel in sums if rel not in want]
    for folder in sorted(p for p in vendor.glob("*@*") if p.is_dir()):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(vendor).as_posix()
            if rel not in want:
                problems.append(f"{rel}: not listed in PACKAGES")
    return problems


def npm_pack(spec: str, dest: Path) -> Path:
    """The registry tarball of ``spec`` in ``dest`` (``npm pack`` verifies its integrity)."""
    done = subprocess.run(
        ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed:\n{done.stderr.strip()}")
    return dest / json.loads(done.stdout)[0]["filename"]


def read_member(tarball: Path, path: str) -> bytes:
    """One file of an npm tarball, whatever its top folder is called (usually ``package/``)."""
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.isfile() and PurePosixPath(*parts[1:]).as_posix() == path:
                data = tar.extractfile(member)
                assert data is not None
                return data.read()
    raise FileNotFoundError(f"{tarball.name} has no {path}")


def fetch(vendor: Path = VENDOR, packages: dict[str, list[str]] = PACKAGES, record: bool = False) -> list[str]:
    """Copy the listed files from the registry; returns :func:`check`'s problems afterwards.

    A file that differs from its committed hash is reported and left unwritten; with
    ``record`` the hashes of files not yet in the sums are added (trust on first use).
    """
    sums = read_sums(vendor)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for rel, (spec, path) in stored_files(packages).items():
            tarball = Path(tmp) / f"{spec.replace('/', '+')}.tgz"  # scoped: @scope/name
            if not tarball.is_file():
                npm_pack(spec, Path(tmp)).rename(tarball)
            data = read_member(tarball, path)
            digest = hashlib.sha256(data).hexdigest()
            if rel in sums and sums[rel] != digest:
                problems.append(f"{rel}: the registry's file differs from {SUMS_NAME}")
                continue
            if rel not in sums and not record:
                problems.append(f"{rel}: no line in {SUMS_NAME} (run with --record)")
                continue
            sums[rel] = digest
            (vendor / spec).mkdir(parents=True, exist_ok=True)
            (vendor / rel).write_bytes(data)
            print(f"{digest[:12]}  {rel}")
    write_sums(vendor, sums)
    return problems or check(vendor, packages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify vendor/ offline, copy nothing")
    mode.add_argument("--record", action="store_true", help="add hashes of newly listed files")
    parser.add_argument("--vendor", type=Path, default=VENDOR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.vendor)
    else:
        problems = fetch(args.vendor, record=args.record)
    for problem in problems:
        print(f"vendor_npm: {problem}", file=sys.stderr)
    if not problems and args.check:
        print(f"vendor_npm: {len(stored_files(PACKAGES))} files match {SUMS_NAME}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
