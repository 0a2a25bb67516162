"""The named presets: ``tiny`` (tests), ``default`` (demo and ablations), ``large`` (benchmarks).

Domain roles mirror the paper's multi-source protocol: Duke + MSMT + CUHK style sources
(few similar cameras each), Market-like and night-time targets that no source resembles,
and a LUPerson-NL-like single-camera domain whose videos span every condition.
"""

from __future__ import annotations

from dynamix.errors import DynamixError
from dynamix.synth.presets import IdentityPrior, LabelledDomainSpec, Preset, SingleCameraSpec

SUMMER = IdentityPrior(neutral_rate=0.35, value=0.75, saturation=0.7, summer_rate=0.7)
NIGHT_OUT = IdentityPrior(neutral_rate=0.6, value=0.55, summer_rate=0.25, hat_rate=0.2)
WINTER = IdentityPrior(neutral_rate=0.7, value=0.5, saturation=0.5, summer_rate=0.08)
CAMPUS = IdentityPrior(neutral_rate=0.5, hue=0.6, hue_spread=0.25, skin_dark=0.55)
STREET = IdentityPrior(neutral_rate=0.5, summer_rate=0.4, pattern_rate=0.35)
# Share of (person, video) appearances a tracker splits over >= 2 pseudo ids: the commonest
# tracker error (docs/synthetic-world.md justifies it). With 1-2 tracklets per appearance
# about half the appearances can be split, so 0.3 splits ~60 % of those.
FRAGMENT_RATE = 0.3


def _world(
    name: str,
    size: tuple[int, int],
    scale: dict[str, tuple[int, int]],
    extras: dict[str, tuple[int, int]],
    single: SingleCameraSpec,
    images: tuple[int, int] = (2, 5),
) -> Preset:
    """Assemble the six domains; ``scale`` gives (train_ids, test_ids) per domain."""
    lo = (images[0], max(images[0], images[1] - 1))
    labelled = (
        LabelledDomainSpec(
            "market-syn",
            "market1501",
            "target",
            6,
            *scale["market-syn"],
            cameras_per_id=(2, 4),
            images_per_camera=images,
            distractors=extras["market-syn"][0],
            junk=extras["market-syn"][1],
            style="daylight",
            camera_spread=0.2,
            identity=SUMMER,
        ),
        LabelledDomainSpec(
            "night-syn",
            "market1501",
            "target",
            4,
            *scale["night-syn"],
            cameras_per_id=(2, 3),
            images_per_camera=images,
            distractors=extras["night-syn"][0],
            junk=extras["night-syn"][1],
            style="night",
            camera_spread=0.15,
            identity=NIGHT_OUT,
        ),
        LabelledDomainSpec(
            "duke-syn",
            "dukemtmc",
            "source",
            8,
            *scale["duke-syn"],
            cameras_per_id=(2, 4),
            images_per_camera=lo,
            style="overcast",
            identity=WINTER,
        ),
        LabelledDomainSpec(
            "msmt-syn",
            "msmt17",
            "source",
            15,
            *scale["msmt-syn"],
            cameras_per_id=(2, 4),
            images_per_camera=lo,
            val_fraction=0.07,
            style="mixed",
            style_offset=(("exposure", -0.3),),
            camera_spread=0.6,
        ),
        LabelledDomainSpec(
            "cuhk-syn",
            "cuhk03-np",
            "source",
            2,
            *scale["cuhk-syn"],
            cameras_per_id=(2, 2),
            images_per_camera=(3, 5),
            camera_pairs=3,
            style="indoor",
            identity=CAMPUS,
        ),
    )
    return Preset(name, size, labelled, single)


TINY = _world(
    "tiny",
    (64, 32),
    {"market-syn": (6, 8), "night-syn": (5, 8), "duke-syn": (8, 4), "msmt-syn": (8, 4), "cuhk-syn": (6, 4)},
    {"market-syn": (6, 4), "night-syn": (4, 3)},
    SingleCameraSpec(
        "lupnl-syn",
        num_videos=8,
        num_persons=24,
        multi_video_rate=0.25,
        switch_rate=0.2,
        junk_rate=0.1,
        fragment_rate=FRAGMENT_RATE,
        tracklets_per_appearance=(1, 2),
        tracklet_length=(3, 5),
        identity=STREET,
    ),
    images=(2, 3),
)

DEFAULT = _world(
    "default",
    (128, 64),
    {
        "market-syn": (100, 120),
        "night-syn": (80, 120),
        "duke-syn": (200, 60),
        "msmt-syn": (220, 60),
        "cuhk-syn": (200, 60),
    },
    {"market-syn": (400, 150), "night-syn": (300, 100)},
    SingleCameraSpec(
        "lupnl-syn",
        num_videos=400,
        num_persons=2600,
        multi_video_rate=0.15,
        switch_rate=0.1,
        junk_rate=0.05,
        fragment_rate=FRAGMENT_RATE,
        tracklets_per_appearance=(1, 2),
        tracklet_length=(4, 10),
        identity=STREET,
    ),
)

LARGE = _world(
    "large",
    (128, 64),
    {
        "market-syn": (300, 300),
        "night-syn": (250, 300),
        "duke-syn": (700, 200),
        "msmt-syn": (1000, 300),
        "cuhk-syn": (700, 200),
    },
    {"market-syn": (1500, 500), "night-syn": (1000, 300)},
    SingleCameraSpec(
        "lupnl-syn",
        num_videos=24000,
        num_persons=85000,
        multi_video_rate=0.15,
        switch_rate=0.1,
        junk_rate=0.05,
        fragment_rate=FRAGMENT_RATE,
        tracklets_per_appearance=(1, 2),
        tracklet_length=(4, 10),
        identity=STREET,
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (TINY, DEFAULT, LARGE)}


def get_preset(name: str | Preset) -> Preset:
    """A preset by name (or the preset itself), with a one-line error for unknown names."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise DynamixError(f"unknown synth preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
