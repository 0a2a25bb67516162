"""Planning of the single-camera pseudo-labelled domain (LUPerson-NL style) and its noise.

Street videos -> person tracklets -> pseudo pids: one pseudo pid per (person, video) unless
the tracker fragments it into several, so a pseudo pid never spans two videos. Four kinds
of label noise are injected at exact, configurable rates (``round(rate * N)`` items, so the
realised rates match the request up to rounding): persons filmed in several videos (one
pseudo pid per video, to be merged), fragmented appearances (a person's tracklets in one
video split over several pseudo pids, as when a tracker loses someone behind an occluder:
to be merged), identity switches inside tracklets (to be relabeled) and junk crops (to be
filtered).
The truth is kept in a ground-truth table that training code never reads.

Fragmentation draws from its own random stream and only renames the pseudo pid of split
tracklets, so turning it on or off leaves every image, path and other label unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynamix.errors import DynamixError
from dynamix.synth import geometry, writers
from dynamix.synth.identity import sample_identities
from dynamix.synth.plan import (
    KIND_BACKGROUND,
    KIND_PARTIAL,
    KIND_PERSON,
    STREAM_FRAGMENT,
    STREAM_PLAN,
    DomainPlan,
)
from dynamix.synth.presets import SingleCameraSpec
from dynamix.synth.style import archetype, sample_broad, style_params
from dynamix.synth.summary import single_camera_counts

MAX_FRAME = 9999


def plan_single_camera(spec: SingleCameraSpec, index: int, seed: int, image_size: tuple[int, int]) -> DomainPlan:
    """Plan every image, pseudo label and ground-truth row of the single-camera domain."""
    rng = np.random.default_rng([seed, index, STREAM_PLAN, 0])
    centres = np.stack([archetype(name) for name in spec.archetypes])
    latent = sample_broad(rng, spec.num_videos, centres, spec.archetype_rate, spec.archetype_spread, spec.broad_sd)
    styles = style_params(latent, image_size[0])
    identities = sample_identities(rng, spec.num_persons, spec.identity)
    app_person, app_video = _appearances(rng, spec)
    tracks = _tracklets(rng, spec, app_person, app_video)
    frames = _frames(rng, spec, tracks, app_person)
    _geometry(rng, frames, tracks, styles)
    frames["key"] = np.arange(len(frames), dtype=np.int64)
    pseudo = rng.permutation(len(app_person))  # pseudo pids carry no order information
    track_pid, fragmented = _fragments(spec, np.random.default_rng([seed, index, STREAM_FRAGMENT, 0]), tracks, pseudo)
    t = frames["tracklet"].to_numpy()
    video = tracks["video"][t]
    frames["path"] = writers.single_camera_paths(video, t, frames["frame"].to_numpy())
    gt = pd.DataFrame(
        {
            "path": frames["path"].astype("string"),
            "pseudo_pid": track_pid[t].astype(np.int64),
            "true_id": np.where(frames["noise"] == "junk", -1, frames["identity"]).astype(np.int64),
            "video": pd.array([f"v{v:05d}" for v in video], dtype="string"),
            "tracklet": pd.array([f"t{x:06d}" for x in t], dtype="string"),
            "noise": frames["noise"].astype("string"),
            "fragmented": fragmented[tracks["appearance"][t]],
        }
    )
    names = [f"v{v:05d}" for v in range(spec.num_videos)]
    plan = DomainPlan(
        spec.name,
        index,
        "single_camera",
        "single_camera",
        "jpg",
        frames,
        identities,
        styles,
        latent,
        names,
        single_camera_counts(gt),
        {"num_cameras": spec.num_videos},
    )
    plan.lists["pseudo_labels.txt"] = writers.list_lines(gt["path"].tolist(), gt["pseudo_pid"])
    plan.ground_truth = gt
    return plan


def _appearances(rng: np.random.Generator, spec: SingleCameraSpec):
    """(person, video) pairs sorted by video; exactly round(rate*P) persons in >= 2 videos."""
    n_p, n_v = spec.num_persons, spec.num_videos
    multi = np.zeros(n_p, dtype=bool)
    multi[rng.choice(n_p, size=round(spec.multi_video_rate * n_p), replace=False)] = True
    lo, hi = spec.videos_per_multi_person
    k = np.where(multi, rng.integers(lo, hi + 1, size=n_p), 1)
    # Distinct videos per person: base + j * step (mod V) with (k-1) * step < V.
    base = rng.integers(n_v, size=n_p)
    step = 1 + (rng.random(n_p) * ((n_v - 1) // np.maximum(k - 1, 1))).astype(np.int64)
    # Single-video persons cover every video twice first: each video gets a switch partner.
    singles = np.flatnonzero(~multi)
    fill = np.concatenate([np.tile(np.arange(n_v), 2), rng.integers(n_v, size=len(singles))])
    base[singles] = rng.permutation(fill[: len(singles)])
    person = np.repeat(np.arange(n_p), k)
    video = (base[person] + geometry.grouped_arange(k) * step[person]) % n_v
    order = np.lexsort((rng.random(len(person)), video))
    return person[order], video[order]


def _tracklets(rng: np.random.Generator, spec: SingleCameraSpec, app_person, app_video):
    """Tracklets of every appearance; exactly round(rate*T) of them switch identity."""
    n_app = len(app_person)
    lo, hi = spec.tracklets_per_appearance
    per_app = rng.integers(lo, hi + 1, size=n_app)
    appearance = np.repeat(np.arange(n_app), per_app)
    n_t = len(appearance)
    lo, hi = spec.tracklet_length
    length = rng.integers(lo, hi + 1, size=n_t)
    video = app_video[appearance]
    switch_at = np.full(n_t, -1)
    chosen = rng.choice(n_t, size=round(spec.switch_rate * n_t), replace=False)
    switch_at[chosen] = 1 + (rng.random(len(chosen)) * (length[chosen] - 1)).astype(np.int64)
    # The partner is another appearance (so another person) of the same video.
    starts = np.searchsorted(app_video, np.arange(spec.num_videos))
    counts = np.bincount(app_video, minlength=spec.num_videos)
    own = appearance[chosen]
    v = app_video[own]
    other = starts[v] + (rng.random(len(chosen)) * (counts[v] - 1)).astype(np.int64)
    other += other >= own
    partner = np.full(n_t, -1)
    partner[chosen] = app_person[other]
    return {
        "appearance": appearance,
        "video": video,
        "length": length,
        "switch_at": switch_at,
        "partner": partner,
    }


def _fragments(
    spec: SingleCameraSpec, rng: np.random.Generator, tracks, pseudo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo pid per tracklet; exactly round(rate*A) appearances split over >= 2 pseudo pids.

    A fragmented appearance with k tracklets is cut into m pieces, m uniform in [2, k], each
    piece a non-empty random set of its tracklets. One piece keeps the appearance's pseudo
    pid and the others get new ones above every unsplit pid, so no other label changes.
    Returns (pseudo pid of each tracklet, fragmented flag of each appearance).
    """
    appearance = tracks["appearance"]
    n_app = len(pseudo)
    per_app = np.bincount(appearance, minlength=n_app)
    eligible = np.flatnonzero(per_app >= 2)
    n_frag = round(spec.fragment_rate * n_app)
    if n_frag > len(eligible):
        raise DynamixError(
            f"preset {spec.name}: fragment_rate={spec.fragment_rate} asks for {n_frag} split appearances but "
            f"only {len(eligible)} of {n_app} have >= 2 tracklets; lower fragment_rate or raise "
            "tracklets_per_appearance"
        )
    fragmented = np.zeros(n_app, dtype=bool)
    fragmented[rng.choice(eligible, size=n_frag, replace=False)] = True
    track_pid = pseudo[appearance].copy()
    # Tracklets of an appearance are contiguous (appearance is sorted): rank them randomly.
    split = np.flatnonzero(fragmented[appearance])
    group = appearance[split]
    k = per_app[fragmented]
    pieces = 2 + (rng.random(n_frag) * (k - 1)).astype(np.int64)
    m = np.repeat(pieces, k)
    order = np.lexsort((rng.random(len(split)), group))
    rank = np.empty(len(split), dtype=np.int64)
    rank[order] = geometry.grouped_arange(k)
    # The first m ranks make every piece non-empty; the rest join a random piece.
    piece = np.where(rank < m, rank, (rng.random(len(split)) * m).astype(np.int64))
    first_new = np.repeat(np.cumsum(pieces - 1) - (pieces - 1), k)  # offset of the group's new pids
    new_pid = n_app + rng.permutation(int((pieces - 1).sum()))  # new pids carry no order either
    extra = piece > 0
    track_pid[split[extra]] = new_pid[first_new[extra] + piece[extra] - 1]
    return track_pid, fragmented


