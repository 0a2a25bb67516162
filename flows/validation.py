"""The data-validation gate: Great Expectations suites over the manifests.

The only module that imports ``great_expectations`` (the ``dynamix`` core never does).
Group rules (an identity seen by two cameras, a query with a cross-camera match...) are
first turned into per-row columns by :mod:`dynamix.checks`; every rule is then a
named GX expectation, so a failure carries its unexpected count and example paths.

Per dataset, one suite runs on the whole manifest and one row-count suite per split on
that split's rows (the expected counts from params, so a half-copied dataset fails): the
synthetic preset's ``expected_counts``, and for a real release its
``published_counts`` (images and ids per split, batch ``published/<split>``). The
full GX results go to ``<reports_dir>/<dataset>.json``, GX's own HTML report of them to
``<reports_dir>/data_docs/index.html`` (:mod:`flows.data_docs`); a compact summary (one
entry per failing expectation) to ``summary_path``.

Only a current manifest set is judged (:func:`dynamix.prepare.check_manifests`): one built
for other params is refused before any image is opened; a dataset whose root's files
changed since ``prepare`` fails the gate with its own entry (beside whatever the suites
find), so training never runs on manifests the data no longer matches. The summary records
the sha256 of every manifest it judged (``manifests``): ``dynamix train`` trusts a pass
only for those bytes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.validation_definition import ValidationDefinition
from great_expectations.data_context.types.base import ProgressBarsConfig

import dynamix.checks
from dynamix.checks import (
    derive_columns,
    expected_release_counts,
    read_manifest_unchecked,
    release_key,
    synthetic_dataset,
)
from dynamix.config import DatasetSpec, Params
from dynamix.data.manifest import MULTI_CAMERA, SINGLE_CAMERA, SPLITS, manifest_digests, manifest_path
from dynamix.io import write_json_atomic
from dynamix.prepare import check_manifests
from flows import data_docs, gate_record

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "SUMMARY", "unexpected_index_column_names": ["path"]}
MAX_EXAMPLES = 3
#: The code that decides the gate's answer: a change to any of it invalidates a recorded pass
#: (and rebuilds the Data Docs).
GATE_CODE = (Path(dynamix.checks.__file__), Path(__file__), Path(data_docs.__file__))


def _rule(text: str) -> dict[str, str]:
    return {"rule": text}


def manifest_expectations(name: str, fmt: str, kind: str, params: Params) -> list[Any]:
    """Every row-level rule for one dataset's whole manifest (with derived columns)."""
    v = params.validation
    ex: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, meta=_rule(f"{c} is set"))
        for c in ("path", "pid", "camid", "domain", "split", "source_kind")
    ]
    ex += [
        gxe.ExpectColumnValuesToBeOfType(column=c, type_="int64", meta=_rule(f"{c} is int64")) for c in ("pid", "camid")
    ]
    ex += [
        gxe.ExpectColumnValuesToBeUnique(column="path", meta=_rule("one row per image")),
        gxe.ExpectColumnValuesToBeBetween(column="pid", min_value=0, meta=_rule("pid >= 0")),
        gxe.ExpectColumnValuesToBeBetween(
            column="camid",
            min_value=0,
            max_value=v.camid_max.get(fmt),
            meta=_rule(f"camid in [0, {v.camid_max.get(fmt, 'any')}]"),
        ),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeInSet(column="domain", value_set=[name]),
        gxe.ExpectColumnValuesToBeInSet(column="source_kind", value_set=[kind]),
        gxe.ExpectColumnValuesToBeInSet(column="file_exists", value_set=[True], meta=_rule("image file exists")),
        gxe.ExpectColumnValuesToBeBetween(
            column="file_bytes",
            min_value=v.min_file_bytes,
            meta=_rule(f"image file has >= {v.min_file_bytes} bytes"),
        ),
        gxe.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True], meta=_rule("image decodes")),
        gxe.ExpectColumnValuesToBeBetween(
            column="height",
            min_value=v.min_height,
            max_value=v.max_height,
            meta=_rule("image height in bounds"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="width",
            min_value=v.min_width,
            max_value=v.max_width,
            meta=_rule("image width in bounds"),
        ),
    ]
    if kind == MULTI_CAMERA:
        min_cameras = v.min_train_cameras_by_format.get(fmt, v.min_train_cameras)  # per format: CUHK-SYSU has one
        ex += [
            gxe.ExpectColumnValuesToBeBetween(
                column="num_train_cameras_of_pid",
                min_value=min_cameras,
                meta=_rule(f"train identity seen by >= {min_cameras} cameras"),
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="query_has_cross_camera_match",
                value_set=[True],
                meta=_rule("query has a cross-camera match in the gallery"),
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="pid_in_train_and_test",
                value_set=[False],
                meta=_rule("no identity in both train and query/gallery"),
            ),
        ]
    else:
        ex += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta=_rule(f"{c} is set")) for c in ("video", "tracklet")]
        ex += [
            gxe.ExpectColumnValuesToBeBetween(column=c, max_value=1, meta=_rule(f"{c.split('_')[-1]} inside one video"))
            for c in ("videos_of_tracklet", "videos_of_pid")
        ]
    return ex


