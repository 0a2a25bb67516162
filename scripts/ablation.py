"""The paper's claim in miniature: every DynaMix module switched off in turn, over seeds.

    python scripts/ablation.py [--params params.yaml] [--seeds 0 1 2] [--variants ...]
                               [--set KEY=VALUE ...] [--out-dir runs/ablation]

Each (variant, seed) is one ``dynamix train`` run in ``<out-dir>/<variant>/seed<k>``; a run
whose ``metrics.json`` exists is reused, and a killed run resumes from its ``last.pt``, so
the script can be stopped and started again. At the end it writes
``reports/ablation.json`` (``{variant: {target: {rank1|mAP|mINP: {mean, std}}}, "purity":
{"before", "after"}}``) and ``reports/ablation.md`` (docs/ablation.md's table). Metrics are those
of the final step on the unseen targets, not the best step (no peeking at the targets).

Every finished (variant, seed) run is also logged to MLflow (the store of ``tracking.uri``,
experiment ``<tracking.experiment>-ablation``): its params, final per-target metrics and
``variant`` and ``seed`` tags, so the UI compares the variants side by side. Logging a run
again (``--report-only`` after more seeds finished) updates it instead of adding a twin;
``--no-mlflow`` skips this.

Seeds run on different machines (or runs/ lost since) combine exactly: ``--merge
reports/ablation.json`` folds an earlier report over other seeds into this one (means,
stds, per-seed mAPs and the relabeling precisions pooled as if all runs were here), and
``--write-tables README.md docs/ablation.md`` rewrites their tables between the
``ablation:begin/end`` (short) and ``ablation-full:begin/end`` (full) markers from the
report, so no table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynamix.config import Params, from_dict, load_params  # noqa: E402
from dynamix.errors import DynamixError  # noqa: E402
from dynamix.io import atomic_path, write_json_atomic  # noqa: E402

log = logging.getLogger("ablation")

VARIANTS: dict[str, list[str]] = {
    "multi_camera_only": ["train.sampler.single_camera=false", "train.relabel.enabled=false"],
    "no_relabeling": ["train.relabel.enabled=false"],
    "filter_only": ["train.relabel.reassign=false", "train.relabel.merge=false"],
    "no_reassign": ["train.relabel.reassign=false"],
    "no_merge": ["train.relabel.merge=false"],
    "no_centroids": ["train.loss.centroid=false"],
    "random_mixing": ["train.sampler.matching=false"],
    "dynamix": [],
}
LABELS = {
    "multi_camera_only": "multi-camera only",
    "no_relabeling": "+ single-camera data, no relabeling",
    "filter_only": "relabeling: filter only",
    "no_reassign": "relabeling without reassignment",
    "no_merge": "relabeling without PID merging",
    "no_centroids": "no centroid loss (per-batch losses only)",
    "random_mixing": "random mixing (no matched sampling)",
    "dynamix": "**full DynaMix**",
}
METRICS = ("rank1", "mAP", "mINP")
README_LABELS = {
    **LABELS,
    "no_centroids": "no centroid loss",
    "dynamix": "**full DynaMix** (`params.yaml`)",
}


def run_one(params_path: str, overrides: list[str], out: Path, seed: int) -> dict[str, Any]:
    """Train one (variant, seed), or reuse/resume it; returns its metrics.json."""
    from dynamix.train.trainer import Trainer

    done = out / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text())
    params = load_params(params_path, [*overrides, f"train.out_dir={out}", f"train.seed={seed}"])
    resume = (out / "last.pt").is_file()
    trainer = Trainer(params, resume=resume, overwrite=not resume)  # killed before a checkpoint: start over
    return trainer.fit()


def run_params(params_path: str, overrides: list[str], out: Path, seed: int) -> Params:
    """The params a finished run trained with: its ``params.json``, else as :func:`run_one`
    would load them (a run trained by older code whose keys no longer load, or a test)."""
    saved = out / "params.json"
    if saved.is_file():
        try:
            return from_dict(Params, json.loads(saved.read_text()), where=str(saved))
        except (DynamixError, TypeError, ValueError) as exc:
            log.warning("%s: %s; logging the current params instead", saved, exc)
    return load_params(params_path, [*overrides, f"train.out_dir={out}", f"train.seed={seed}"])


def log_to_mlflow(
    finished: list[tuple[str, int, Path, dict[str, Any]]],
    params_path: str,
    overrides: list[str],
    experiment: str | None,
) -> dict[str, str]:
    """Log each finished ``(variant, seed, out_dir, metrics)``; ``{"variant/seed": run id}``."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from flows.run_info import experiment_description
    from flows.tracking import log_finished_run

    ids = {}
    for variant, seed, out, metrics in finished:
        params = run_params(params_path, [*VARIANTS[variant], *overrides], out, seed)
        ids[f"{variant}/{seed}"] = log_finished_run(
            params,
            metrics,
            experiment=experiment or f"{params.tracking.experiment}-ablation",
            variant=variant,
            description=experiment_description(params, ablation=True),
            tags={"dynamix.run_dir": str(out)},
        )
    return ids