def _frames(rng: np.random.Generator, spec: SingleCameraSpec, tracks, app_person) -> pd.DataFrame:
    """Person frames of every tracklet plus exactly round(r*P/(1-r)) inserted junk frames."""
    length = tracks["length"]
    tracklet = np.repeat(np.arange(len(length)), length)
    pos = geometry.grouped_arange(length)
    switched = (tracks["switch_at"][tracklet] >= 0) & (pos >= tracks["switch_at"][tracklet])
    own = app_person[tracks["appearance"][tracklet]]
    identity = np.where(switched, tracks["partner"][tracklet], own)
    n_person = len(tracklet)
    n_junk = round(spec.junk_rate * n_person / (1.0 - spec.junk_rate))
    junk_t = rng.integers(len(length), size=n_junk)
    junk_kind = np.where(rng.random(n_junk) < 0.5, KIND_BACKGROUND, KIND_PARTIAL)
    df = pd.DataFrame(
        {
            "tracklet": np.r_[tracklet, junk_t],
            "order": np.r_[pos.astype(np.float64), rng.random(n_junk) * length[junk_t]],
            "identity": np.r_[identity, app_person[tracks["appearance"][junk_t]]],
            "kind": np.r_[np.full(n_person, KIND_PERSON), junk_kind].astype(np.int8),
            "noise": np.r_[np.where(switched, "switch", "clean"), np.full(n_junk, "junk")],
        }
    )
    df = df.sort_values(["tracklet", "order"], kind="stable", ignore_index=True)
    t = df["tracklet"].to_numpy()
    df["pos"] = geometry.grouped_arange(np.bincount(t, minlength=len(length)))
    total = np.bincount(t, minlength=len(length))
    start = (rng.random(len(length)) * (MAX_FRAME + 1 - total)).astype(np.int64)
    df["frame"] = start[t] + df["pos"].to_numpy()
    df["style"] = tracks["video"][t]
    return df.drop(columns="order")


