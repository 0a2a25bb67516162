"""The tools' own pages in headless Chromium with the network off, as a person would see them.

Three pages the project points people at: the data gate's GX Data Docs (the expectations
listed), ``dvc plots show`` (the curves drawn) and an MLflow run page (the run's metrics).
Each must render from local files or the loopback server alone: every request the page
makes is routed, anything that is not ``file:``, ``data:``, ``blob:`` or loopback is
aborted, and a test fails if a page even tried (a CDN reference is a blank page offline).

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it where it
can) and Playwright's Python package (the ``dev`` extra), pointed at that browser rather
than at a downloaded one: the module is skipped, with the reason, when either is missing.
``DYNAMIX_CHROMIUM`` names another Chromium executable; ``DYNAMIX_SCREENSHOTS`` a folder
where each test leaves a screenshot of its page.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra installs it)")
CHROMIUM = os.environ.get("DYNAMIX_CHROMIUM") or shutil.which("chromium")
if not CHROMIUM or not Path(CHROMIUM).is_file():
    pytest.skip(
        "no chromium executable (Debian: apt-get install chromium; or set DYNAMIX_CHROMIUM)",
        allow_module_level=True,
    )

from test_offline_plots import DVC, _dvc_repo  # noqa: E402  (the same throwaway DVC repo)

from dynamix.config import load_params  # noqa: E402
from dynamix.prepare import prepare_manifests  # noqa: E402
from flows import data_docs  # noqa: E402
from flows.validation import format_summary, validate_data  # noqa: E402

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
LOCAL_SCHEMES = ("file", "data", "blob", "about")
MLFLOW = str(Path(sys.executable).with_name("mlflow"))  # the venv's, whatever PATH says
MLFLOW_START_S = 90  # the server takes ~30 s to come up on a loaded 2-core machine
RENDER_TIMEOUT_MS = 60_000

# Wraps window.vegaEmbed as the page defines it, so the test can reach each chart's Vega
# view: the page itself keeps no handle on them.
VEGA_HOOK = """
(() => {
  let wrapped;
  window.__embeds = [];
  Object.defineProperty(window, 'vegaEmbed', {
    configurable: true,
    get() { return wrapped; },
    set(embed) {
      wrapped = Object.assign((el, spec, opts) => {
        const result = embed(el, spec, opts);
        window.__embeds.push(result.then((r) => ({el, view: r.view})));
        return result;
      }, embed);
    },
  });
})();
"""
# Per chart: the data points its line marks place at finite coordinates (Vega's scenegraph)
# and the coloured pixels on its canvas (grid, axes and text are grey or black). A rejected
# vegaEmbed (a Vega error) rejects this promise, which fails the test with its message.
VEGA_DRAWN = """
async () => {
  const out = {};
  for (const {el, view} of await Promise.all(window.__embeds)) {
    let points = 0;
    const visit = (mark) => {
      if (mark.marktype === 'line' && mark.role === 'mark') {
        points += mark.items.filter((i) => Number.isFinite(i.x) && Number.isFinite(i.y)).length;
      }
      for (const item of mark.items || []) (item.items || []).forEach(visit);
    };
    visit(view.scenegraph().root);
    const canvas = document.querySelector(el + ' canvas.marks');
    let coloured = 0;
    if (canvas && canvas.width && canvas.height) {
      const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < px.length; i += 4) {
        const rgb = [px[i], px[i + 1], px[i + 2]];
        const spread = Math.max(...rgb) - Math.min(...rgb);
        if (px[i + 3] > 0 && spread > 60) coloured += 1;
      }
    }
    out[el.replace(/^#/, '')] = {points, coloured};
  }
  return out;
}
"""


def is_local(url: str) -> bool:
    """Whether a request stays on this machine: a local scheme or a loopback host."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Watched:
    """A page whose context aborts every non-local request, and what went wrong on it."""

    page: Any
    blocked: list[str] = field(default_factory=list)  # aborted: they would need the network
    failed: list[str] = field(default_factory=list)  # local requests that failed (missing file)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console errors

    def assert_clean(self, *, console: bool = True) -> None:
        """No request left the machine, none failed, no script error (console errors too,
        unless ``console`` is off: a server page may log an expected 404)."""
        assert self.blocked == [], f"the page tried to reach the network: {self.blocked}"
        assert self.failed == [], f"local requests failed: {self.failed}"
        errors = self.errors if console else [e for e in self.errors if e.startswith("page:")]
        assert errors == [], errors

    def goto(self, url: str) -> None:
        """Open ``url``; by its load event every script and style was asked for: none remote."""
        self.page.goto(url)
        assert self.blocked == [], f"the page tried to reach the network: {self.blocked}"

    def screenshot(self, name: str) -> None:
        """Leave ``<name>.png`` in ``$DYNAMIX_SCREENSHOTS`` when set (to look at the page)."""
        folder = os.environ.get("DYNAMIX_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module: the system one, not a Playwright download.

    ``--no-sandbox``: Chromium's sandbox refuses to start as root and in most containers.
    """
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def offline(browser) -> Iterator[Watched]:
    """A fresh page in its own context, the network cut off by routing every request."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    watched = Watched(page)

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if is_local(url):
            request_route.continue_()
        else:
            watched.blocked.append(url)
            request_route.abort("internetdisconnected")

    def failed(request: Any) -> None:
        if request.url not in watched.blocked:
            watched.failed.append(f"{request.url}: {request.failure}")

    context.route("**/*", route)
    page.on("requestfailed", failed)
    page.on("pageerror", lambda error: watched.errors.append(f"page: {error}"))
    page.on(
        "console",
        lambda msg: msg.type == "error" and watched.errors.append(f"console: {msg.text}"),
    )
    page.set_default_timeout(RENDER_TIMEOUT_MS)
    yield watched
    context.close()


# --- GX Data Docs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gate(tiny_world: Path, world_params, tmp_path_factory) -> dict[str, Any]:
    """The data gate run on the tiny world: its summary, whose reports dir holds the site."""
    params = load_params(world_params(tiny_world, tmp_path_factory.mktemp("gate")))
    prepare_manifests(params)
    summary = validate_data(params)
    assert summary["success"], format_summary(summary)
    summary["reports_dir"] = params.validation.reports_dir
    return summary


def gx_results(gate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every GX validation result of the gate, by suite name (from its JSON reports)."""
    out = {}
    for dataset in gate["datasets"]:
        report = json.loads((Path(gate["reports_dir"]) / f"{dataset}.json").read_text())
        out.update({result["suite_name"]: result for result in report.values()})
    return out


def test_data_docs_index_lists_every_validation(offline: Watched, gate: dict[str, Any]):
    """The index's results table is drawn by jQuery + bootstrap-table: blank if they fail."""
    suites = set(gx_results(gate))
    page = offline.page
    offline.goto(data_docs.index_path(gate["reports_dir"]).as_uri())
    table = "table.ge-index-page-validation-results-table"
    page.locator(f"{table} tbody tr").first.wait_for()
    info = page.locator(".pagination-info").first.inner_text()
    assert re.search(rf"of {len(suites)} rows", info), info
    options = page.locator(f"{table} thead select option").all_inner_texts()
    assert suites <= {o.strip() for o in options}  # the suite filter lists every suite
    first = page.locator(f"{table} tbody tr").first.inner_text()
    assert any(suite in first for suite in suites), first
    offline.screenshot("data_docs_index")
    offline.assert_clean()


def test_data_docs_validation_page_lists_the_expectations(offline: Watched, gate: dict[str, Any]):
    """One row per expectation the suite ran, under its column, with GX's own wording."""
    dataset = next(iter(gate["datasets"]))
    suite = f"{dataset}.manifest"
    result = gx_results(gate)[suite]
    site = data_docs.docs_dir(gate["reports_dir"])
    (page_path,) = site.glob(f"validations/{dataset}/manifest/**/*.html")
    page = offline.page
    offline.goto(page_path.as_uri())
    rows = page.locator("table:has(th:has-text('Observed Value')) tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(result["results"]) > 0
    text = " ".join(page.locator("body").inner_text().split())
    assert f"Expectation Suite: {suite}" in text
    assert f"Evaluated Expectations {len(result['results'])}" in text
    assert "values must never be null." in text  # expect_column_values_to_not_be_null
    per_column = Counter(r["expectation_config"]["kwargs"].get("column") for r in result["results"])
    per_column.pop(None, None)  # table-level expectations have a section of their own
    assert per_column
    for column, expected in per_column.items():
        heading = page.locator("h5", has_text=re.compile(rf"^\s*{re.escape(column)}\s*$"))
        section = page.locator("div.ge-section").filter(has=heading)
        assert section.locator("tbody tr").count() == expected, column  # a section per column
    offline.screenshot("data_docs_validation")
    offline.assert_clean()


# --- dvc plots show ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dvc_plots(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """``dvc plots show`` on small curves: the page, and the data points each plot has."""
    root = tmp_path_factory.mktemp("dvc-plots")
    repo, out = root / "repo", root / "out"
    repo.mkdir()
    _dvc_repo(repo)
    subprocess.run([DVC, "plots", "show", "-o", str(out)], cwd=repo, check=True, capture_output=True)
    points = {}
    for plot in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]:
        ((plot_id, spec),) = plot.items()
        points[plot_id] = sum(
            len([fields] if isinstance(fields, str) else fields)  # `y: file: col` or a list
            * len(list(csv.DictReader((repo / rel).read_text().splitlines())))
            for rel, fields in spec["y"].items()
        )
    return out / "index.html", points


def test_dvc_plots_page_draws_every_curve(offline: Watched, dvc_plots):
    """Vega, inlined in the page, draws each plot's points: DVC's own page loads it from a CDN."""
    page_path, points = dvc_plots
    page = offline.page
    page.add_init_script(VEGA_HOOK)
    offline.goto(page_path.as_uri())
    drawn = page.evaluate(VEGA_DRAWN)
    assert set(drawn) == set(points), drawn  # one chart per plot definition
    for plot_id, expected in points.items():
        assert expected > 0
        assert drawn[plot_id]["points"] >= expected, (plot_id, drawn[plot_id])
        assert drawn[plot_id]["coloured"] > 0, (plot_id, drawn[plot_id])  # ink on the canvas
    offline.screenshot("dvc_plots")
    offline.assert_clean()


# --- MLflow run page -----------------------------------------------------------------------

METRICS = {"best/mean_mAP": 0.4375, "market-syn/rank1": 0.625, "duke-syn/mAP": 0.3125}
LOSS = {10: 15.5, 20: 12.25, 30: 9.75}  # a curve: the page shows its last value
RUN_NAME = "browser-test seed=0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + MLFLOW_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow server not healthy after {MLFLOW_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory) -> Iterator[str]:
    """An MLflow server on loopback (sqlite store) holding one finished run: its page URL."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    url = f"http://127.0.0.1:{_free_port()}"
    log = root / "server.log"
    store = f"sqlite:///{root / 'mlflow.db'}"  # an absolute path: four slashes
    artifacts = (root / "artifacts").as_uri()
    port = url.rsplit(":", 1)[1]
    command = [MLFLOW, "server", "--backend-store-uri", store, "--default-artifact-root"]
    command += [artifacts, "--host", "127.0.0.1", "--port", port, "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    with log.open("w") as out:
        server = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, server, log)
        client = MlflowClient(tracking_uri=url)
        experiment = client.create_experiment("browser", artifact_location=artifacts)
        run = client.create_run(experiment, run_name=RUN_NAME)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 30) for k, v in METRICS.items()]
        metrics += [Metric("train/loss", v, now, step) for step, v in LOSS.items()]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
        yield f"{url}/#/experiments/{experiment}/runs/{run.info.run_id}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker: our process group
        server.wait(timeout=30)


def test_mlflow_run_page_shows_the_metrics(offline: Watched, mlflow_run: str):
    """The run's Overview tab: its name and a table row per metric, with the latest value."""
    page = offline.page
    offline.goto(mlflow_run)
    page.get_by_text("best/mean_mAP", exact=True).first.wait_for()
    page.get_by_text(RUN_NAME, exact=True).first.wait_for()
    text = " ".join(page.locator("body").inner_text().split())
    logged = {**METRICS, "train/loss": LOSS[max(LOSS)]}
    assert f"Metrics ({len(logged)})" in text, text
    for name, value in logged.items():
        assert f"{name} {value}" in text, (name, value, text)  # the value beside its name
    heading = page.get_by_text(f"Metrics ({len(logged)})", exact=True).first
    heading.evaluate("e => e.scrollIntoView({block: 'center'})")  # the table, for a screenshot
    offline.screenshot("mlflow_run")
    offline.assert_clean(console=False)  # the UI asks for /users/current: a logged 404
