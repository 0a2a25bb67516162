"""``params.yaml`` read into frozen, typed dataclasses.

One file configures everything: DVC stages, Prefect flows and the CLI all go through
:func:`load_params`, so a typo in a key or a wrong type fails at once with the key's full
dotted name, instead of silently falling back to a default deep inside a run.

Every dataclass default equals the value the repo's ``params.yaml`` gives (a test checks
every leaf), so deleting a key never changes the recipe: the file is the measured recipe,
sized for the synthetic world on 2 CPU cores, and its comments say why each value is what
it is. The defaults that are data-specific (the synthetic datasets, their image counts and
camera ranges, the promotion floors measured on them) are copied too, for the same reason.

Settings with a fixed set of values are typed ``Literal[...]`` (``train.device``, whose
``cuda:N`` a Literal cannot list, is an ``Annotated`` pattern), so a bad value fails at
load with the key, the value and the choices, not deep inside a run. Every number carries
its allowed interval the same way (``Annotated[int, Range(ge=1)]``, named below as
``PositiveInt`` and friends): ``train.iters=0`` or ``train.lr=-1`` fails at load with the
key, the value, the interval and the file read (and the ``--set`` item, if one set it),
instead of training nothing and writing an untrained ``best.pt``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml

from dynamix.errors import DynamixError
from dynamix.evaluation.targets import METRIC_KEYS

T = TypeVar("T")


class ConfigError(DynamixError):
    """A key in params.yaml is unknown, missing, or of the wrong type or range.

    ``key`` is the dotted key at fault (None for a problem with the whole file), so that
    :func:`load_params` can say when the value came from a ``--set`` override.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Matches:
    """``Annotated[str, Matches(regex, choices)]``: a setting whose values a Literal can't list.

    ``regex`` must match the whole value; ``choices`` is how the error message shows them.
    """

    regex: str
    choices: str


