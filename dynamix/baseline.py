"""``dynamix baseline``: a hand-crafted colour descriptor evaluated on the target domains.

Striped colour histograms are the classic pre-deep-learning re-ID feature. They set the
floor that any trained model must clear on the unseen targets, and they exercise the whole
evaluation path (manifest → features → ranking → metrics → ranked-list picture) without a
network, so the pipeline has meaningful numbers before a model exists.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynamix.config import Params, load_params
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic

log = logging.getLogger(__name__)


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
                f"{path}: cannot decode image ({exc}); re-create or remove it and rebuild "
                "the manifest"
            ) from exc
        feats[i] = stripe_histogram(rgb, stripes, bins)
    return feats


def evaluate_targets(params: Params, plots_dir: str | None = None) -> dict[str, Any]:
    """Metrics of the baseline descriptor on every target's query/gallery split."""
    from dynamix.data.manifest import read_manifest
    from dynamix.evaluation import evaluate_features, plot_ranked_list

    cfg, ev = params.baseline, params.evaluation
    results: dict[str, Any] = {}
    for spec in params.data.targets:
        df = read_manifest(Path(params.data.manifests_dir) / f"{spec.name}.parquet")
        query = df[df["split"] == "query"].reset_index(drop=True)
        gallery = df[df["split"] == "gallery"].reset_index(drop=True)
        if query.empty or gallery.empty:
            raise DynamixError(f"target {spec.name}: manifest has no query or gallery rows")
        qf = describe(query["path"].tolist(), cfg.stripes, cfg.bins)
        gf = describe(gallery["path"].tolist(), cfg.stripes, cfg.bins)
        arrays = [
            query["pid"].to_numpy(),
            gallery["pid"].to_numpy(),
            query["camid"].to_numpy(),
            gallery["camid"].to_numpy(),
        ]
        result = evaluate_features(
            qf, gf, *arrays, max_rank=ev.max_rank, metric=ev.metric, block_size=ev.block_size
        )
        results[spec.name] = result.as_dict()
        log.info(
            "baseline %s: rank1=%.4f mAP=%.4f mINP=%.4f (%d valid queries)",
            spec.name,
            results[spec.name]["rank1"],
            results[spec.name]["mAP"],
            results[spec.name]["mINP"],
            results[spec.name]["num_valid_query"],
        )
        if plots_dir:
            dist = 1.0 - qf[:8] @ gf.T
            plot_ranked_list(
                query["path"].tolist()[:8],
                gallery["path"].tolist(),
                dist,
                arrays[0][:8],
                arrays[1],
                arrays[2][:8],
                arrays[3],
                Path(plots_dir) / f"baseline_ranks_{spec.name}.png",
            )
    return results


def _handler(args: argparse.Namespace) -> int:
    params = load_params(args.params, args.set)
    metrics = evaluate_targets(params, plots_dir=args.plots_dir)
    write_json_atomic(args.out, metrics)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "baseline", help="evaluate the hand-crafted colour descriptor on the target domains"
    )
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="metrics/baseline.json")
    p.add_argument("--plots-dir", default="reports", help="where ranked-list PNGs go")
    p.set_defaults(func=_handler)