def expected_counts_for(params: Params) -> tuple[str, dict[str, dict[str, int]] | None]:
    """The preset key (world.json's, else ``data.preset``) and its expected counts."""
    preset = params.data.preset
    world = Path(params.data.raw_dir) / "world.json"
    if world.is_file():
        preset = json.loads(world.read_text()).get("preset", preset)
    return preset, params.validation.expected_counts.get(preset)


def published_expectations(spec: DatasetSpec, params: Params) -> tuple[str | None, dict[str, list[Any]]]:
    """``(key, {split: expectations})``: the published size of ``spec``'s release, per split.

    Empty for a dataset the synthetic world wrote, a format/variant with no
    ``validation.published_counts`` entry, and an entry with ``check: false``.
    """
    key = release_key(spec.format, spec.options)
    counts = params.validation.published_counts.get(key)
    if counts is None or not counts.check or synthetic_dataset(spec.root):
        return None, {}
    out: dict[str, list[Any]] = {}
    for split, want in expected_release_counts(counts, spec.options).items():
        where = f"published_counts.{key}"
        exps: list[Any] = [
            gxe.ExpectTableRowCountToEqual(
                value=want["images"], meta=_rule(f"{split} has the {want['images']} images of the release ({where})")
            )
        ]
        if want["ids"] is not None:
            exps.append(
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column="pid",
                    min_value=want["ids"],
                    max_value=want["ids"],
                    meta=_rule(f"{split} has the {want['ids']} ids of the release ({where})"),
                )
            )
        out[split] = exps
    return key, out


class _Runner:
    """One ephemeral GX context; runs a list of expectations on a dataframe.

    The context keeps every suite and result, which :func:`flows.data_docs.build` renders.
    Suite names use dots (``market-syn.count.train``): GX files them as folders.
    """

    def __init__(self) -> None:
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self.context.data_sources.add_pandas("manifests").add_dataframe_asset("rows")
        self.batch = asset.add_batch_definition_whole_dataframe("whole")

    def run(self, name: str, expectations: list[Any], df: pd.DataFrame) -> Any:
        suite = self.context.suites.add(gx.ExpectationSuite(name=name))
        for expectation in expectations:
            suite.add_expectation(expectation)
        vd = ValidationDefinition(name=name, data=self.batch, suite=suite)
        vd = self.context.validation_definitions.add(vd)
        return vd.run(
            batch_parameters={"dataframe": df},
            result_format=RESULT_FORMAT,
            run_id=data_docs.RUN_ID,
        )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


VOLATILE_KEYS = frozenset({"ge_load_time", "run_time", "validation_time", "validation_id", "id"})