@dataclass(frozen=True)
class Range:
    """``Annotated[int, Range(ge=1)]``: the interval a number must lie in, checked at load.

    Bounds left None are open. ``multiple_of``: the value must also be a multiple of it.
    NaN lies in no interval. :meth:`describe` is how the error message shows the rule.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    multiple_of: int | None = None

    def allows(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
            and (self.multiple_of is None or value % self.multiple_of == 0)
        )

    def describe(self) -> str:
        """``>= 1``, ``> 0``, ``<= 1``, ``in [0, 1]``, ``in [0, 1)``, ``... and a multiple of 16``."""
        low = ("[", ">=", self.ge) if self.ge is not None else ("(", ">", self.gt) if self.gt is not None else None
        high = ("]", "<=", self.le) if self.le is not None else (")", "<", self.lt) if self.lt is not None else None
        if low and high:
            text = f"in {low[0]}{low[2]:g}, {high[2]:g}{high[0]}"
        elif low or high:
            _, sign, bound = low or high
            text = f"{sign} {bound:g}"
        else:
            text = "a number"
        return text if self.multiple_of is None else f"{text} and a multiple of {self.multiple_of}"


# The intervals of the numeric settings: every int or float field carries one (a test checks).
PositiveInt = Annotated[int, Range(ge=1)]  # iterations, sizes, counts: at least one
NonNegativeInt = Annotated[int, Range(ge=0)]  # 0 = none / off / only at the end
Seed = Annotated[int, Range(ge=0)]  # numpy's generators refuse negative seeds
PositiveFloat = Annotated[float, Range(gt=0)]  # learning rate, temperatures, MAD factor
NonNegativeFloat = Annotated[float, Range(ge=0)]  # loss weights, weight decay, clip, margins: 0 = off
UnitInterval = Annotated[float, Range(ge=0, le=1)]  # rates, momenta, fractions, cosine thresholds, metric floors
HalfOpenUnit = Annotated[float, Range(ge=0, lt=1)]  # drop-path rate, label smoothing: 1 would leave no signal
PATCH = 16  # the patch size of every Arch (a test checks): a ViT's input sides are multiples of it
ImageSide = Annotated[int, Range(ge=PATCH, multiple_of=PATCH)]  # pixels a patch would drop otherwise

# The enum-like settings. Modules that act on them take their lists from here
# (``typing.get_args``), or a test keeps the two equal (see tests/test_config.py).
DatasetFormat = Literal["market1501", "dukemtmc", "msmt17", "cuhk03-np", "single_camera", "cuhk-sysu", "luperson-nl"]
SynthPreset = Literal["tiny", "default", "large"]
Metric = Literal["cosine", "euclidean"]
Arch = Literal["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"]
GlobalPool = Literal["token", "avg"]  # CLS token, or the mean of the patch tokens
Device = Annotated[str, Matches(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N")]
EvalModel = Literal["momentum", "online"]
CentroidDtype = Literal["fp16", "bf16", "fp32"]
ConsistencyKind = Literal["cosine", "kl"]
SingleNegatives = Literal["all", "video"]
MergeScope = Literal["video", "all"]  # PID merging: same-video pairs only | any two ids
SelectionMetric = Literal["mAP", "rank1"]
BankInit = Literal["first_sight", "pass"]
RetryMode = Literal["standard", "adaptive", "legacy"]
ChecksumAlgorithm = Literal["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset on disk and the loader that reads it."""

    name: str
    format: DatasetFormat
    root: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    raw_dir: str = "data/raw"
    manifests_dir: str = "data/manifests"
    preset: SynthPreset = "default"
    seed: Seed = 0
    # the synthetic world of the demo, as in the paper's D+C+M -> Market protocol
    sources: tuple[DatasetSpec, ...] = (
        DatasetSpec("duke-syn", "dukemtmc", "data/raw/duke-syn"),
        DatasetSpec("msmt-syn", "msmt17", "data/raw/msmt-syn", {"merge_val": True}),
        DatasetSpec("cuhk-syn", "cuhk03-np", "data/raw/cuhk-syn", {"variant": "labeled"}),
    )
    single_camera: tuple[DatasetSpec, ...] = (DatasetSpec("lupnl-syn", "single_camera", "data/raw/lupnl-syn"),)
    targets: tuple[DatasetSpec, ...] = (
        DatasetSpec("market-syn", "market1501", "data/raw/market-syn"),
        DatasetSpec("night-syn", "market1501", "data/raw/night-syn"),
    )

    def __post_init__(self) -> None:
        # combine_all turns a dataset's query and gallery into training data: a target would
        # be left with nothing to evaluate on (and trained-on images in its test splits)
        for i, spec in enumerate(self.targets):
            if spec.options.get("combine_all") not in (None, False, "false", "False"):
                raise ConfigError(
                    f"params.yaml: 'data.targets.{i}.options.combine_all' is set on target {spec.name}; "
                    "combine_all makes its query and gallery training data: use it on data.sources only",
                    f"data.targets.{i}.options.combine_all",
                )

    def all_datasets(self) -> tuple[DatasetSpec, ...]:
        return self.sources + self.single_camera + self.targets


@dataclass(frozen=True)
class EvaluationConfig:
    max_rank: PositiveInt = 50
    metric: Metric = "cosine"
    block_size: PositiveInt = 512


@dataclass(frozen=True)
class BaselineConfig:
    """Hand-crafted colour-histogram descriptor: the floor a learned model must beat."""

    stripes: PositiveInt = 8
    bins: PositiveInt = 8


# Images per synthetic preset, dataset and split (validation.expected_counts).
_SYNTH_COUNTS: dict[str, dict[str, dict[str, int]]] = {
    "default": {
        "duke-syn": {"train": 1764, "query": 176, "gallery": 356},
        "msmt-syn": {"train": 1900, "query": 174, "gallery": 375},
        "cuhk-syn": {"train": 1604, "query": 120, "gallery": 369},
        "lupnl-syn": {"train": 34849},
        "market-syn": {"train": 1035, "query": 360, "gallery": 1309},
        "night-syn": {"train": 705, "query": 296, "gallery": 1034},
    },
    "tiny": {
        "duke-syn": {"train": 48, "query": 9, "gallery": 9},
        "msmt-syn": {"train": 48, "query": 15, "gallery": 15},
        "cuhk-syn": {"train": 49, "query": 8, "gallery": 25},
        "lupnl-syn": {"train": 231},
        "market-syn": {"train": 46, "query": 25, "gallery": 40},
        "night-syn": {"train": 34, "query": 23, "gallery": 38},
    },
}


