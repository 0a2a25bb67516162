"""Presets of the synthetic world: how many people, cameras and images each domain gets.

A preset is a frozen value, so it can be logged, compared and derived with
``dataclasses.replace`` (the ``large`` benchmark is checked by running a scaled copy of it
through the same code path). Validation happens at construction: a preset that could not
honour a layout rule (a query without a cross-camera match, a camera number that does not
fit its file-name field) is rejected before any image is drawn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dynamix.errors import DynamixError

LAYOUTS = ("market1501", "dukemtmc", "msmt17", "cuhk03-np")
ROLES = ("source", "target")
# Largest camera number each layout's file-name field can hold.
MAX_CAMERAS = {"market1501": 9, "dukemtmc": 9, "msmt17": 99, "cuhk03-np": 2}


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise DynamixError(f"preset {where}: {message}")


def _check_range(pair: tuple[int, int], where: str, name: str, low: int) -> None:
    _check(low <= pair[0] <= pair[1], where, f"{name}={pair} must satisfy {low} <= min <= max")


@dataclass(frozen=True)
class IdentityPrior:
    """Where a domain's people come from: its clothing palette and habits.

    ``neutral_rate`` is the share of garments drawn from the common dark/neutral palette
    (black, grey, navy, denim...). High values make many people look alike, which is what
    makes re-ID hard for colour-only descriptors.
    """

    neutral_rate: float = 0.5
    hue: float | None = None  # preferred hue of coloured garments in [0, 1); None = any
    hue_spread: float = 0.15
    saturation: float = 0.6
    value: float = 0.65
    summer_rate: float = 0.3  # short sleeves and shorts/skirts
    pattern_rate: float = 0.3
    bag_rate: float = 0.45
    hat_rate: float = 0.1
    long_hair_rate: float = 0.3
    skin_dark: float = 0.35  # mean position on the light -> dark skin axis


@dataclass(frozen=True)
class LabelledDomainSpec:
    """A labelled multi-camera dataset: few, similar cameras around one style centre."""

    name: str
    layout: str
    role: str
    num_cameras: int
    train_ids: int
    test_ids: int
    cameras_per_id: tuple[int, int] = (2, 3)
    images_per_camera: tuple[int, int] = (2, 4)
    distractors: int = 0  # gallery images with pid 0 (market1501 only)
    junk: int = 0  # gallery images with pid -1 (market1501 only)
    val_fraction: float = 0.0  # share of train images listed in list_val.txt (msmt17)
    camera_pairs: int = 1  # physical camera pairs behind the two views (cuhk03-np)
    style: str = "mixed"  # archetype name, see dynamix.synth.style.ARCHETYPES
    style_offset: tuple[tuple[str, float], ...] = ()
    camera_spread: float = 0.3
    identity: IdentityPrior = field(default_factory=IdentityPrior)

    def __post_init__(self) -> None:
        w = self.name
        _check(self.layout in LAYOUTS, w, f"layout {self.layout!r} not in {LAYOUTS}")
        _check(self.role in ROLES, w, f"role {self.role!r} not in {ROLES}")
        _check(
            1 <= self.num_cameras <= MAX_CAMERAS[self.layout],
            w,
            f"num_cameras={self.num_cameras} must be 1..{MAX_CAMERAS[self.layout]} for layout {self.layout}",
        )
        _check(self.train_ids >= 1 and self.test_ids >= 1, w, "train_ids and test_ids >= 1")
        _check(self.train_ids + self.test_ids <= 9999, w, "at most 9999 ids (4-digit pids)")
        _check_range(self.cameras_per_id, w, "cameras_per_id", 2)
        _check(self.cameras_per_id[1] <= self.num_cameras, w, "cameras_per_id > num_cameras")
        # Two images per (id, camera) let every query keep a gallery image in each camera.
        _check_range(self.images_per_camera, w, "images_per_camera", 2)
        _check(self.distractors >= 0 and self.junk >= 0, w, "distractors/junk must be >= 0")
        _check(
            self.layout == "market1501" or self.distractors == self.junk == 0,
            w,
            "distractors/junk exist only in the market1501 layout",
        )
        _check(0.0 <= self.val_fraction < 0.5, w, "val_fraction must be in [0, 0.5)")
        _check(
            self.layout != "cuhk03-np" or self.cameras_per_id == (2, 2),
            w,
            "cuhk03-np shows every identity in exactly its 2 views: cameras_per_id=(2, 2)",
        )
        _check(self.camera_pairs >= 1, w, "camera_pairs must be >= 1")

    @property
    def num_styles(self) -> int:
        """Physical cameras: CUHK03 names only the view, but each pair films differently."""
        return 2 * self.camera_pairs if self.layout == "cuhk03-np" else self.num_cameras


@dataclass(frozen=True)
class SingleCameraSpec:
    """The LUPerson-NL-like domain: many videos, tracklets, pseudo pids with noise.

    Each video's style is drawn from a broad prior (a mixture of condition archetypes and
    a wide Gaussian over the whole style space), far broader than any labelled domain.

    ``fragment_rate`` is the share of (person, video) appearances whose tracklets a tracker
    failed to link: their tracklets are split over >= 2 pseudo ids of the same video, the
    commonest tracker error. Only appearances with >= 2 tracklets can be split, so the rate
    must stay below the share of such appearances (checked when the domain is planned).
    """

    name: str
    num_videos: int
    num_persons: int
    multi_video_rate: float
    switch_rate: float
    junk_rate: float
    fragment_rate: float = 0.0
    videos_per_multi_person: tuple[int, int] = (2, 3)
    tracklets_per_appearance: tuple[int, int] = (1, 3)
    tracklet_length: tuple[int, int] = (4, 10)
    archetypes: tuple[str, ...] = ("daylight", "overcast", "night", "indoor", "dusk", "cctv")
    archetype_rate: float = 0.6
    archetype_spread: float = 0.6
    broad_sd: float = 1.2
    identity: IdentityPrior = field(default_factory=IdentityPrior)

    def __post_init__(self) -> None:
        w = self.name
        for key in ("multi_video_rate", "switch_rate", "junk_rate", "fragment_rate", "archetype_rate"):
            value = getattr(self, key)
            _check(0.0 <= value <= 1.0, w, f"{key}={value} must be in [0, 1]")
        _check(self.junk_rate < 1.0, w, "junk_rate must be < 1")
        _check(self.num_videos >= 1, w, "num_videos must be >= 1")
        _check(self.num_videos <= 99999, w, "at most 99999 videos (5-digit video names)")
        _check_range(self.videos_per_multi_person, w, "videos_per_multi_person", 2)
        _check(
            self.multi_video_rate == 0 or self.videos_per_multi_person[1] <= self.num_videos,
            w,
            "videos_per_multi_person exceeds num_videos",
        )
        _check_range(self.tracklets_per_appearance, w, "tracklets_per_appearance", 1)
        # A fragmented appearance splits its tracklets, so it needs at least two of them.
        _check(
            self.fragment_rate == 0 or self.tracklets_per_appearance[1] >= 2,
            w,
            f"fragment_rate={self.fragment_rate} needs tracklets_per_appearance max >= 2",
        )
        # A switch needs a frame before and after it.
        _check_range(self.tracklet_length, w, "tracklet_length", 2)
        _check(self.tracklet_length[1] <= 1000, w, "tracklet_length max must be <= 1000")
        singles = self.num_persons - round(self.multi_video_rate * self.num_persons)
        # Two single-video people per video guarantee every video has a switch partner.
        _check(
            singles >= 2 * self.num_videos,
            w,
            f"needs >= 2 single-video persons per video ({singles} for {self.num_videos} videos)",
        )


@dataclass(frozen=True)
class Preset:
    """A whole world: labelled domains (sources and targets) plus the single-camera domain."""

    name: str
    image_size: tuple[int, int]  # (H, W)
    labelled: tuple[LabelledDomainSpec, ...]
    single_camera: SingleCameraSpec

    def __post_init__(self) -> None:
        names = [d.name for d in self.labelled] + [self.single_camera.name]
        _check(len(set(names)) == len(names), self.name, f"duplicate domain names {names}")
        check_image_size(self.image_size)

    def with_image_size(self, size: tuple[int, int] | None) -> Preset:
        return self if size is None else dataclasses.replace(self, image_size=tuple(size))


def check_image_size(size: tuple[int, int], what: str = "image size") -> tuple[int, int]:
    """Reject sizes the renderer cannot draw a recognisable person into."""
    h, w = (int(v) for v in size)
    if not (32 <= h <= 1024 and 16 <= w <= 1024):
        raise DynamixError(f"{what} {h}x{w} out of range; use HxW with 32 <= H <= 1024, 16 <= W <= 1024 (e.g. 128x64)")
    return h, w
