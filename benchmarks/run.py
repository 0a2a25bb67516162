"""The project's benchmark suite: ``python benchmarks/run.py [--quick] [--only NAME ...]``.

Each registered benchmark (see ``common.MODULES``; one module per topic, e.g.
``bench_eval.py``) runs in a fresh subprocess, so its peak RSS is its own. Results are
merged into ``benchmarks/results.json`` as ``{name: {seconds, peak_rss_gib,
baseline_seconds, ratio_vs_baseline, machine, params}}`` and ``results.md`` (a Markdown
table of every entry, embedded in ``docs/benchmarks.md``) is regenerated from it.
``--quick`` runs smaller sizes (tens of seconds in all) and writes
``results_quick.{json,md}`` instead, so quick numbers never overwrite full ones.
``--list`` shows the registered names. A benchmark that cannot run on this machine
(``train_step_gpu`` without CUDA) is skipped and leaves no entry. A full run also refreshes
the copy of the table in ``docs/benchmarks.md`` (between the ``<!-- benchmarks:begin -->``
/ ``<!-- benchmarks:end -->`` markers).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # benchmark modules, then the dynamix package

from common import (  # noqa: E402
    BENCHMARKS,
    MODULES,
    SkipBenchmark,
    machine_info,
    wait_for_quiet,
)

from dynamix.io import atomic_path, write_json_atomic  # noqa: E402
from dynamix.offline import apply_offline_env  # noqa: E402

MARKER = "BENCHMARK-RESULT "
SKIP_MARKER = "BENCHMARK-SKIPPED "
DOC = HERE.parent / "docs" / "benchmarks.md"  # the docs page that shows the table
DOC_BEGIN, DOC_END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def load_benchmarks() -> None:
    for name in MODULES:
        importlib.import_module(name)


def run_child(name: str, quick: bool) -> None:
    """Inside the subprocess: run one benchmark, print its result as one marked line."""
    load_benchmarks()
    try:
        measurement = BENCHMARKS[name].fn(quick)
    except SkipBenchmark as exc:
        print(SKIP_MARKER + str(exc), flush=True)
        return
    print(MARKER + json.dumps(asdict(measurement)), flush=True)


def run_in_subprocess(name: str, quick: bool, timeout: float) -> dict[str, Any] | None:
    """The child's Measurement as a dict, or None when the benchmark skipped itself."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    cmd += ["--quick"] if quick else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(proc.stderr)
    skipped = [ln for ln in proc.stdout.splitlines() if ln.startswith(SKIP_MARKER)]
    if proc.returncode == 0 and skipped:
        print(f"  {name}: skipped ({skipped[-1][len(SKIP_MARKER) :]})")
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark {name} failed (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(lines[-1][len(MARKER) :])
    print(f"  {name}: {result['seconds']:.3f} s (wall {time.perf_counter() - start:.0f} s)")
    return result


def entry(result: dict[str, Any], machine: dict[str, Any], quick: bool, busy: float) -> dict[str, Any]:
    base = result["baseline_seconds"]
    params = dict(
        result["params"],
        quick=quick,
        measured_at=time.strftime("%Y-%m-%d %H:%M"),
        other_cpu_load_percent_at_start=busy,
    )
    return {
        "seconds": round(result["seconds"], 4),
        "peak_rss_gib": round(result["peak_rss_gib"], 3),
        "baseline_seconds": None if base is None else round(base, 4),
        "ratio_vs_baseline": None if base is None else round(base / result["seconds"], 2),
        "machine": machine,
        "params": params,
    }


def _sizes(params: dict[str, Any]) -> str:
    if "sizes" in params:
        return str(params["sizes"])
    keys = ("num_query", "num_gallery", "dim")
    return " × ".join(f"{params[k]:,}" for k in keys if k in params)


def render_markdown(results: dict[str, Any], json_name: str = "results.json") -> str:
    """A Markdown table of every entry, plus the machines the numbers come from."""
    lines = [
        "| benchmark | sizes | seconds | baseline s | speed-up | peak RSS GiB | machine |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    machines: list[dict[str, Any]] = []
    for name in sorted(results):
        r = results[name]
        m = {k: v for k, v in r["machine"].items() if k != "load_avg_1m"}
        if m not in machines:
            machines.append(m)
        base = "–" if r["baseline_seconds"] is None else f"{r['baseline_seconds']:.3f}"
        if r["params"].get("baseline_extrapolated"):
            base += "*"
        ratio = "–" if r["ratio_vs_baseline"] is None else f"{r['ratio_vs_baseline']:.1f}×"
        lines.append(
            f"| `{name}` | {_sizes(r['params'])} | {r['seconds']:.3f} | {base} | {ratio} | "
            f"{r['peak_rss_gib']:.2f} | M{machines.index(m) + 1} |"
        )
    lines.append("")
    lines.append("\\* baseline extrapolated from a measured subset of the queries (see params).")
    lines.append("")
    for i, m in enumerate(machines, 1):
        lines.append(
            f"- M{i}: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
            f"torch {m['torch']} ({m['device']}, {m['torch_threads']} threads)"
        )
    lines.append("")
    lines.append(f"Generated by `python benchmarks/run.py`; raw numbers in `{json_name}`.")
    for name in sorted(results):
        rows = results[name]["params"].get("rows")
        if rows:
            title = results[name]["params"].get("rows_title", "")
            lines += ["", f"`{name}`{': ' + title if title else ''}", "", *_row_table(rows)]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _row_table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of ``rows`` (dicts); label columns (only text) first, then the rest, each
    in first-seen key order: ``results.json`` is written with sorted keys, so without this a
    re-render puts a row's name wherever the alphabet does."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    values = {k: [row[k] for row in rows if row.get(k) is not None] for k in keys}
    labels = [k for k in keys if values[k] and all(isinstance(v, str) for v in values[k])]
    keys = labels + [k for k in keys if k not in labels]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
    return lines


def update_doc(markdown: str, doc: Path = DOC) -> bool:
    """Replace the doc's block between the benchmark markers; False if it has none.

    Only the marked block changes, so the prose around the table (targets, notes) is kept.
    """
    if not doc.exists():
        return False
    text = doc.read_text()
    begin, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if begin < 0 or end < begin:
        return False
    new = text[: begin + len(DOC_BEGIN)] + "\n" + markdown + text[end:]
    if new != text:
        with atomic_path(doc) as tmp:
            tmp.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()  # children inherit it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (tens of seconds)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run just these benchmarks")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    parser.add_argument("--results", type=Path, help="JSON to merge into (default by mode)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for an idle CPU per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.quick)
        return 0
    load_benchmarks()
    if args.list:
        for b in BENCHMARKS.values():
            print(f"{b.name}: {b.description}")
        return 0
    names = args.only or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    out = args.results or HERE / ("results_quick.json" if args.quick else "results.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    machine = machine_info()
    for name in names:
        busy = wait_for_quiet(max_busy_percent=15, max_wait_s=args.max_wait)
        mode = " (quick)" if args.quick else ""
        print(f"running {name}{mode}; other CPU load {busy:.0f}%", flush=True)
        result = run_in_subprocess(name, args.quick, args.timeout)
        if result is None:
            continue
        results[name] = entry(result, machine, args.quick, busy)
        write_json_atomic(out, results)  # keep finished entries even if a later one fails
    markdown = render_markdown(results, out.name)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if not args.quick and args.results is None and update_doc(markdown):
        print(f"updated the benchmark table in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