@dataclass(frozen=True)
class SplitCount:
    """Images and identities of one split of a release, as its authors and the peers count them."""

    images: NonNegativeInt
    ids: NonNegativeInt | None = None  # None: not published, not checked


@dataclass(frozen=True)
class ReleaseCounts:
    """The published size of one real release (``validation.published_counts.<format[/variant]>``).

    Counts are what the loaders produce: junk (pid -1) dropped, Market's distractors (pid 0)
    kept in the gallery and counted among its ids. ``val``: MSMT17's ``list_val.txt``
    images, inside ``train`` (``merge_val: true``) and subtracted without it.
    ``distractors``: gallery images of pid 0, left out by ``combine_all``, whose expected
    train split is train + query + gallery − distractors images and train + gallery ids
    (− 1 for pid 0): every query id is a gallery id in these releases. ``check: false``
    skips the entry (a deliberate subset of the release).
    """

    train: SplitCount
    query: SplitCount | None = None
    gallery: SplitCount | None = None
    val: NonNegativeInt = 0
    distractors: NonNegativeInt = 0
    check: bool = True


def _published_counts() -> dict[str, ReleaseCounts]:
    """The releases' published sizes; docs/datasets.md#published-counts cites each one."""
    labeled, detected = (
        ReleaseCounts(SplitCount(train, 767), SplitCount(1400, 700), SplitCount(gallery, 700))
        for train, gallery in ((7368, 5328), (7365, 5332))
    )
    return {
        "market1501": ReleaseCounts(
            SplitCount(12936, 751), SplitCount(3368, 750), SplitCount(15913, 751), distractors=2793
        ),
        "dukemtmc": ReleaseCounts(SplitCount(16522, 702), SplitCount(2228, 702), SplitCount(17661, 1110)),
        "msmt17": ReleaseCounts(SplitCount(32621, 1041), SplitCount(11659, 3060), SplitCount(82161, 3060), val=2373),
        "cuhk03-np/labeled": labeled,
        "cuhk03-np/detected": detected,
        "cuhk-sysu": ReleaseCounts(SplitCount(34574, 11934)),
        "luperson-nl": ReleaseCounts(SplitCount(10683716, 433997), check=False),
    }


@dataclass(frozen=True)
class ValidationConfig:
    """The data-validation gate (``dynamix validate``) run between prepare and baseline.

    ``expected_counts`` maps a synthetic preset (the one recorded in
    ``<data.raw_dir>/world.json``, else ``data.preset``) to ``{dataset: {split: images}}``,
    so a half-copied dataset fails; a preset with no entry skips the count checks.
    ``published_counts`` does the same for the real releases, keyed by ``format`` (or
    ``format/variant`` for CUHK03-NP), on every dataset the synthetic world did not write.
    ``decode_sample`` = 0 decodes every image, N a seeded random sample of N per dataset;
    either way at most ``decode_limit`` per dataset (0 = no limit), so that the gate's
    time stays bounded at 10 M images while every entry's existence and size is checked.
    """

    reports_dir: str = "reports/validation"
    summary_path: str = "metrics/validation.json"
    min_height: PositiveInt = 32
    max_height: PositiveInt = 1024
    min_width: PositiveInt = 16
    max_width: PositiveInt = 512
    decode_sample: NonNegativeInt = 0
    decode_limit: NonNegativeInt = 200_000
    min_file_bytes: NonNegativeInt = 1
    seed: Seed = 0
    min_train_cameras: PositiveInt = 2
    # per-format overrides: CUHK-SYSU's crops carry no camera (every identity has camid 0)
    min_train_cameras_by_format: dict[str, PositiveInt] = field(default_factory=lambda: {"cuhk-sysu": 1})
    camid_max: dict[str, NonNegativeInt] = field(
        default_factory=lambda: {"market1501": 8, "dukemtmc": 8, "msmt17": 14, "cuhk03-np": 1, "cuhk-sysu": 0}
    )
    renumbered_test_formats: tuple[DatasetFormat, ...] = ("msmt17",)
    expected_counts: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(_SYNTH_COUNTS))
    published_counts: dict[str, ReleaseCounts] = field(default_factory=_published_counts)


