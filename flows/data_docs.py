"""GX Data Docs for the data gate: HTML pages of every suite and result, readable offline.

Great Expectations renders its pages from the validation results it keeps in the gate's
context (:mod:`flows.validation`) into ``<reports_dir>/data_docs/index.html``. Its templates
load Bootstrap, jQuery, Font Awesome and Vega from CDNs and the logo from S3, so on an
offline machine (this one, an air-gapped GPU cluster) the index, whose table jQuery draws,
would stay empty. After the build every such reference is rewritten to a copy under
``data_docs/static/vendor/``, taken from ``vendor/`` (npm packages pinned by sha256,
``scripts/vendor_npm.py``), and GX's unused assets (3.5 MB of GIFs and fonts) are dropped.

The pages are byte-identical for identical data, like the JSON reports beside them (DVC
hashes the folder into dvc.lock): every result carries the same run identity,
:data:`RUN_ID`, whose time is fixed at the epoch; when the gate really ran is in the gate
record (:mod:`flows.gate_record`) and the MLflow run.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from great_expectations.core.run_identifier import RunIdentifier

log = logging.getLogger(__name__)

DIRNAME = "data_docs"
SITE = "dynamix-gate"
RUN_ID = RunIdentifier(
    run_name="dynamix-validate",
    run_time=datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
)
VENDOR = Path(__file__).resolve().parents[1] / "vendor"
STATIC_VENDOR = "static/vendor"
#: GX assets the rewritten pages use; the rest of ``static/`` is deleted.
KEEP_STATIC = ("static/images/favicon.ico", "static/images/logo-long.png")
LOGO = "static/images/logo-long.png"
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

FONT_AWESOME = "@fortawesome/fontawesome-free@6.6.0"
FONTS = ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")

# The CDN URLs of GX 1.24's templates -> the file in vendor/. "@5" means the newest 5.x on
# the CDN: the release pinned for `dvc plots` stands in. bootstrap-table 1.19.0's
# filter-control CSS differs from 1.19.1's only in its version comment.
CDN: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.20.2/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.2.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.18.2/vega-embed.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": ("popper.js@1.12.9/popper.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": ("bootstrap@4.3.1/bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": ("bootstrap@4.3.1/bootstrap.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1/bootstrap-table.min.js"
    ),
    **{
        f"https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/{name}": (
            "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.css"
        )
        for name in ("bootstrap-table-filter-control.css", "bootstrap-table-filter-control.min.css")
    },
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "@forevolve/bootstrap-dark@1.1.0/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (f"{FONT_AWESOME}/all.min.css"),
}
#: Every file of vendor/ the site gets: the CDN replacements and the fonts Font Awesome loads.
VENDORED = (*dict.fromkeys(CDN.values()), *(f"{FONT_AWESOME}/{f}.woff2" for f in FONTS))


def site_path(vendored: str) -> str:
    """Where a vendor/ file goes in the site: ``static/vendor/<package>@<version>/<file>``.

    The npm scope is dropped; Font Awesome's CSS loads its fonts from ``../webfonts/``, so
    that package keeps its own ``css/`` and ``webfonts/`` folders.
    """
    spec, name = vendored.rsplit("/", 1)
    package = spec.rsplit("/", 1)[-1]
    if spec == FONT_AWESOME:
        name = f"{'webfonts' if name.endswith('.woff2') else 'css'}/{name}"
    return f"{STATIC_VENDOR}/{package}/{name}"


# A <script src=...> or <link href=...> tag; SRI and CORS attributes go with the CDN URL
# (a crossorigin script is refused on file:// pages).
TAG = re.compile(r"<(script|link)\b([^>]*?)\s(src|href)=\"(https?://[^\"]+)\"([^>]*)>")
SRI = re.compile(r"\s(integrity|crossorigin)=\"[^\"]*\"")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# GX's own relative links to static/images/ (its favicon link on a result page climbs one
# folder too few): recomputed from each page's depth.
GX_IMAGES = re.compile(r"=\"(?:\.\.?/)*static/images/")
GX_ASSET = re.compile(re.escape(GX_ASSETS) + r"[^\"')\s]*")
REMOTE = re.compile(r"<(?:script|link|img)\b[^>]*?\s(?:src|href)=\"(https?://[^\"]+)\"|url\(['\"]?(https?://[^'\")]+)")


def docs_dir(reports_dir: str | os.PathLike[str]) -> Path:
    """Where the gate's Data Docs site lives: inside the reports folder DVC tracks."""
    return Path(reports_dir) / DIRNAME


