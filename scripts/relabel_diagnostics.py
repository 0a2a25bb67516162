"""How right would a relabeling round be, judged against the synthetic ground truth?

    python scripts/relabel_diagnostics.py --checkpoint runs/train/last.pt [--params params.yaml]
                                          [--features FILE.npz] [--out reports/relabel_diag.json]

Embeds every single-camera training image with the checkpoint's momentum encoder (or reads
``--features``, written by an earlier call), forms one centroid per pseudo id, and scores
each decision a round can take with :mod:`dynamix.relabel` itself:

- **filter**: of the images each rule drops, the fraction whose pseudo label is wrong
  (majority person of the id ≠ the image's person), and the purity of what is kept;
- **move**: of the images step (a) would move to another id, the fraction whose new id's
  majority person is theirs (a move only helps above ~50 %);
- **merge**: of the kNN edges step (b) would keep, the fraction joining two ids of the same
  person, overall and across videos (the merges DynaMix is after).

This is what set the CPU recipe (filter only): see docs/ablation.md.
Ground truth is read for this report only, never by training.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynamix.config import load_params  # noqa: E402
from dynamix.io import write_json_atomic  # noqa: E402
from dynamix.relabel import filter_and_relabel, knn_search  # noqa: E402

log = logging.getLogger("relabel_diagnostics")


def single_camera_features(params_path: str, checkpoint: str) -> dict[str, np.ndarray]:
    """Momentum features (S, D) of the single-camera train images, pseudo ids, truth, video."""
    import torch

    from dynamix.infer.checkpoint import load_encoder
    from dynamix.train.data import train_table, true_ids
    from dynamix.train.features import extract_features

    params = load_params(params_path)
    table = train_table(params)
    single = (table["source_kind"] == "single_camera").to_numpy()
    truth = true_ids(params, table)
    if truth is None:
        raise SystemExit("no ground truth for the single-camera data: synthetic worlds only")
    encoder = load_encoder(checkpoint)
    feats = extract_features(
        encoder,
        table["path"].astype(str).to_numpy()[single].tolist(),
        img_size=encoder.img_size,
        batch_size=256,
        num_workers=params.train.num_workers,
        device=torch.device("cpu"),
    )
    return {
        "feats": feats.numpy(),
        "labels": table["train_pid"].to_numpy()[single],
        "truth": truth[single],
        "video": table["video"].astype(str).to_numpy()[single],
    }


def majority(inverse: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Most frequent value per group (G,), groups given by ``inverse`` (S,) in 0..G-1."""
    frame = pd.DataFrame({"g": inverse, "v": values})
    return frame.groupby("g")["v"].agg(lambda s: s.value_counts().index[0]).to_numpy()


def diagnose(data: dict[str, np.ndarray]) -> dict[str, Any]:
    feats = data["feats"] / np.linalg.norm(data["feats"], axis=1, keepdims=True)
    ids, inverse = np.unique(data["labels"], return_inverse=True)  # local ids 0..G-1
    sums = np.zeros((len(ids), feats.shape[1]), np.float32)
    np.add.at(sums, inverse, feats)
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    person = majority(inverse, data["truth"])  # (G,)
    video = majority(inverse, data["video"])  # (G,)
    wrong = person[inverse] != data["truth"]  # (S,) image carries another person's label
    report: dict[str, Any] = {
        "images": len(feats),
        "ids": len(ids),
        "purity": float(1 - wrong.mean()),
        "filter": {},
        "move": {},
    }
    every = np.ones(len(ids), bool)
    rules = {"tau_0.5": None, "mad_6": 6.0, "mad_4": 4.0, "mad_3": 3.0}
    for name, mad in rules.items():
        out = filter_and_relabel(
            feats,
            inverse,
            centroids,
            every,
            tau_filter=0.5,
            tau_relabel=0.7,
            margin=0.1,
            reassign=False,
            filter_mad=mad,
        )
        drop = out.filtered
        report["filter"][name] = {
            "threshold": out.filter_threshold,
            "filtered": int(drop.sum()),
            "wrong_among_filtered": float(wrong[drop].mean()) if drop.any() else None,
            "purity_kept": float(1 - wrong[~drop].mean()),
        }
    for margin in (0.1, 0.2, 0.3):
        out = filter_and_relabel(feats, inverse, centroids, every, tau_filter=-1.0, tau_relabel=0.7, margin=margin)
        moved = out.relabeled
        right = person[out.labels[moved]] == data["truth"][moved]
        report["move"][f"margin_{margin}"] = {
            "moved": int(moved.sum()),
            "right": float(right.mean()) if moved.any() else None,
        }
    sims, nbr = knn_search(centroids, centroids, 9)
    sims, nbr = sims[:, 1:], nbr[:, 1:]
    same, cross = person[nbr] == person[:, None], video[nbr] != video[:, None]
    report["merge"] = {
        f"tau_{t}": {
            "edges": int((sims >= t).sum()),
            "precision": float(same[sims >= t].mean()) if (sims >= t).any() else None,
            "cross_video_edges": int(((sims >= t) & cross).sum()),
            "cross_video_precision": float(same[(sims >= t) & cross].mean()) if ((sims >= t) & cross).any() else None,
        }
        for t in (0.8, 0.9, 0.95, 0.98)
    }
    report["true_duplicate_ids"] = int(len(ids) - len(np.unique(person)))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--checkpoint", default=None, help="training checkpoint (momentum encoder)")
    ap.add_argument("--features", default=None, help="features .npz: read if it exists, else written")
    ap.add_argument("--out", default=str(REPO / "reports" / "relabel_diagnostics.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.features and Path(args.features).is_file():
        data = dict(np.load(args.features, allow_pickle=False))
    elif args.checkpoint:
        data = single_camera_features(args.params, args.checkpoint)
        if args.features:
            np.savez(args.features, **data)
    else:
        ap.error("give --checkpoint (or an existing --features file)")
    report = diagnose(data)
    report["checkpoint"] = args.checkpoint
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