@dataclass(frozen=True)
class ModelConfig:
    """The re-ID encoder (timm ViT + BN-neck) and its momentum (EMA) copy.

    ``momentum`` is the EMA decay; it ramps from 0 over ``momentum_warmup`` steps. 0.9
    (half-life ~7 steps) suits CPU runs of a few hundred iterations, where a slower average
    lags a fast-moving encoder; use 0.99-0.999 for long runs. ``depth`` overrides the
    arch's number of transformer blocks (None = its own): a from-scratch ViT-Tiny of 4
    blocks learns the synthetic world within minutes on a CPU, 12 blocks barely start.
    """

    arch: Arch = "vit_tiny_patch16_224"
    depth: PositiveInt | None = 4
    global_pool: GlobalPool = "token"
    img_height: ImageSide = 128
    img_width: ImageSide = 64
    pretrained_path: str | None = None
    drop_path_rate: HalfOpenUnit = 0.1
    momentum: UnitInterval = 0.9
    momentum_warmup: NonNegativeInt = 20


@dataclass(frozen=True)
class SamplerConfig:
    """Mixed batches: ``p_m × k`` multi-camera + ``p_s × k`` single-camera images.

    ``single_camera=False`` (ablation) trains on multi-camera data only, with
    ``(p_m + p_s) × k`` multi-camera images per batch (``keep_batch_size=True``) or just
    the ``p_m × k`` of the mixed batches (``False``: single-camera images come on top of
    the same labelled images instead of replacing some); ``matching=False`` mixes randomly.
    ``ids_per_video`` > 1 draws the single-camera ids in groups from one video each, so a
    single-camera id meets negatives filmed by the same camera (see ``LossConfig``).
    """

    p_m: PositiveInt = 16
    p_s: PositiveInt = 4
    k: PositiveInt = 4
    matching: bool = True
    single_camera: bool = True
    keep_batch_size: bool = False
    ids_per_video: PositiveInt = 2


@dataclass(frozen=True)
class LossConfig:
    """Weights of the multi-loss objective; ``centroid=False`` = per-batch losses only.

    ``w_id`` > 0 adds the ID cross-entropy (cosine classifier) on multi-camera ids.
    ``single_negatives``: the ids a single-camera image is contrasted against, in the
    centroid and triplet losses: ``all`` (every other id) or ``video`` (only ids of its
    own video). Across videos the pseudo labels say nothing (the same person may be in
    two videos) and every video has its own style, so ``all`` rewards telling videos
    apart by style, the shortcut a camera-invariant embedding must not take.
    """

    centroid: bool = True
    temperature: PositiveFloat = 0.05
    num_negatives: PositiveInt = 4096
    hard_fraction: UnitInterval = 0.5
    w_centroid_multi: NonNegativeFloat = 1.0
    w_centroid_single: NonNegativeFloat = 0.5
    w_triplet: NonNegativeFloat = 1.0
    triplet_margin: NonNegativeFloat | None = 0.3
    triplet_cross_negatives: bool = True  # single-camera images are negatives of multi-camera anchors
    w_consistency: NonNegativeFloat = 0.5
    consistency_kind: ConsistencyKind = "cosine"
    w_id: NonNegativeFloat = 1.0
    id_temperature: PositiveFloat = 0.05
    id_label_smoothing: HalfOpenUnit = 0.1
    single_negatives: SingleNegatives = "video"


