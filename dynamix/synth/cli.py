"""``dynamix synth``: generate the embedded synthetic re-ID world.

Imports of numpy/pandas/Pillow stay inside the handler so ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from dynamix.errors import DynamixError
from dynamix.synth.catalog import PRESETS


def parse_image_size(text: str) -> tuple[int, int]:
    """``"128x64"`` -> ``(128, 64)`` (height x width)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise DynamixError(f"--image-size {text!r}: expected HxW such as 128x64 or 256x128")
    return int(match.group(1)), int(match.group(2))


def handler(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dynamix.synth.generate import generate_world
    from dynamix.synth.presets import check_image_size

    size = None
    if args.image_size:
        size = check_image_size(parse_image_size(args.image_size), what="--image-size")
    if args.workers is not None and args.workers < 1:
        raise DynamixError(f"--workers {args.workers}: must be >= 1")

    def bar(domain: str, total: int) -> Any:
        return tqdm(total=total, desc=f"{domain:>10}", unit="img", dynamic_ncols=True)

    generate_world(
        args.out,
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        image_size=size,
        progress=bar,
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic re-ID world (labelled sources, targets, single-camera)",
        description=(
            "Generate the synthetic re-ID world: labelled multi-camera sources and targets in "
            "the Market-1501, DukeMTMC-reID, MSMT17 and CUHK03-NP layouts, a LUPerson-NL-style "
            "pseudo-labelled single-camera domain with controlled label noise, its ground "
            "truth, and world.json. Deterministic for a given --seed."
        ),
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--out", default="data/raw", help="output folder (default: data/raw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    p.add_argument("--image-size", default=None, metavar="HxW", help="override the preset's crop size")
    p.add_argument("--overwrite", action="store_true", help="replace an existing world at --out")
    p.set_defaults(func=handler)
