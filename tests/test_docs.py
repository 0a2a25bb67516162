"""The README stays a front door and the docs stay connected.

The README is read in five minutes (at most 200 lines); everything else lives in ``docs/``,
one page per topic. Pages are moved and renamed, so every relative link in the README and
in ``docs/*.md`` must point at a file that exists and, with ``#anchor``, at a heading that
exists there (GitHub's anchor rules): a broken link is caught here, not by a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text a reader sees as prose: code blocks, inline code and comments removed."""
    return INLINE_CODE.sub("", FENCE.sub("", COMMENT.sub("", text)))


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").lower().strip()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file defines; repeated headings get -1, -2 as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        slug = github_anchor(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    """Link targets that are not URLs (http, https, mailto) in a page's prose."""
    targets = LINK.findall(_prose(path.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_github_anchor_follows_githubs_rules():
    assert github_anchor("The tools' UIs") == "the-tools-uis"
    assert github_anchor("Multi-GPU training (DDP)") == "multi-gpu-training-ddp"
    assert github_anchor("Checkpoints and snapshots: `dynamix s3`") == ("checkpoints-and-snapshots-dynamix-s3")


def test_link_checker_finds_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n## Top\n\nsee [a](other.md#x), [b](https://example.com), ![c](img.png)\n"
        "`[not](code.md)`\n\n```\n[not](fenced.md)\n```\n<!-- [not](comment.md) -->\n"
    )
    assert relative_links(page) == ["other.md#x", "img.png"]
    assert anchors(page) == {"top", "top-1"}


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_readme_starts_with_the_two_commands():
    """The first code block is the two commands, demo first, exactly as CI and users type."""
    first_block = FENCE.search(README.read_text())
    assert first_block is not None
    commands = [
        line.strip()
        for line in first_block.group(0).splitlines()[1:-1]
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands == ["bash scripts/run.sh demo", "bash scripts/run.sh test"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.is_relative_to(REPO) or not dest.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_docs_index_lists_every_page():
    """docs/README.md is the index: a new page must be added there to be found."""
    index = DOCS / "README.md"
    linked = {(DOCS / t.partition("#")[0]).resolve() for t in relative_links(index)}
    missing = [p.name for p in DOCS.glob("*.md") if p != index and p.resolve() not in linked]
    assert not missing, f"docs/README.md does not link {missing}"