@dataclass(frozen=True)
class RelabelConfig:
    """The Relabeling Module on single-camera ids, from step ``warmup`` on.

    ``mode: online`` (:class:`dynamix.relabel.online.OnlineRelabeler`): every step judges
    the batch's single-camera images from their momentum features against the bank
    (``filter`` below ``max(tau_filter, median − filter_mad·MAD)`` of the last
    ``filter_history`` own similarities; ``reassign`` to a same-video or kNN-neighbour id
    ``margin`` better and ≥ ``tau_relabel``), and every ``every`` steps (a window) merges
    ids from the bank alone (``merge``: kNN edges ≥ ``tau_merge`` within ``merge_scope``,
    ids updated in the last ``merge_max_age`` steps). A window merging away more than
    ``max_merge_fraction`` of the live single-camera ids (a collapse) keeps its labels and
    logs a warning. There is no pass over the single-camera set: the periodic full-pass
    rounds did not win the ablation and were removed (see :data:`RETIRED_KEYS`).
    """

    enabled: bool = True
    warmup: NonNegativeInt = 300
    every: PositiveInt = 150
    filter: bool = True
    tau_filter: UnitInterval = 0.3
    filter_mad: PositiveFloat | None = 4.0
    filter_history: PositiveInt = 4096
    filter_min_history: NonNegativeInt = 256
    reassign: bool = True
    tau_relabel: UnitInterval = 0.7
    margin: UnitInterval = 0.1
    topk: PositiveInt = 8
    merge: bool = True
    tau_merge: UnitInterval = 0.9
    mutual: bool = False
    merge_scope: MergeScope = "video"
    merge_mad: PositiveFloat | None = 1.0
    merge_max_age: NonNegativeInt = 100
    max_merge_fraction: UnitInterval = 0.5
    nlist: NonNegativeInt = 0  # > 0: approximate (IVF) top-k search with this many lists, for huge banks


@dataclass(frozen=True)
class SelectionConfig:
    """Which checkpoint becomes ``best.pt``: chosen on held-out source identities, never on
    the targets (:mod:`dynamix.evaluation.holdout`). ``ids_per_source: 0`` = no selection
    split; ``best.pt`` is then the final step."""

    ids_per_source: NonNegativeInt = 20
    metric: SelectionMetric = "mAP"


@dataclass(frozen=True)
class TrainConfig:
    """``dynamix train``: iteration-based loop, schedule, checkpoints and evaluation."""

    out_dir: str = "runs/train"
    seed: Seed = 0
    iters: PositiveInt = 600
    lr: PositiveFloat = 1e-3
    min_lr_ratio: UnitInterval = 0.01
    warmup_iters: NonNegativeInt = 50
    weight_decay: NonNegativeFloat = 0.05
    grad_clip: NonNegativeFloat = 1.0  # 0 = no clipping
    amp: bool = True
    device: Device = "auto"
    nproc_per_node: PositiveInt = 1  # > 1: torchrun with this many processes (see dynamix/train/launch)
    num_workers: NonNegativeInt = 2
    eval_batch_size: PositiveInt = 128
    eval_every: NonNegativeInt = 200  # 0 = only at the end
    eval_model: EvalModel = "momentum"
    checkpoint_every: NonNegativeInt = 50  # 0 = only at the end
    centroid_momentum: UnitInterval = 0.2
    centroid_dtype: CentroidDtype = "fp16"
    bank_init: BankInit = "first_sight"  # pass = one feature pass over every train image first
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    relabel: RelabelConfig = field(default_factory=RelabelConfig)