def stable(value: Any) -> Any:
    """A GX result without run times and random ids: same data, same bytes.

    DVC hashes the report folder into dvc.lock; without this every rerun of an unchanged
    pipeline would change the lock file.
    """
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def _failures(dataset: str, batch: str, result: Any) -> list[dict[str, Any]]:
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg, res = r.expectation_config, dict(r.result or {})
        kwargs = dict(cfg.kwargs)
        examples = [row.get("path") for row in res.get("partial_unexpected_index_list") or []]
        failure = {
            "dataset": dataset,
            "batch": batch,
            "expectation": cfg.type,
            "rule": (cfg.meta or {}).get("rule", cfg.type),
            "column": kwargs.get("column"),
            "unexpected_count": res.get("unexpected_count"),
            "element_count": res.get("element_count"),
            "examples": examples[:MAX_EXAMPLES],
        }
        if "observed_value" in res:
            failure["observed_value"] = res["observed_value"]
            failure["expected_value"] = kwargs.get("value", kwargs.get("type_"))
            if failure["expected_value"] is None and kwargs.get("min_value") == kwargs.get("max_value"):
                failure["expected_value"] = kwargs.get("min_value")  # an exact count stated as a range
        if r.exception_info and r.exception_info.get("raised_exception"):
            failure["exception"] = r.exception_info.get("exception_message")
        out.append(_plain(failure))
    return out


def validate_data(params: Params, reuse: bool = False) -> dict[str, Any]:
    """Run every suite on every manifest; write the GX results and the summary JSON.

    Returns the summary: ``success``, per-dataset statistics and ``failures`` (one entry
    per failing expectation, with up to three example paths). Every pass is recorded
    (:mod:`flows.gate_record`); with ``reuse``, a run on exactly the inputs of the last
    pass returns that summary (``reused_from``: when it ran) without opening an image, and
    writes it to ``summary_path`` again: that file is always the last gate result. Raises
    :class:`~dynamix.errors.ManifestError` on manifests built for other params.
    """
    stale = check_manifests(params)  # other params: refused here, one line
    key = gate_key(params)
    if reuse and not stale:
        summary = gate_record.recorded_pass(params, key)
        if summary is not None:  # the caller reports the reuse (the flow's task logs it)
            summary["manifests"] = manifest_digests(params)  # the same bytes: the key covers them
            write_json_atomic(params.validation.summary_path, summary)
            return summary
    summary = _validate(params, stale)
    gate_record.record_pass(params, key, summary)
    return summary


def gate_key(params: Params) -> str:
    """The fingerprint a recorded pass must match: the gate's inputs and :data:`GATE_CODE`."""
    return gate_record.fingerprint(params, GATE_CODE)


def stale_failure(dataset: str, why: str) -> dict[str, Any]:
    """The gate's entry for a manifest its root's files no longer match (``why``: the fix)."""
    return {
        "dataset": dataset,
        "batch": "manifest",
        "expectation": "manifest_matches_its_root",
        "rule": "manifest built from the files now under its root",
        "column": None,
        "unexpected_count": None,
        "element_count": None,
        "examples": [],
        "message": why,
    }


def _validate(params: Params, stale: dict[str, str]) -> dict[str, Any]:
    v = params.validation
    preset, counts = expected_counts_for(params)
    digests = manifest_digests(params)  # before reading: a rebuild meanwhile cannot pass as judged
    runner = _Runner()
    roles = [(s, MULTI_CAMERA) for s in params.data.sources]
    roles += [(s, SINGLE_CAMERA) for s in params.data.single_camera]
    roles += [(s, MULTI_CAMERA) for s in params.data.targets]
    summary: dict[str, Any] = {"counts_preset": preset if counts else None, "datasets": {}}
    failures: list[dict[str, Any]] = []
    for spec, kind in roles:
        df = derive_columns(
            read_manifest_unchecked(manifest_path(params, spec.name)),
            fmt=spec.format,
            decode_sample=v.decode_sample,
            decode_limit=v.decode_limit,
            seed=v.seed,
            renumbered_test_pids=spec.format in v.renumbered_test_formats,
        )
        exps = manifest_expectations(spec.name, spec.format, kind, params)
        results = {"manifest": runner.run(f"{spec.name}.manifest", exps, df)}
        for split, n in ((counts or {}).get(spec.name) or {}).items():
            rows = df[(df["split"] == split).fillna(False)]
            exp = gxe.ExpectTableRowCountToEqual(value=int(n), meta=_rule(f"{split} has {n} images"))
            results[f"count/{split}"] = runner.run(f"{spec.name}.count.{split}", [exp], rows)
        release, published = published_expectations(spec, params)
        for split, exps in published.items():
            rows = df[(df["split"] == split).fillna(False)]
            results[f"published/{split}"] = runner.run(f"{spec.name}.published.{split}", exps, rows)
        report = Path(v.reports_dir) / f"{spec.name}.json"
        write_json_atomic(report, {k: stable(r.to_json_dict()) for k, r in results.items()})
        found = [f for batch, r in results.items() for f in _failures(spec.name, batch, r)]
        found += [stale_failure(spec.name, stale[spec.name])] if spec.name in stale else []
        failures += found
        summary["datasets"][spec.name] = {
            "success": not found,
            "rows": len(df),
            "decoded": int(df["decodes"].notna().sum()),
            "expectations": sum(len(r.results) for r in results.values()) + (spec.name in stale),
            "failed": len(found),
            "published_counts": release,
            "report": str(report),
        }
        log.info("validated %s: %d rows, %d failing expectations", spec.name, len(df), len(found))
    t0 = time.perf_counter()
    summary["data_docs"] = str(data_docs.build(runner.context, v.reports_dir))
    log.info("GX Data Docs: %s (%.2f s)", summary["data_docs"], time.perf_counter() - t0)
    summary["success"] = not failures
    summary["failures"] = failures
    summary["manifests"] = digests
    write_json_atomic(v.summary_path, summary)
    return summary


