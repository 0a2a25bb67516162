"""``dynamix evaluate-distmat FILE.npz``: Market-1501 metrics of a saved distance matrix.

Handy to score a matrix produced elsewhere (another toolkit, a re-ranking script) with
the project's protocol. Prints the metrics as one JSON object on stdout. numpy and torch
are imported inside the handler so that ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

NPZ_KEYS = ("distmat", "q_pids", "g_pids", "q_camids", "g_camids")


def load_distmat_npz(path: Path) -> dict[str, Any]:
    """The five arrays of ``path``; a one-line :class:`DynamixError` if file or key is missing."""
    import numpy as np

    if not path.is_file():
        raise DynamixError(f"{path}: no such file; pass an .npz holding {', '.join(NPZ_KEYS)}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in NPZ_KEYS if k not in data.files]
            if missing:
                raise DynamixError(
                    f"{path}: missing key(s) {', '.join(missing)}; the .npz must hold "
                    f"{', '.join(NPZ_KEYS)} (np.savez(path, distmat=..., q_pids=..., ...))"
                )
            return {k: data[k] for k in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DynamixError(f"{path}: not a readable .npz file ({exc}); save it with np.savez") from exc


def handler(args: argparse.Namespace) -> int:
    from dynamix.evaluation.metrics import evaluate_rank

    path = Path(args.file)
    arrays = load_distmat_npz(path)
    try:
        result = evaluate_rank(**arrays, max_rank=args.max_rank)
    except DynamixError as exc:
        raise DynamixError(f"{path}: {exc}") from exc
    log.info(
        "%s: %d×%d, %d valid queries",
        path,
        *arrays["distmat"].shape,
        result.num_valid_query,
    )
    print(json.dumps(result.as_dict(), sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate-distmat",
        help="Market-1501 metrics (CMC, mAP, mINP) of a distance matrix saved as .npz",
        description=(
            "Score FILE.npz (keys: distmat Q×G, q_pids, g_pids, q_camids, g_camids; smaller "
            "distance = more similar) with the Market-1501 protocol; prints JSON on stdout."
        ),
    )
    p.add_argument("file", metavar="FILE.npz", help="arrays saved with numpy.savez")
    p.add_argument("--max-rank", type=int, default=50, help="CMC length (default 50)")
    p.set_defaults(func=handler)