@dataclass(frozen=True)
class StorageConfig:
    """S3-compatible object storage (AWS, MinIO) for checkpoints and dataset snapshots.

    Credentials are never configured here: boto3 reads them from the environment
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``) or the standard AWS
    config chain. ``endpoint_url: null`` means AWS, or ``AWS_ENDPOINT_URL`` when set (MinIO).
    ``checksum_algorithm`` asks the server to verify every part (null for stores that reject
    the header); the end-to-end check is a sha256 kept in the object's metadata.
    """

    endpoint_url: str | None = None
    region: str | None = None
    checkpoints_uri: str = "s3://checkpoints/dynamix/runs"
    snapshots_uri: str = "s3://checkpoints/dynamix/snapshots"
    retry_mode: RetryMode = "standard"
    max_attempts: PositiveInt = 5
    multipart_threshold_mb: PositiveInt = 64
    multipart_chunk_mb: Annotated[int, Range(ge=5)] = 16  # S3 refuses parts under 5 MB (but the last)
    max_concurrency: PositiveInt = 4
    checksum_algorithm: ChecksumAlgorithm | None = "SHA256"


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking (``flows/tracking.py``); env ``MLFLOW_TRACKING_URI`` overrides ``uri``.

    A relative sqlite path is taken from the working directory (the repo root for DVC and
    the CLI). ``artifact_location: null`` puts artifacts in ``mlartifacts/`` beside the
    sqlite file (a tracking server chooses its own). ``log_every``: step metrics are
    logged every N steps (and step 1); ``ranked_list_queries``: queries per target in the
    ranked-list picture logged with a run (0 = none).
    """

    uri: str = "sqlite:///mlflow.db"
    experiment: str = "dynamix"
    registered_model: str = "dynamix-reid"
    artifact_location: str | None = None
    log_every: PositiveInt = 10
    ranked_list_queries: NonNegativeInt = 6


PROMOTION_METRICS = METRIC_KEYS  # the gate judges the metrics every report holds


@dataclass(frozen=True)
class PromotionConfig:
    """The promotion gate (``flows/promotion.py``).

    ``thresholds`` maps a target name (or ``default``, for every target not listed) to
    ``{metric: minimum}`` with metrics from :data:`PROMOTION_METRICS`; a key that names no
    ``data.targets`` entry fails at load (:class:`Params`). A model becomes the ``alias``
    only if every target clears its minimums, every gated metric beats the colour baseline
    (the ``baseline`` file, written by ``dynamix baseline`` on the same data) by more than
    ``baseline_margin``, and none falls more than ``max_regression`` (absolute) below the
    current champion's. A negative ``baseline_margin`` lets a model trail the baseline by
    that much (for worlds where the colour descriptor is strong, such as ``tiny``).
    """

    thresholds: dict[str, dict[str, UnitInterval]] = field(
        default_factory=lambda: {
            "default": {"rank1": 0.12, "mAP": 0.08},
            "market-syn": {"rank1": 0.13, "mAP": 0.085},
            "night-syn": {"rank1": 0.11, "mAP": 0.08},
        }
    )
    max_regression: UnitInterval = 0.01
    baseline: str = "metrics/baseline.json"
    baseline_margin: Annotated[float, Range(ge=-1, le=1)] = 0.0  # negative: may trail the baseline
    alias: str = "champion"

    def __post_init__(self) -> None:
        clean: dict[str, dict[str, float]] = {}
        for target, minimums in self.thresholds.items():
            key = f"promotion.thresholds.{target}"
            if not isinstance(minimums, dict) or not minimums:
                raise ConfigError(f"params.yaml: '{key}' must map metrics to minimums")
            for metric, value in minimums.items():
                if metric not in PROMOTION_METRICS:
                    raise ConfigError(
                        f"params.yaml: unknown metric '{key}.{metric}' (known: {', '.join(PROMOTION_METRICS)})"
                    )
                try:  # PyYAML reads 1e-3 as a string
                    ok = not isinstance(value, bool) and float(value) == float(value)
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise ConfigError(f"params.yaml: '{key}.{metric}' must be a number")
            clean[str(target)] = {m: float(v) for m, v in minimums.items()}
        if self.max_regression < 0:
            raise ConfigError("params.yaml: 'promotion.max_regression' must be >= 0")
        object.__setattr__(self, "thresholds", clean)

    def minimums(self, target: str) -> dict[str, float]:
        """``{metric: minimum}`` for ``target``: its own entry, else ``default``."""
        return self.thresholds.get(target, self.thresholds.get("default", {}))


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)

    def __post_init__(self) -> None:
        # a threshold for a target that does not exist would be silently unused (and the
        # target meant gated by ``default`` only): `market_syn` for `market-syn`
        targets = [spec.name for spec in self.data.targets]
        for key in self.promotion.thresholds:
            if key != "default" and key not in targets:
                raise ConfigError(
                    f"params.yaml: 'promotion.thresholds.{key}' names no target "
                    f"(known: default, {', '.join(targets) or 'no data.targets'})",
                    f"promotion.thresholds.{key}",
                )


def load_params(path: str | os.PathLike[str] = "params.yaml", overrides: list[str] = ()) -> Params:
    """Read ``path`` into :class:`Params`; ``overrides`` are ``dotted.key=yaml_value`` strings."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: params file not found; run from the repo root or pass --params")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:  # PyYAML's message spans lines: the CLI promises one
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from exc
    for item in overrides:
        apply_override(raw, item)
    try:
        return from_dict(Params, raw, where=str(p))
    except ConfigError as exc:
        item = _override_of(exc.key, overrides)
        if item is None:
            raise
        raise ConfigError(f"{exc} (from --set {item})", exc.key) from exc