PRECISIONS = ("filter_precision", "reassign_precision", "merge_precision")
ACTIONS = ("images_judged", "images_filtered", "images_relabeled", "ids_merged")


def relabel_summary(run_dirs: list[Path]) -> dict[str, float] | None:
    """What relabeling did in a variant's runs, from their ``log.jsonl`` windows: actions per
    run (mean over runs) and each action's precision against the ground truth, pooled over
    windows and seeds weighted by the window's count of that action. None without windows."""
    windows = []
    for out in run_dirs:
        log_file = out / "log.jsonl"
        if log_file.is_file():
            events = (json.loads(line) for line in log_file.read_text().splitlines() if line.strip())
            windows += [e for e in events if e.get("event") == "relabel"]
    if not windows:
        return None
    out: dict[str, float] = {k: float(sum(w.get(k) or 0 for w in windows)) / len(run_dirs) for k in ACTIONS}
    for key, count in zip(PRECISIONS, ("images_filtered", "images_relabeled", "ids_merged"), strict=True):
        pairs = [(w[key], w.get(count) or 0) for w in windows if isinstance(w.get(key), float) and w[key] == w[key]]
        weight = sum(n for _, n in pairs)
        out[key] = float(sum(p * n for p, n in pairs) / weight) if weight else float("nan")
    return out


def aggregate(
    results: dict[str, list[dict[str, Any]]], run_dirs: dict[str, list[Path]] | None = None
) -> dict[str, Any]:
    """Mean ± std over seeds per variant and target, plus label purity of full DynaMix."""
    report: dict[str, Any] = {}
    for variant, runs in results.items():
        targets = sorted(runs[0]["targets"])
        report[variant] = {
            t: {
                m: {
                    "mean": float(np.mean([r["targets"][t][m] for r in runs])),
                    "std": float(np.std([r["targets"][t][m] for r in runs])),
                }
                for m in METRICS
            }
            for t in targets
        }
        report[variant]["seeds"] = len(runs)
        report[variant]["seed_ids"] = [int(r["seed"]) for r in runs if "seed" in r] or None
        report[variant]["mean_mAP_per_seed"] = [float(r["mean_mAP"]) for r in runs]
        summary = relabel_summary((run_dirs or {}).get(variant, []))
        if summary is not None:
            report[variant]["relabel"] = summary
    quality = [r["label_quality"] for r in results.get("dynamix", []) if "label_quality" in r]
    if quality:
        report["purity"] = {
            "before": float(np.mean([q["before"]["purity"] for q in quality])),
            "after": float(np.mean([q["after"]["purity"] for q in quality])),
        }
    return report


