"""``dynamix baseline``: a hand-crafted colour descriptor evaluated on the target domains.

Striped colour histograms are the classic pre-deep-learning re-ID feature. They set the
floor that any trained model must clear on the unseen targets, and they exercise the whole
evaluation path (manifest → features → ranking → metrics → ranked-list picture) without a
network, so the pipeline has meaningful numbers before a model exists.

``metrics/baseline.json`` holds ``{target: {rank1, mAP, ...}}`` and, under
:data:`DATA_VERSION_KEY`, the data version the numbers were computed on
(:func:`data_version`): the promotion gate compares a model with the baseline only on the
very same target data and evaluation settings, and refuses otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynamix.config import Params, load_params
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic

log = logging.getLogger(__name__)

#: The key of ``metrics/baseline.json`` that records :func:`data_version` (every other key
#: is a target).
DATA_VERSION_KEY = "data_version"


def stripe_histogram(image: np.ndarray, stripes: int, bins: int) -> np.ndarray:
    """Per-stripe RGB histograms of one ``(H, W, 3)`` uint8 image → ``(stripes*3*bins,)``.

    Square-rooted (Hellinger) and L2-normalised so that cosine distance compares shapes
    of distributions rather than raw pixel counts.
    """
    h = image.shape[0]
    q = (image.astype(np.int64) * bins) >> 8  # (H, W, 3) in [0, bins)
    stripe = (np.arange(h) * stripes // h)[:, None, None]  # (H, 1, 1)
    channel = np.arange(3)[None, None, :]
    index = (stripe * 3 + channel) * bins + q
    hist = np.bincount(index.ravel(), minlength=stripes * 3 * bins).astype(np.float32)
    hist = np.sqrt(hist)
    return hist / max(float(np.linalg.norm(hist)), 1e-12)


def describe(paths: Sequence[str], stripes: int, bins: int) -> np.ndarray:
    """Descriptors for image files → ``(N, stripes*3*bins)`` float32."""
    from PIL import Image, UnidentifiedImageError

    feats = np.empty((len(paths), stripes * 3 * bins), dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise DynamixError(
                f"{path}: cannot decode image ({exc}); re-create or remove it and rebuild the manifest"
            ) from exc
        feats[i] = stripe_histogram(rgb, stripes, bins)
    return feats


def evaluate_targets(params: Params, plots_dir: str | None = None) -> dict[str, Any]:
    """Metrics of the baseline descriptor on every target's query/gallery split.

    The same per-target loop as a trained model
    (:func:`~dynamix.evaluation.targets.evaluate_encoder`, ``evaluation`` settings), with
    the descriptor as the embedding; each target also reports ``mAP_market_kit`` (the
    official kit's AP, for comparison with published baselines). With ``plots_dir``, one
    ranked-list PNG per target (``baseline_ranks_<target>.png``), ranked by
    ``evaluation.metric`` as the metrics are.
    """
    from dynamix.evaluation.targets import (
        PLOT_QUERIES,
        REPORT_KEYS,
        evaluate_encoder,
        plot_ranked,
        target_splits,
    )

    cfg = params.baseline
    splits = target_splits(params)
    report = evaluate_encoder(
        lambda paths: describe(paths, cfg.stripes, cfg.bins),
        splits,
        params.evaluation,
        ranked_queries=PLOT_QUERIES if plots_dir else 0,
        keys=(*REPORT_KEYS, "mAP_market_kit"),
    )
    for name, r in report["targets"].items():
        log.info(
            "baseline %s: rank1=%.4f mAP=%.4f mINP=%.4f (%d valid queries)",
            name,
            r["rank1"],
            r["mAP"],
            r["mINP"],
            r["num_valid_query"],
        )
        if plots_dir:
            query, gallery = splits[name]
            out = Path(plots_dir) / f"baseline_ranks_{name}.png"
            plot_ranked(query, gallery, report["ranked"][name], out)
    return report["targets"]


def target_digest(query: Any, gallery: Any) -> str:
    """SHA-256 of one target as an evaluation sees it: its query and gallery rows (path,
    pid, camid, in order) and the bytes of every image they name.

    Rows alone (:func:`~dynamix.evaluation.targets.split_fingerprint`) miss a dataset
    regenerated under the same file names; the bytes catch it. A few MB per target on the
    synthetic worlds: well under a second.
    """
    from dynamix.evaluation.targets import split_fingerprint

    digest = hashlib.sha256(split_fingerprint(query, gallery).encode())
    for part in (query, gallery):
        for path in part["path"].astype(str):
            try:
                digest.update(Path(path).read_bytes())
            except OSError as exc:
                raise DynamixError(
                    f"{path}: cannot read ({exc.strerror or exc}); rebuild the manifests with `dynamix prepare`"
                ) from exc
    return digest.hexdigest()


def data_version(params: Params) -> dict[str, Any]:
    """What target metrics are comparable on: ``{"targets": {name: digest}, "metric", "max_rank"}``.

    One :func:`target_digest` per ``data.targets`` entry, plus the ranking settings (the
    same images ranked by another metric are other numbers). Two reports are comparable
    only when these are equal; the baseline file records it, the promotion gate checks it.
    """
    from dynamix.evaluation.targets import target_splits

    splits = target_splits(params)
    return {
        "targets": {name: target_digest(query, gallery) for name, (query, gallery) in splits.items()},
        "metric": params.evaluation.metric,
        "max_rank": params.evaluation.max_rank,
    }


def version_differences(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Why two :func:`data_version` records differ, one phrase each; empty when they are equal.

    Only the targets of ``current`` count: a baseline may cover more targets than are gated.
    """
    if not isinstance(recorded, dict):
        return ["no data version recorded (written before versions were recorded)"]
    out = []
    for key in ("metric", "max_rank"):
        if recorded.get(key) != current[key]:
            out.append(f"evaluation.{key} {recorded.get(key)} vs {current[key]} now")
    prints = recorded.get("targets") or {}
    for name, digest in current["targets"].items():
        if name not in prints:
            out.append(f"no {name}")
        elif prints[name] != digest:
            out.append(f"other {name} data ({str(prints[name])[:12]} vs {digest[:12]} now)")
    return out


def baseline_report(params: Params, plots_dir: str | None = None) -> dict[str, Any]:
    """What ``dynamix baseline`` writes: :func:`evaluate_targets` plus the data version."""
    if any(spec.name == DATA_VERSION_KEY for spec in params.data.targets):
        raise DynamixError(
            f"data.targets: '{DATA_VERSION_KEY}' is reserved in metrics/baseline.json; rename the target"
        )
    metrics = evaluate_targets(params, plots_dir=plots_dir)
    return {**metrics, DATA_VERSION_KEY: data_version(params)}


def _handler(args: argparse.Namespace) -> int:
    params = load_params(args.params, args.set)
    write_json_atomic(args.out, baseline_report(params, plots_dir=args.plots_dir))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("baseline", help="evaluate the hand-crafted colour descriptor on the target domains")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="metrics/baseline.json")
    p.add_argument("--plots-dir", default="reports", help="where ranked-list PNGs go")
    p.set_defaults(func=_handler)
