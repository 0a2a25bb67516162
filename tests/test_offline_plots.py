"""`dvc plots show` writes a self-contained page: Vega inlined from vendor/, no CDN URL.

The real ``dvc plots show`` runs in a throwaway DVC repo holding the repo's own
``.dvc/config``, template and top-level ``plots`` definitions, on small curve files.
"""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dvc_plots_template
import pytest
import vendor_npm
import yaml

REPO = Path(__file__).resolve().parents[1]

CURVES = {
    "reports/train/steps.csv": "step,loss\n10,15.5\n20,12.25\n30,9.75\n",
    "reports/train/eval.csv": (
        "step,target,rank1,mAP\n200,a-syn,0.25,0.125\n200,b-syn,0.5,0.25\n400,a-syn,0.5,0.375\n400,b-syn,0.75,0.5\n"
    ),
    "reports/train/relabel.csv": ("step,images_filtered,images_relabeled,ids_merged,purity\n300,5636,0,0,0.965\n"),
}
DVC = str(Path(sys.executable).with_name("dvc"))  # the venv's, whatever PATH says
REMOTE_RESOURCE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)


def test_vendored_files_match_their_sums():
    assert vendor_npm.check() == []


def test_check_reports_altered_and_unlisted_files(tmp_path: Path):
    vendor = tmp_path / "vendor"
    shutil.copytree(REPO / "vendor", vendor)
    js = vendor / "vega-embed@6.18.2/vega-embed.min.js"
    js.write_text(js.read_text() + "//")
    (vendor / "vega@5.20.2/extra.js").write_text("")
    problems = vendor_npm.check(vendor)
    assert any("vega-embed.min.js: sha256 differs" in p for p in problems)
    assert any("vega@5.20.2/extra.js: not listed" in p for p in problems)


def test_two_files_with_one_base_name_are_refused():
    with pytest.raises(ValueError, match="both be stored"):
        vendor_npm.stored_files({"x@1.0.0": ["build/x.js", "dist/x.js"]})


def test_committed_template_is_built_from_the_vendored_files():
    text = dvc_plots_template.TEMPLATE.read_text(encoding="utf-8")
    assert text == dvc_plots_template.render()
    assert "{plot_divs}" in text and "{scripts}" not in text  # {scripts}: dvc-render's CDN tags


def test_vendored_vega_majors_match_dvc_render():
    """The specs dvc-render writes target its own Vega versions: ours must share the majors."""
    from dvc_render.vega import VegaRenderer

    theirs = dict(re.findall(r"npm/([a-z-]+)@(\d+)\.", VegaRenderer.SCRIPTS))
    ours = {spec.split("@")[0]: spec.split("@")[1].split(".")[0] for spec in vendor_npm.PACKAGES}
    assert theirs == {name: ours[name] for name in theirs}


def _dvc_repo(root: Path) -> None:
    """A DVC repo with the project's plots config, template and definitions, on CURVES."""
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=root, check=True)
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    template = config["plots"]["html_template"]  # relative to .dvc/, as DVC resolves it
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    target = (root / ".dvc" / template).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy((REPO / ".dvc" / template).resolve(), target)
    shutil.copytree(REPO / ".dvc/plots", root / ".dvc/plots")  # the project's Vega templates
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}))
    for rel, text in CURVES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_dvc_plots_show_page_is_self_contained(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _dvc_repo(repo)
    out = tmp_path / "elsewhere"  # -o: the page must not depend on where it is written
    subprocess.run([DVC, "plots", "show", "-o", str(out)], cwd=repo, check=True)
    page = (out / "index.html").read_text(encoding="utf-8")

    from dvc_render.vega import VegaRenderer

    assert REMOTE_RESOURCE.search(VegaRenderer.SCRIPTS)  # the default page would fail here
    assert not REMOTE_RESOURCE.search(page)
    assert "cdn.jsdelivr" not in page
    for rel in dvc_plots_template.LIBRARIES:  # each library inlined whole
        assert (REPO / "vendor" / rel).read_text(encoding="utf-8") in page
    plot_ids = [next(iter(p)) for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]]
    for plot_id in plot_ids:
        assert f"vegaEmbed('#{plot_id}', spec)" in page
    assert '"loss": "12.25"' in page  # the curve data travel in the specs
    assert '"purity": "0.965"' in page
    # eval.csv holds a row per target and step: its plots draw one line per target
    for plot_id in ("target_map", "target_rank1"):
        assert plot_id in plot_ids
    assert page.count('"color": {"field": "target"') == 2