def failure_line(f: dict[str, Any]) -> str:
    """``FAIL expect_... [rule] dataset/batch: 2 of 46 rows (column), e.g. a.jpg, b.jpg``."""
    where = f"{f['dataset']}" + ("" if f["batch"] == "manifest" else f"/{f['batch']}")
    head = f"FAIL {f['expectation']} [{f['rule']}] {where}"
    if f.get("message"):
        return f"{head}: {f['message']}"
    if f.get("unexpected_count") is not None:
        line = f"{head}: {f['unexpected_count']} of {f['element_count']} rows ({f['column']})"
        if f["examples"]:
            line += ", e.g. " + ", ".join(str(p) for p in f["examples"])
        return line
    if "exception" in f:
        return f"{head}: error {f['exception']}"
    return f"{head}: observed {f.get('observed_value')}, expected {f.get('expected_value')}"


def format_summary(summary: dict[str, Any], *, with_failures: bool = True) -> str:
    """Readable multi-line summary: one line per dataset, then one line per failure."""
    total = sum(d["expectations"] for d in summary["datasets"].values())
    status = "passed" if summary["success"] else "FAILED"
    reused = summary.get("reused_from")
    lines = [
        f"data validation {status}: {len(summary['failures'])} of {total} expectations failed "
        f"over {len(summary['datasets'])} datasets (expected counts: "
        f"{summary['counts_preset'] or 'none for this preset, skipped'})"
        + (f"; reused: inputs unchanged since {reused}" if reused else "")
    ]
    for name, d in summary["datasets"].items():
        mark = "ok  " if d["success"] else "FAIL"
        release = f", published counts of {d['published_counts']}" if d.get("published_counts") else ""
        lines.append(
            f"  {mark} {name}: {d['rows']} rows, {d['decoded']} decoded{release}, "
            f"{d['failed']}/{d['expectations']} failed -> {d['report']}"
        )
    if summary.get("data_docs"):
        lines.append(f"  GX Data Docs: {summary['data_docs']}")
    if with_failures:
        lines += [failure_line(f) for f in summary["failures"]]
    return "\n".join(lines)


def format_markdown(summary: dict[str, Any], docs_link: str | None = None) -> str:
    """The summary as a Markdown table, for the Prefect artifact.

    ``docs_link``: where the Data Docs can be opened besides their file (the MLflow run's
    copy, :func:`flows.tracking.log_validation_results`).
    """
    head = format_summary(summary).splitlines()[0]
    rows = ["| dataset | rows | decoded | failed | report |", "|---|---|---|---|---|"]
    for name, d in summary["datasets"].items():
        rows.append(f"| {name} | {d['rows']} | {d['decoded']} | {d['failed']}/{d['expectations']} | `{d['report']}` |")
    fails = [f"- `{failure_line(f)}`" for f in summary["failures"]]
    docs = []
    if summary.get("data_docs"):
        line = f"GX Data Docs (every expectation and result): `{summary['data_docs']}`"
        docs = [line + (f"; in MLflow: {docs_link}" if docs_link else ""), ""]
    return "\n".join([f"**{head}**", "", *rows, "", *docs, *fails])
