"""Planning of the labelled multi-camera domains (Market, Duke, MSMT17, CUHK03-NP layouts).

Every identity is seen by a few of the domain's cameras, a handful of consecutive frames
per camera (a short track, as in the real releases). Test identities give one query per
camera they appear in; at least two images per (id, camera) and two cameras per id make
every query keep a same-id gallery image in another camera, which the Market protocol
needs for the query to count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynamix.synth import geometry, writers
from dynamix.synth.identity import sample_identities
from dynamix.synth.plan import KIND_BACKGROUND, KIND_PARTIAL, KIND_PERSON, STREAM_PLAN, DomainPlan
from dynamix.synth.presets import LabelledDomainSpec
from dynamix.synth.style import archetype, sample_around, style_params
from dynamix.synth.summary import DISTRACTOR, JUNK, PERSON, split_counts

CUHK_LABELED_JITTER, CUHK_DETECTED_JITTER = 0.5, 2.2


def plan_labelled(spec: LabelledDomainSpec, index: int, seed: int, image_size: tuple[int, int]) -> DomainPlan:
    """Plan every file of one labelled domain."""
    rng = np.random.default_rng([seed, index, STREAM_PLAN, 0])
    centre = archetype(spec.style, spec.style_offset)
    latent = sample_around(rng, spec.num_styles, centre, spec.camera_spread)
    styles = style_params(latent, image_size[0])
    n_ids = spec.train_ids + spec.test_ids
    extra_people = (spec.distractors + 1) // 2
    identities = sample_identities(rng, n_ids + extra_people, spec.identity)
    df = pd.concat(
        [
            _people(rng, spec, n_ids),
            _extras(rng, spec.num_cameras, spec.distractors, DISTRACTOR, n_ids, extra_people),
            _extras(rng, spec.num_cameras, spec.junk, JUNK, 0, n_ids + extra_people),
        ],
        ignore_index=True,
    )
    if spec.layout == "cuhk03-np":  # each person walks past one of the camera pairs
        pair = rng.integers(spec.camera_pairs, size=n_ids + extra_people)
        df["style"] = 2 * pair[df["identity"].to_numpy()] + df["cam"].to_numpy()
    else:
        df["style"] = df["cam"]
    df["key"] = np.arange(len(df), dtype=np.int64)
    df["pid"] = _pids(rng, spec, df)
    pose = geometry.poses(rng, len(df))  # views were planned per track above
    df["phase"], df["lean"] = pose["phase"], pose["lean"]
    for col, val in geometry.windows(rng, len(df)).items():
        df[col] = val
    noise = rng.standard_normal((len(df), 3))
    names = [f"c{c + 1}" for c in range(spec.num_styles)]
    info = {"num_cameras": spec.num_cameras}
    plan = DomainPlan(
        spec.name,
        index,
        spec.layout,
        spec.role,
        "jpg",
        df,
        identities,
        styles,
        latent,
        names,
        {},
        info,
    )
    if spec.layout == "cuhk03-np":
        _finish_cuhk(spec, plan, noise)
        return plan
    _set_boxes(df, noise, styles, np.where(df["label"] == DISTRACTOR, 1.5, 1.0))
    junk = df["label"].to_numpy() == JUNK
    for col, val in geometry.junk_boxes(rng, int(junk.sum())).items():
        df.loc[junk, col] = val
    df["frame"] = _frames(rng, df)
    if spec.layout == "msmt17":
        _finish_msmt(rng, spec, plan)
    else:
        _finish_market_like(rng, spec, plan)
    return plan


def _people(rng: np.random.Generator, spec: LabelledDomainSpec, n_ids: int) -> pd.DataFrame:
    """Rows of real identities: id -> a few cameras -> a short track per camera."""
    lo, hi = spec.cameras_per_id
    n_cams = rng.integers(lo, hi + 1, size=n_ids)
    cam_order = np.argsort(rng.random((n_ids, spec.num_cameras)), axis=1)
    app_id = np.repeat(np.arange(n_ids), n_cams)
    app_cam = cam_order[app_id, geometry.grouped_arange(n_cams)]
    app_view = rng.integers(4, size=len(app_id))
    lo, hi = spec.images_per_camera
    n_img = rng.integers(lo, hi + 1, size=len(app_id))
    group = np.repeat(np.arange(len(app_id)), n_img)
    rank = geometry.grouped_arange(n_img)
    ident = app_id[group]
    keep_view = rng.random(len(group)) < 0.7
    view = np.where(keep_view, app_view[group], rng.integers(4, size=len(group)))
    test = ident >= spec.train_ids
    split = np.where(~test, "train", np.where(rank == 0, "query", "gallery"))
    return pd.DataFrame(
        {
            "identity": ident,
            "cam": app_cam[group],
            "group": group,
            "rank": rank,
            "split": split,
            "label": PERSON,
            "kind": KIND_PERSON,
            "view": view.astype(np.int8),
        }
    )


def _extras(rng: np.random.Generator, n_cams: int, n: int, label: str, first_id: int, n_people: int) -> pd.DataFrame:
    """Distractors (people outside the id set) or junk (bad boxes), single gallery images."""
    kind = np.full(n, KIND_PERSON)
    if label == JUNK:
        kind = np.where(rng.random(n) < 0.5, KIND_BACKGROUND, KIND_PARTIAL)
    return pd.DataFrame(
        {
            "identity": first_id + rng.integers(max(n_people, 1), size=n),
            "cam": rng.integers(n_cams, size=n),
            "group": -1 - np.arange(n),  # every extra is its own track
            "rank": 0,
            "split": "gallery",
            "label": label,
            "kind": kind,
            "view": rng.integers(4, size=n).astype(np.int8),
        }
    )


def _pids(rng: np.random.Generator, spec: LabelledDomainSpec, df: pd.DataFrame) -> np.ndarray:
    """Market/Duke/CUHK: train and test pids interleaved in 1..N; MSMT: 0-based per split."""
    n_ids = spec.train_ids + spec.test_ids
    if spec.layout == "msmt17":
        table = np.concatenate([rng.permutation(spec.train_ids), rng.permutation(spec.test_ids)])
    else:
        table = 1 + rng.permutation(n_ids)
    label = df["label"].to_numpy()
    pid = np.where(label == DISTRACTOR, 0, -1)
    person = label == PERSON
    pid[person] = table[df["identity"].to_numpy()[person]]
    return pid


def _set_boxes(df: pd.DataFrame, noise: np.ndarray, styles: dict[str, np.ndarray], mult: np.ndarray | float) -> None:
    style = df["style"].to_numpy()
    shift = styles["shift_sd"][style] * mult
    scale = styles["scale_sd"][style] * mult
    for col, val in geometry.boxes(noise, shift, scale).items():
        df[col] = val


def _frames(rng: np.random.Generator, df: pd.DataFrame) -> np.ndarray:
    """Frame numbers unique within each camera; a track's frames are close together."""
    cam, group, rank = (df[c].to_numpy() for c in ("cam", "group", "rank"))
    _, group_index = np.unique(group, return_inverse=True)
    order = np.lexsort((rank, rng.random(group_index.max() + 1)[group_index], cam))
    n = len(df)
    step = np.where(rank[order] == 0, rng.integers(40, 400, size=n), rng.integers(3, 25, size=n))
    total = np.cumsum(step)
    cam_sorted = cam[order]
    first = np.r_[True, cam_sorted[1:] != cam_sorted[:-1]]
    base = np.maximum.accumulate(np.where(first, total - step, 0))
    frames = np.empty(n, dtype=np.int64)
    frames[order] = total - base
    return frames