def read_report(path: Path) -> dict[str, Any]:
    """An earlier ``reports/ablation.json`` to merge, or one line naming the file and the fix."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DynamixError(
            f"{path}: not a readable ablation report ({exc}); pass an earlier reports/ablation.json"
        ) from exc
    if (
        not isinstance(report, dict)
        or not isinstance(report.get("settings"), dict)
        or "seeds" not in report["settings"]
    ):
        raise DynamixError(f"{path}: no settings.seeds, so not a report of scripts/ablation.py; pass one that is")
    return report


def merge_reports(new: dict[str, Any], old: dict[str, Any], old_seeds: list[int]) -> dict[str, Any]:
    """One report over the seeds of both, as if every run had been aggregated together:
    means and (population) stds by the pooled-moments formula, per-seed mAPs concatenated,
    relabel counts averaged per run and precisions pooled by their action counts.
    ``old_seeds`` names the earlier report's seeds (its ``settings.seeds``); a variant run
    under one seed in both is refused, since counting it twice would shrink the spread."""
    merged: dict[str, Any] = {}
    for variant in [v for v in VARIANTS if v in new or v in old]:
        a, b = new.get(variant), old.get(variant)
        if b is not None and not b.get("seed_ids"):  # a report from before seed_ids: its settings say
            b = {**b, "seed_ids": old_seeds[: b["seeds"]]}
        if a is None or b is None:
            merged[variant] = a or b
            continue
        seeds_a, seeds_b = a.get("seed_ids") or [], b["seed_ids"]
        if set(seeds_a) & set(seeds_b):
            raise DynamixError(
                f"{variant}: seeds {sorted(set(seeds_a) & set(seeds_b))} are in both reports; "
                "merge only reports over different seeds"
            )
        na, nb = a["seeds"], b["seeds"]
        out: dict[str, Any] = {}
        for target in _targets(a):
            out[target] = {m: _pool(a[target][m], na, b[target][m], nb) for m in METRICS}
        out["seeds"] = na + nb
        per_seed = [*a["mean_mAP_per_seed"], *b["mean_mAP_per_seed"]]
        if seeds_a:
            order = np.argsort([*seeds_a, *seeds_b], kind="stable")
            out["seed_ids"] = [[*seeds_a, *seeds_b][i] for i in order]
            per_seed = [per_seed[i] for i in order]
        out["mean_mAP_per_seed"] = per_seed
        relabel = _pool_relabel(a.get("relabel"), na, b.get("relabel"), nb)
        if relabel is not None:
            out["relabel"] = relabel
        merged[variant] = out
    if "purity" in new and "purity" in old:
        na, nb = new["dynamix"]["seeds"], old["dynamix"]["seeds"]
        merged["purity"] = {k: (new["purity"][k] * na + old["purity"][k] * nb) / (na + nb) for k in ("before", "after")}
    elif "purity" in new or "purity" in old:
        merged["purity"] = new.get("purity") or old["purity"]
    return merged


def _targets(entry: dict[str, Any]) -> list[str]:
    """A variant's target names: its per-target metric dicts, not its ``relabel`` summary."""
    return sorted(t for t, r in entry.items() if isinstance(r, dict) and "mAP" in r)


def _pool(a: dict[str, float], na: int, b: dict[str, float], nb: int) -> dict[str, float]:
    """Mean and population std of two groups' union from each group's own."""
    n = na + nb
    mean = (a["mean"] * na + b["mean"] * nb) / n
    second = (na * (a["std"] ** 2 + a["mean"] ** 2) + nb * (b["std"] ** 2 + b["mean"] ** 2)) / n
    return {"mean": float(mean), "std": float(np.sqrt(max(second - mean**2, 0.0)))}


def _pool_relabel(a: dict[str, float] | None, na: int, b: dict[str, float] | None, nb: int) -> dict[str, float] | None:
    if a is None or b is None:
        return a or b
    out = {k: (a[k] * na + b[k] * nb) / (na + nb) for k in ACTIONS}
    for key, count in zip(PRECISIONS, ("images_filtered", "images_relabeled", "ids_merged"), strict=True):
        parts = [(p[key], p[count] * n) for p, n in ((a, na), (b, nb)) if p[key] == p[key] and p[count] > 0]
        weight = sum(w for _, w in parts)
        out[key] = float(sum(v * w for v, w in parts) / weight) if weight else float("nan")
    return out


def paired_with_dynamix(report: dict[str, Any]) -> None:
    """Add ``vs_dynamix`` to each variant: full DynaMix's mean target mAP minus the
    variant's on the same seed. Seed noise moves every variant together (one world, one
    initialisation per seed), so the per-seed difference separates modules that the
    spread of the means cannot."""
    full = report.get("dynamix")
    if not full or not full.get("seed_ids"):
        return
    by_seed = dict(zip(full["seed_ids"], full["mean_mAP_per_seed"], strict=True))
    for variant in VARIANTS:
        entry = report.get(variant)
        if variant == "dynamix" or not entry or not entry.get("seed_ids"):
            continue
        runs = zip(entry["seed_ids"], entry["mean_mAP_per_seed"], strict=True)
        pairs = [(s, by_seed[s] - m) for s, m in runs if s in by_seed]
        if pairs:
            diffs = [d for _, d in pairs]
            entry["vs_dynamix"] = {
                "seeds": [s for s, _ in pairs],
                "diff": diffs,
                "mean": float(np.mean(diffs)),
                "dynamix_ahead": int(sum(d > 0 for d in diffs)),
            }