def _override_of(key: str | None, overrides: list[str]) -> str | None:
    """The ``--set`` item that gave ``key`` its value (it or a section above it), else None.

    The last such item wins, as it did when the overrides were applied.
    """
    for item in reversed(overrides):
        name = item.partition("=")[0]
        if key is not None and (key == name or key.startswith(name + ".")):
            return item
    return None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``1e-3``, ``[a, b]``)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected dotted.key=value")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def to_dict(obj: Any) -> Any:
    """Plain-Python view of a config (for logging, MLflow params, JSON)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.seed": 0, "data.sources.0.name": ...}``: the shape MLflow params want."""
    out: dict[str, Any] = {}
    plain = to_dict(obj)
    items = plain.items() if isinstance(plain, dict) else enumerate(plain)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict | list) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


# Keys a params file from an older version may still carry: why each went, for its error.
RETIRED_KEYS = {
    "train.relabel.mode": "relabeling runs on the fly only; the full-pass rounds did not win the ablation "
    "(docs/ablation.md)",
    "train.relabel.refresh_centroids": "it applied to the removed full-pass rounds only",
}


def from_dict(cls: type[T], raw: Any, *, where: str, key: str = "") -> T:
    """Build dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    label = f"{where}: {key or 'top level'}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}", key or None)
    hints = typing.get_type_hints(cls, include_extras=True)  # keep Annotated's Matches and Range
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        dotted = f"{key}.{unknown[0]}" if key else unknown[0]
        if dotted in RETIRED_KEYS:
            raise ConfigError(f"{where}: '{dotted}' was removed: {RETIRED_KEYS[dotted]}; delete it", dotted)
        raise ConfigError(f"{where}: unknown key '{dotted}' (known: {', '.join(fields)})", dotted)
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in raw:
            kwargs[name] = _coerce(hints[name], raw[name], where=where, key=sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{sub}'", sub)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise _in_file(exc, where) from exc


def _in_file(exc: ConfigError, where: str) -> ConfigError:
    """A ``__post_init__`` check's error, naming the file actually read.

    Those checks (cross-field rules) cannot know the file and say ``params.yaml: ...``;
    the first quoted dotted key in the message is the key at fault.
    """
    message = str(exc)
    if message.startswith("params.yaml: "):
        message = f"{where}: {message.removeprefix('params.yaml: ')}"
    quoted = re.search(r"'([^'\s]+)'", message)
    return ConfigError(message, exc.key or (quoted.group(1) if quoted else None))


def _coerce(tp: Any, value: Any, *, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where, key=key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where=where, key=key)
    if origin is Literal:
        if not any(type(value) is type(a) and value == a for a in args):  # True is not 1
            raise ConfigError(f"{where}: '{key}' must be {_choices(args)}, got {value!r}", key)
        return value
    if origin is Annotated:
        value = _coerce(args[0], value, where=where, key=key)
        for rule in args[1:]:
            if isinstance(rule, Matches) and not re.fullmatch(rule.regex, value):
                raise ConfigError(f"{where}: '{key}' must be {rule.choices}, got {value!r}", key)
            if isinstance(rule, Range) and not rule.allows(value):
                raise ConfigError(f"{where}: '{key}' must be {rule.describe()}, got {value!r}", key)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: '{key}' must be a list, got {type(value).__name__}", key)
        return tuple(_coerce(args[0], v, where=where, key=f"{key}.{i}") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {type(value).__name__}", key)
        inner = args[1] if len(args) == 2 else Any  # the values' type: checked like any field
        return {k: _coerce(inner, v, where=where, key=f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # PyYAML (YAML 1.1) reads 1e-3 as a string: accept any literal Python reads as float
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true/false, got {value!r}", key)
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}", key)
    if not isinstance(value, tp):
        kind = "a number" if tp is float else tp.__name__  # a float setting takes 3, 0.5 and 1e-3
        raise ConfigError(f"{where}: '{key}' must be {kind}, got {type(value).__name__} {value!r}", key)
    return value


def _choices(values: tuple[Any, ...]) -> str:
    """``a, b or c``: the allowed values as the error message names them."""
    names = [str(v) for v in values]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