def index_path(reports_dir: str | os.PathLike[str]) -> Path:
    """The page to open: ``<reports_dir>/data_docs/index.html``."""
    return docs_dir(reports_dir) / "index.html"


def build(context: Any, reports_dir: str | os.PathLike[str]) -> Path:
    """Render every result stored in ``context`` into a fresh site; returns its index page.

    The old site is removed first so that the pages are those of this run only.
    """
    site = docs_dir(reports_dir)
    shutil.rmtree(site, ignore_errors=True)
    config = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(site.resolve()),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    if SITE not in (context.list_data_docs_sites() or {}):
        context.add_data_docs_site(SITE, config)
    _drop_load_times(context)
    context.build_data_docs(site_names=[SITE])
    make_offline(site)
    return site / "index.html"


def make_offline(site: Path, vendor: Path = VENDOR) -> list[str]:
    """Point every page at local copies of its scripts, styles and images.

    Returns the remote URLs still loaded by some page (empty when all is local); they are
    logged, not fatal: the gate's verdict does not depend on how its report renders.
    """
    _prune_static(site)
    missing = _copy_vendor(site, vendor)
    for page in sorted(site.rglob("*.html")):
        up = Path(os.path.relpath(site, page.parent)).as_posix()
        html = _stable_ids(page.read_text("utf-8"))
        html = TAG.sub(partial(_local_tag, up=up, missing=missing), html)
        html = GX_IMAGES.sub(f'="{up}/static/images/', GX_ASSET.sub(f"{up}/{LOGO}", html))
        page.write_text(html, encoding="utf-8")
    left = remote_urls(site)
    if left:
        log.warning("Data Docs still load %d remote files, e.g. %s", len(left), left[0])
    return left


def remote_urls(site: Path) -> list[str]:
    """Every http(s) URL a page of ``site`` loads (scripts, styles, images, CSS ``url()``)."""
    found = set()
    for page in site.rglob("*.html"):
        for match in REMOTE.finditer(page.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return sorted(found)


def _drop_load_times(context: Any) -> None:
    """Remove the batch load time GX stamps into each stored result (shown on its page)."""
    store = context.validation_results_store
    for key in store.list_keys():
        result = store.get(key)
        if (result.meta.get("batch_markers") or {}).pop("ge_load_time", None) is not None:
            store.set(key, result)


def _stable_ids(html: str) -> str:
    """Random element ids (GX makes a uuid4 per collapsible block) numbered per page instead."""
    seen: dict[str, str] = {}
    return UUID.sub(lambda m: seen.setdefault(m.group(0), f"n{len(seen)}"), html)


def _local_tag(match: re.Match[str], *, up: str, missing: set[str]) -> str:
    tag, before, attr, url, after = match.groups()
    vendored = CDN.get(url)
    if vendored is None or vendored in missing:
        return match.group(0)
    attrs = SRI.sub("", f'{before} {attr}="{up}/{site_path(vendored)}"{after}')
    return f"<{tag}{attrs}>"


def _copy_vendor(site: Path, vendor: Path) -> set[str]:
    """Copy :data:`VENDORED` into the site; returns the files missing from ``vendor``."""
    missing = set()
    for vendored in VENDORED:
        if not (vendor / vendored).is_file():
            missing.add(vendored)
            continue
        dest = site / site_path(vendored)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(vendor / vendored, dest)
    if missing:
        log.warning(
            "%s: %d files missing (run `python scripts/vendor_npm.py`); Data Docs will load them from CDNs",
            vendor,
            len(missing),
        )
    return missing


def _prune_static(site: Path) -> None:
    static = site / "static"
    keep = {site / rel for rel in KEEP_STATIC}
    for path in sorted(static.rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