def _ahead(entry: dict[str, Any]) -> str:
    vs = entry.get("vs_dynamix")
    if not vs:
        return "–"
    return f"{vs['mean']:+.3f} ({vs['dynamix_ahead']} of {len(vs['diff'])})"


def readme_table(report: dict[str, Any]) -> str:
    """The README's short table: mean target mAP per variant and each action's precision."""
    lines = [
        "| variant | seeds | mean target mAP | full DynaMix ahead by (seeds) | filter / reassign / merge precision |",
        "|---|---:|---:|---:|---|",
    ]
    for v in [v for v in VARIANTS if v in report]:
        per_seed = report[v]["mean_mAP_per_seed"]
        r = report[v].get("relabel")
        precision = " / ".join(_share(r[k]) for k in PRECISIONS) if r else "–"
        lines.append(
            f"| {README_LABELS[v]} | {report[v]['seeds']} | {np.mean(per_seed):.3f} ± {np.std(per_seed):.3f} "
            f"| {_ahead(report[v])} | {precision} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(doc: Path, report: dict[str, Any]) -> list[str]:
    """Rewrite the report's tables in ``doc`` between their markers: ``ablation:begin/end``
    gets :func:`readme_table`, ``ablation-full:begin/end`` gets :func:`markdown`. Returns the
    blocks written; a document with neither pair of markers is an error."""
    text, written = doc.read_text(), []
    for name, render in (("ablation", readme_table), ("ablation-full", markdown)):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if start >= 0 and stop > start:
            text = text[: start + len(begin)] + "\n" + render(report) + text[stop:]
            written.append(name)
    if not written:
        raise DynamixError(f"{doc}: no <!-- ablation:begin --> ... <!-- ablation:end --> block for the table; add one")
    with atomic_path(doc) as tmp:
        Path(tmp).write_text(text)
    return written


def markdown(report: dict[str, Any]) -> str:
    variants = [v for v in VARIANTS if v in report]
    targets = _targets(report[variants[0]])
    head = "| variant | " + " | ".join(f"{t} {m}" for t in targets for m in METRICS)
    lines = [head + " | mean mAP |", "|---|" + "---:|" * (len(targets) * len(METRICS) + 1)]
    for v in variants:
        cells = [f"{report[v][t][m]['mean']:.3f} ± {report[v][t][m]['std']:.3f}" for t in targets for m in METRICS]
        per_seed = report[v].get("mean_mAP_per_seed")
        if per_seed:
            cells.append(f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}")
        else:
            cells.append("–")
        lines.append(f"| {LABELS[v]} | " + " | ".join(cells) + " |")
    seeds = sorted({report[v]["seeds"] for v in variants})
    lines.append("")
    lines.append(f"Mean ± std over {'/'.join(map(str, seeds))} seeds, final step, unseen targets.")
    if "purity" in report:
        p = report["purity"]
        lines.append(
            f"Single-camera label purity against ground truth: {p['before']:.3f} before "
            f"relabeling, {p['after']:.3f} after (full DynaMix, mean over seeds)."
        )
    paired = [v for v in variants if "vs_dynamix" in report[v]]
    if paired:
        seeds = report[paired[0]]["vs_dynamix"]["seeds"]
        lines += ["", f"| full DynaMix minus | seed {', '.join(map(str, seeds))} | mean | DynaMix ahead |"]
        lines.append("|---|---:|---:|---:|")
        for v in paired:
            vs = report[v]["vs_dynamix"]
            per_seed = " / ".join(f"{d:+.3f}" for d in vs["diff"])
            lines.append(
                f"| {LABELS[v]} | {per_seed} | {vs['mean']:+.3f} | {vs['dynamix_ahead']} of {len(vs['diff'])} |"
            )
        lines.append("")
        lines.append(
            "Mean target mAP of full DynaMix minus the variant's, run on the same seed: the seed moves every "
            "variant together, so the per-seed difference is the sharper test of one module."
        )
    acting = [v for v in variants if "relabel" in report[v]]
    if acting:
        lines += [
            "",
            "| variant | judged | filtered | filter precision | moved | reassign precision | merged ids "
            "| merge precision |",
        ]
        lines.append("|---|" + "---:|" * 7)
        for v in acting:
            r = report[v]["relabel"]
            cells = [f"{r['images_judged']:.0f}", f"{r['images_filtered']:.0f}", _share(r["filter_precision"])]
            cells += [f"{r['images_relabeled']:.0f}", _share(r["reassign_precision"])]
            cells += [f"{r['ids_merged']:.0f}", _share(r["merge_precision"])]
            lines.append(f"| {LABELS[v]} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Relabeling actions per run (mean over seeds) and their precision against the synthetic ground truth "
            "(share of filtered images that were mislabelled, of moved images now with their true person, of merged "
            "ids joining one person), pooled over windows and seeds."
        )
    return "\n".join(lines) + "\n"


def _share(value: float) -> str:
    return "–" if value != value else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out-dir", default=str(REPO / "runs" / "ablation"))
    ap.add_argument("--report", default=str(REPO / "reports" / "ablation.json"))
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: report the finished (variant, seed) runs, skip missing ones",
    )
    ap.add_argument("--no-mlflow", dest="mlflow", action="store_false", help="do not log the runs to MLflow")
    ap.add_argument("--experiment", default=None, help="MLflow experiment (default: <experiment>-ablation)")
    ap.add_argument(
        "--merge",
        default=None,
        metavar="REPORT",
        help="fold an earlier report over other seeds into this one (exact pooled mean/std)",
    )
    ap.add_argument(
        "--write-tables",
        nargs="+",
        default=[],
        metavar="DOC",
        help="rewrite the tables between the ablation markers of these documents (README.md docs/ablation.md)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    earlier = read_report(Path(args.merge)) if args.merge else None  # before any run: a bad one fails at once
    if earlier is not None and earlier["settings"].get("overrides", []) != args.set:
        was = earlier["settings"].get("overrides")
        log.error("%s was run with --set %s, these runs with --set %s: not merged", args.merge, was, args.set)
        return 1
    results: dict[str, list[dict[str, Any]]] = {}
    finished: list[tuple[str, int, Path, dict[str, Any]]] = []
    for variant in args.variants:
        for seed in args.seeds:
            t0 = time.perf_counter()
            out = Path(args.out_dir) / variant / f"seed{seed}"
            if args.report_only and not (out / "metrics.json").is_file():
                log.warning("%s seed %d: not run yet (%s); left out", variant, seed, out)
                continue
            metrics = run_one(args.params, [*VARIANTS[variant], *args.set], out, seed)
            results.setdefault(variant, []).append({**metrics, "seed": seed})
            finished.append((variant, seed, out, metrics))
            log.info(
                "%s seed %d: mean target mAP %.4f (%.0f s)",
                variant,
                seed,
                metrics["mean_mAP"],
                time.perf_counter() - t0,
            )
    if not results:
        log.error("no finished runs under %s; run without --report-only first", args.out_dir)
        return 1
    dirs: dict[str, list[Path]] = {}
    for variant, _seed, out, _metrics in finished:
        dirs.setdefault(variant, []).append(out)
    report = aggregate(results, dirs)
    seeds = sorted({s for _v, s, _o, _m in finished})
    if earlier is not None:
        report = merge_reports(report, earlier, earlier["settings"]["seeds"])
        seeds = sorted({*seeds, *earlier["settings"]["seeds"]})
    paired_with_dynamix(report)
    runs = {v: r["seeds"] for v, r in report.items() if isinstance(r, dict) and "seeds" in r}
    report["settings"] = {"seeds": seeds, "overrides": args.set, "runs_per_variant": runs}
    write_json_atomic(args.report, report)
    with atomic_path(Path(args.report).with_suffix(".md")) as tmp:
        Path(tmp).write_text(markdown(report))
    print(markdown(report))
    for doc in args.write_tables:
        log.info("%s: %s rewritten from the report", doc, ", ".join(write_tables(Path(doc), report)))
    if args.mlflow:
        ids = log_to_mlflow(finished, args.params, args.set, args.experiment)
        log.info("%d runs logged to MLflow: %s", len(ids), ", ".join(ids))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DynamixError as exc:  # bad input: one line, not a traceback
        sys.exit(f"ablation: {exc}")
