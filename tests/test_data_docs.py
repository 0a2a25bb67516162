"""GX Data Docs made to render offline (flows/data_docs.py), on hand-written pages: CDN tags
become local copies, GX's own assets are kept or dropped, and every vendored file the pages
use is one that scripts/vendor_npm.py pins by sha256."""

from __future__ import annotations

from pathlib import Path

import vendor_npm

from flows import data_docs

S3 = data_docs.GX_ASSETS
PAGE = f"""<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" \
integrity="sha384-abc" crossorigin="anonymous"></script>
<link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">
<link rel="shortcut icon" href="../../static/images/favicon.ico" type="image/x-icon"/>
<style>.x {{ background: url('{S3}full_logo_dark.png') }}</style>
</head><body>
<img src="{S3}logo-long.png?d=20260101T000000Z"/>
<div id="collapse-body-0f1e2d3c-4b5a-4697-8877-665544332211"></div>
<a href="#collapse-body-0f1e2d3c-4b5a-4697-8877-665544332211">more</a>
<a href="https://greatexpectations.io">a link, not a load</a>
</body></html>
"""


def site_with(tmp_path: Path, page: str) -> tuple[Path, Path]:
    site = tmp_path / "data_docs"
    for name in ("favicon.ico", "logo-long.png", "glossary_scroller.gif"):
        (site / "static" / "images").mkdir(parents=True, exist_ok=True)
        (site / "static" / "images" / name).write_bytes(b"img")
    (site / "static" / "fonts").mkdir()
    (site / "static" / "fonts" / "big.otf").write_bytes(b"font")
    deep = site / "validations" / "a" / "b" / "page.html"
    deep.parent.mkdir(parents=True)
    deep.write_text(page)
    return site, deep


def test_cdn_tags_become_local_copies_and_gx_assets_local_images(tmp_path):
    site, page = site_with(tmp_path, PAGE)
    assert data_docs.remote_urls(site)  # before: CDN scripts, styles, the S3 logo
    assert data_docs.make_offline(site) == []
    html = page.read_text()
    assert '<script src="../../../static/vendor/jquery@3.7.1/jquery.min.js"></script>' in html
    assert (
        '<script src="../../../static/vendor/bootstrap@4.3.1/bootstrap.min.js"></script>' in html
    )  # the SRI and crossorigin attributes went with the CDN URL
    assert "integrity" not in html and "crossorigin" not in html
    assert 'href="../../../static/vendor/fontawesome-free@6.6.0/css/all.min.css"' in html
    assert 'src="../../../static/images/logo-long.png"' in html
    assert "url('../../../static/images/logo-long.png')" in html
    assert 'href="../../../static/images/favicon.ico"' in html  # GX's one-too-few ../ fixed
    assert 'id="collapse-body-n0"' in html and 'href="#collapse-body-n0"' in html
    assert 'href="https://greatexpectations.io"' in html  # plain links stay
    assert data_docs.remote_urls(site) == []
    vendored = site / "static" / "vendor"
    assert (vendored / "fontawesome-free@6.6.0" / "webfonts" / "fa-solid-900.woff2").is_file()
    assert (vendored / "jquery@3.7.1" / "jquery.min.js").read_bytes() == (
        data_docs.VENDOR / "jquery@3.7.1" / "jquery.min.js"
    ).read_bytes()
    kept = {p.relative_to(site).as_posix() for p in (site / "static").rglob("*") if p.is_file()}
    assert {p for p in kept if not p.startswith("static/vendor/")} == set(data_docs.KEEP_STATIC)


def test_a_missing_vendor_file_keeps_its_cdn_link_and_is_reported(tmp_path):
    site, page = site_with(tmp_path, PAGE)
    left = data_docs.make_offline(site, vendor=tmp_path / "no-vendor")
    assert "https://code.jquery.com/jquery-3.7.1.min.js" in left
    assert 'src="https://code.jquery.com/jquery-3.7.1.min.js"' in page.read_text()


def test_every_file_the_pages_use_is_pinned_by_vendor_npm():
    pinned = vendor_npm.stored_files(vendor_npm.PACKAGES)
    assert set(data_docs.VENDORED) <= set(pinned)
    assert set(data_docs.CDN.values()) <= set(data_docs.VENDORED)
    sums = vendor_npm.read_sums(vendor_npm.VENDOR)
    for rel in data_docs.VENDORED:
        assert vendor_npm.sha256(data_docs.VENDOR / rel) == sums[rel], rel
