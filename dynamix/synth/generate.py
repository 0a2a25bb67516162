"""Writing a planned world to disk: parallel, streaming, deterministic and atomic.

Workers receive chunks of plan rows and write their images straight into a hidden sibling
of the output folder; the parent writes list files, ground truth and ``world.json``, then
renames the folder into place. A crash therefore never leaves a half-written dataset at
``out``, and because every image draws only from its own generator, the bytes do not
depend on the number of workers or the order in which chunks finish.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic
from dynamix.synth import writers
from dynamix.synth.catalog import get_preset
from dynamix.synth.plan import DomainPlan
from dynamix.synth.presets import Preset
from dynamix.synth.render import Renderer, encode, image_rng
from dynamix.synth.style import STYLE_DIMS
from dynamix.synth.summary import NOISE_RATES, realized_noise
from dynamix.synth.world import World, plan_world

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
CHUNK = 256
GROUND_TRUTH = "ground_truth"


class ProgressBar(Protocol):
    def update(self, n: int) -> Any: ...
    def close(self) -> Any: ...


ProgressFactory = Callable[[str, int], ProgressBar]


def generate_world(
    out_dir: str | os.PathLike[str],
    preset: str | Preset = "tiny",
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    image_size: tuple[int, int] | None = None,
    progress: ProgressFactory | None = None,
) -> Path:
    """Generate the synthetic world of ``preset`` into ``out_dir`` and return its path.

    ``progress(domain, total)`` may return a bar (``update``/``close``) per domain.
    """
    out = Path(out_dir)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise DynamixError(f"seed {seed!r} must be a non-negative integer (e.g. --seed 0)")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise DynamixError(f"workers={workers} must be >= 1 (e.g. --workers 2)")
    preset = get_preset(preset).with_image_size(image_size)
    _check_target(out, overwrite, world_entries(preset))
    world = plan_world(preset, int(seed))
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    start = time.perf_counter()
    stale = sorted(out.parent.glob(f".{out.name}.partial-*")) if out.parent.is_dir() else []
    if stale:
        log.warning("leftovers of an interrupted run, safe to delete: %s", stale)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise DynamixError(f"{out}: cannot create it ({exc.strerror}); choose a writable --out") from exc
    try:
        _render_all(world, tmp, workers, progress)
        _write_metadata(world, tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "wrote %d images of preset %s to %s in %.1fs with %d workers",
        world.num_images,
        world.preset.name,
        out,
        time.perf_counter() - start,
        workers,
    )
    return out


def world_entries(preset: Preset) -> set[str]:
    """Top-level names a generated world holds (used to recognise one before replacing it)."""
    names = {d.name for d in preset.labelled} | {preset.single_camera.name}
    return names | {GROUND_TRUTH, "world.json"}


def _check_target(out: Path, overwrite: bool, known: set[str]) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise DynamixError(f"{out}: exists and is not a folder; choose another --out")
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    if not overwrite:
        raise DynamixError(f"{out}: already exists; pass --overwrite to replace it")
    # --overwrite deletes the folder: only ever do that to something we generated.
    if "world.json" not in entries and not set(entries) <= known:
        raise DynamixError(
            f"{out}: does not look like a synthetic world (no world.json); refusing to "
            "overwrite it, remove it yourself or choose another --out"
        )


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# --- rendering -----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(root: str, seed: int, size: tuple[int, int], domains: list[tuple]) -> None:
    """Give a worker the small per-domain tables once; chunks then carry only plan rows."""
    _WORKER["root"] = Path(root)
    _WORKER["domains"] = {
        index: (name, fmt, Renderer(size, identities, styles, seed, index))
        for index, name, fmt, identities, styles in domains
    }
    _WORKER["seed"] = seed


def _render_chunk(task: tuple[int, dict[str, np.ndarray], list[str]]) -> tuple[int, int]:
    index, rows, paths = task
    name, fmt, renderer = _WORKER["domains"][index]
    folder, seed = _WORKER["root"] / name, _WORKER["seed"]
    quality = renderer.styles["jpeg"]
    columns = list(rows)
    for i, values in enumerate(zip(*(rows[c].tolist() for c in columns), strict=True)):
        row = dict(zip(columns, values, strict=True))
        img = renderer.render(row, image_rng(seed, index, row["key"]))
        data = encode(img, fmt, int(quality[row["style"]]))
        with open(folder / paths[i], "wb") as fh:
            fh.write(data)
    return index, len(paths)


def _tasks(world: World) -> Iterator[tuple[int, dict[str, np.ndarray], list[str]]]:
    for plan in world.domains:
        table, paths = plan.render_table(), plan.images["path"].tolist()
        for lo in range(0, len(paths), CHUNK):
            hi = lo + CHUNK
            yield plan.index, {k: v[lo:hi] for k, v in table.items()}, paths[lo:hi]


def _render_all(world: World, root: Path, workers: int, progress: ProgressFactory | None) -> None:
    for plan in world.domains:
        for folder in sorted({os.path.dirname(p) for p in plan.images["path"]}):
            (root / plan.name / folder).mkdir(parents=True, exist_ok=True)
    init_args = (
        str(root),
        world.seed,
        world.image_size,
        [(d.index, d.name, d.fmt, d.identities, d.styles) for d in world.domains],
    )
    totals = {d.index: len(d.images) for d in world.domains}
    done = dict.fromkeys(totals, 0)
    names = {d.index: d.name for d in world.domains}
    bars: dict[int, ProgressBar] = {}
    if progress is not None:
        bars = {index: progress(names[index], total) for index, total in totals.items()}

    def advance(index: int, n: int) -> None:
        done[index] += n
        if index in bars:
            bars[index].update(n)
            if done[index] == totals[index]:
                bars[index].close()

    try:
        if workers == 1:
            _init_worker(*init_args)
            for task in _tasks(world):
                advance(*_render_chunk(task))
        else:
            with multiprocessing.get_context().Pool(workers, _init_worker, init_args) as pool:
                for index, n in pool.imap_unordered(_render_chunk, _tasks(world)):
                    advance(index, n)
                # Let the workers exit on their own: the with-block's terminate() SIGTERMs them,
                # and one killed while holding the task queue's lock leaves the other blocked
                # on it forever (seen under a Prefect task, whose SIGTERM handler they inherit).
                pool.close()
                pool.join()
    finally:
        _WORKER.clear()
        for index, bar in bars.items():
            if done[index] != totals[index]:
                bar.close()


# --- metadata ------------------------------------------------------------------------


def _write_metadata(world: World, root: Path) -> None:
    domains: dict[str, Any] = {}
    gt_dir = root / GROUND_TRUTH
    gt_dir.mkdir()
    for plan in world.domains:
        for rel, lines in plan.lists.items():
            writers.write_lines(root / plan.name / rel, lines)
        domains[plan.name] = _domain_entry(plan)
        if plan.ground_truth is not None:
            _write_ground_truth(world, plan, gt_dir, domains[plan.name])
    _styles_table(world).to_parquet(gt_dir / "styles.parquet", index=False)
    write_json_atomic(
        root / "world.json",
        {
            "preset": world.preset.name,
            "seed": world.seed,
            "image_size": list(world.image_size),
            "generator_version": GENERATOR_VERSION,
            "domain_order": [d.name for d in world.domains],
            "domains": domains,
            "styles": f"{GROUND_TRUTH}/styles.parquet",
        },
    )


def _domain_entry(plan: DomainPlan) -> dict[str, Any]:
    entry = {
        "name": plan.name,
        "layout": plan.layout,
        "role": plan.role,
        "format": plan.fmt,
        "counts": plan.counts,
        **plan.info,
    }
    if plan.layout == "single_camera":
        entry["num_videos"] = plan.counts["num_videos"]
    return entry


def _write_ground_truth(world: World, plan: DomainPlan, gt_dir: Path, entry: dict) -> None:
    path = gt_dir / f"{plan.name}.parquet"
    plan.ground_truth.to_parquet(path, index=False)
    spec = world.preset.single_camera
    requested = {k: getattr(spec, k) for k in NOISE_RATES}
    # Measured on the file as written, so the numbers describe what users actually get.
    noise = {"requested": requested, "realized": realized_noise(pd.read_parquet(path))}
    write_json_atomic(gt_dir / f"{plan.name}_noise.json", noise)
    entry["ground_truth"] = f"{GROUND_TRUTH}/{plan.name}.parquet"
    entry["noise"] = noise


def _styles_table(world: World) -> pd.DataFrame:
    """Latent style of every camera/video: lets tests and notebooks measure style breadth."""
    parts = []
    for plan in world.domains:
        part = pd.DataFrame(plan.style_latent.astype(np.float32), columns=list(STYLE_DIMS))
        part.insert(0, "camera", pd.array(plan.style_names, dtype="string"))
        part.insert(0, "domain", pd.array([plan.name] * len(part), dtype="string"))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