def _geometry(rng: np.random.Generator, df: pd.DataFrame, tracks, styles) -> None:
    """Smooth motion inside a tracklet: consecutive crops differ only a little."""
    n_t, n = len(tracks["length"]), len(df)
    t, pos = df["tracklet"].to_numpy(), df["pos"].to_numpy().astype(np.float64)
    shift_sd = styles["shift_sd"][tracks["video"]].astype(np.float64)
    scale_sd = styles["scale_sd"][tracks["video"]].astype(np.float64)
    base = geometry.boxes(rng.standard_normal((n_t, 3)), shift_sd, scale_sd)
    velocity = 0.004 * rng.standard_normal(n_t)
    jitter = 0.15 * shift_sd[t]
    df["cx"] = geometry.quantise(base["cx"][t] + velocity[t] * pos + jitter * rng.standard_normal(n))
    df["top"] = geometry.quantise(base["top"][t] + jitter * rng.standard_normal(n))
    df["height"] = geometry.quantise(base["height"][t] * (1 + 0.01 * rng.standard_normal(n)))
    pose = geometry.poses(rng, n_t)
    df["view"] = pose["view"][t]
    df["phase"] = geometry.quantise(pose["phase"][t] + 0.8 * pos)
    df["lean"] = pose["lean"][t]
    win = geometry.windows(rng, n_t)
    drift = 0.02 * rng.standard_normal(n_t)
    df["bg_x"] = geometry.quantise(np.clip(win["bg_x"][t] + drift[t] * pos, 0.0, 1.0))
    df["bg_y"] = win["bg_y"][t]
    partial = df["kind"].to_numpy() == KIND_PARTIAL
    for col, val in geometry.junk_boxes(rng, int(partial.sum())).items():
        df.loc[partial, col] = val