def _finish_market_like(rng: np.random.Generator, spec: LabelledDomainSpec, plan: DomainPlan):
    df = plan.images
    cam, frame = df["cam"].to_numpy(), df["frame"].to_numpy()
    if spec.layout == "market1501":
        if frame.max() > 999_999:
            raise ValueError(f"{spec.name}: too many frames per camera for 6-digit frames")
        per_cam = df.groupby("cam")["frame"].transform("max").to_numpy()
        seq = 1 + np.minimum(5, (frame * 6) // (per_cam + 1))
        box = rng.choice([1, 2, 3, 4], size=len(df), p=[0.7, 0.15, 0.1, 0.05])
        paths = writers.market_paths(df["split"], df["pid"], cam, seq, frame, box)
    else:
        offset = rng.integers(0, 200_000, size=spec.num_cameras)
        paths = writers.duke_paths(df["split"], df["pid"], cam, frame + offset[cam])
    df["path"] = paths
    plan.counts = split_counts(df, ("train", "query", "gallery"))


def _finish_msmt(rng: np.random.Generator, spec: LabelledDomainSpec, plan: DomainPlan) -> None:
    df = plan.images
    train = df["split"].to_numpy() == "train"
    # list_val.txt: a subset of train images; every id keeps its first image in list_train.
    eligible = np.flatnonzero(train & df.duplicated("identity", keep="first").to_numpy())
    n_val = min(len(eligible), round(spec.val_fraction * int(train.sum())))
    split = df["split"].to_numpy().copy()
    split[rng.choice(eligible, size=n_val, replace=False)] = "val"
    df["split"] = split
    in_test = (~train).astype(np.int64)
    pid = df["pid"].to_numpy()
    order = np.lexsort((df["rank"].to_numpy(), df["cam"].to_numpy(), pid, in_test))
    index = geometry.rank_in_groups(order, in_test * (pid.max() + 1) + pid)
    group = df["group"].to_numpy()
    daytime = rng.integers(len(writers.MSMT_DAYTIMES), size=group.max() + 1)[group]
    names = writers.msmt_names(df["pid"], index, df["cam"], daytime, df["frame"])
    df["path"] = [("train/" if t else "test/") + n for t, n in zip(train, names, strict=True)]
    for split_name in ("train", "val", "query", "gallery"):
        rows = df[df["split"] == split_name]
        rel = [p.split("/", 1)[1] for p in rows["path"]]
        plan.lists[f"list_{split_name}.txt"] = writers.list_lines(rel, rows["pid"])
    counts = split_counts(df, ("train", "val", "query", "gallery"))
    trainval = df[df["split"].isin(["train", "val"])]
    counts["trainval_images"] = len(trainval)
    counts["trainval_ids"] = int(trainval["pid"].nunique())
    plan.counts = counts


def _finish_cuhk(spec: LabelledDomainSpec, plan: DomainPlan, noise: np.ndarray) -> None:
    """Both CUHK03-NP variants: the same frames, hand-drawn (labeled) vs detected boxes.

    The two rows of a frame share its generator key and box noise; only the jitter scale
    differs, so the variants differ exactly by detector quality.
    """
    df = plan.images
    ident = df["identity"].to_numpy()
    order = np.lexsort((df["rank"].to_numpy(), df["cam"].to_numpy(), ident))
    image_index = 1 + geometry.rank_in_groups(order, ident)
    parts = []
    for variant, mult in (("labeled", CUHK_LABELED_JITTER), ("detected", CUHK_DETECTED_JITTER)):
        part = df.copy()
        _set_boxes(part, noise, plan.styles, mult)
        part["variant"] = variant
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["path"] = writers.cuhk_paths(out["variant"], out["split"], out["pid"], out["cam"], np.tile(image_index, 2))
    plan.images, plan.fmt = out, "png"
    plan.counts = {
        v: split_counts(out[out["variant"] == v], ("train", "query", "gallery")) for v in ("labeled", "detected")
    }
    plan.style_names = [f"pair{p + 1}-c{v + 1}" for p in range(spec.camera_pairs) for v in (0, 1)]
    plan.info["num_camera_pairs"] = spec.camera_pairs
