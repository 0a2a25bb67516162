import copy
import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from dynamix import config
from dynamix.config import ConfigError, DatasetSpec, Params, flatten, from_dict, load_params

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_repo_params_load_into_typed_dataclasses():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    assert all(isinstance(s, DatasetSpec) for s in params.data.all_datasets())
    names = [s.name for s in params.data.all_datasets()]
    assert len(names) == len(set(names)), "dataset names must be unique"
    # sources and targets are disjoint: targets are unseen domains
    assert not {s.name for s in params.data.sources} & {s.name for s in params.data.targets}


def test_unknown_key_is_named_with_its_full_path(tmp_path):
    p = write(tmp_path, "data:\n  sedd: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data\.sedd'"):
        load_params(p)


def test_a_removed_key_says_why_it_went(tmp_path):
    """An older params file with the retired full-pass rounds fails in one line, with the reason."""
    p = write(tmp_path, "train:\n  relabel:\n    mode: rounds\n")
    with pytest.raises(ConfigError, match=r"'train\.relabel\.mode' was removed: .*did not win the ablation") as err:
        load_params(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)
    with pytest.raises(ConfigError, match=r"'train\.relabel\.refresh_centroids' was removed"):
        load_params(write(tmp_path, "data:\n  seed: 1\n"), ["train.relabel.refresh_centroids=false"])
    assert set(config.RETIRED_KEYS).isdisjoint(flatten(config.to_dict(Params())))  # retired means gone


def test_wrong_type_is_named(tmp_path):
    p = write(tmp_path, "evaluation:\n  max_rank: fifty\n")
    with pytest.raises(ConfigError, match=r"'evaluation\.max_rank' must be int"):
        load_params(p)


def test_bool_is_not_an_int(tmp_path):
    p = write(tmp_path, "data:\n  seed: true\n")
    with pytest.raises(ConfigError, match=r"data\.seed"):
        load_params(p)


def test_nested_dataset_spec_errors_name_the_list_index(tmp_path):
    p = write(tmp_path, "data:\n  sources:\n    - {name: a, format: market1501}\n")
    with pytest.raises(ConfigError, match=r"missing required key 'data\.sources\.0\.root'"):
        load_params(p)


def test_overrides_are_parsed_as_yaml_and_validated(tmp_path):
    p = write(tmp_path, "data:\n  seed: 1\n")
    params = load_params(p, ["data.seed=7", "evaluation.metric=euclidean", "train.lr=1e-3"])
    assert params.train.lr == 1e-3
    with pytest.raises(ConfigError, match=r"'train\.lr' must be a number, got str 'fast'"):
        load_params(p, ["train.lr=fast"])
    assert params.data.seed == 7
    assert params.evaluation.metric == "euclidean"
    with pytest.raises(ConfigError, match=r"unknown key 'evaluation\.nope'"):
        load_params(p, ["evaluation.nope=1"])
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        load_params(p, ["no-equals-sign"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(write(tmp_path, "data: [unclosed\n"))


def test_params_are_frozen_and_flatten_for_tracking():
    params = load_params(REPO / "params.yaml")
    with pytest.raises(AttributeError):
        params.data.seed = 3  # type: ignore[misc]
    flat = flatten(params)
    assert flat["evaluation.max_rank"] == params.evaluation.max_rank
    assert flat["data.sources.0.name"] == params.data.sources[0].name


# ---- one source of defaults: the dataclasses say what params.yaml says ----------------------
def shipped_raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_every_dataclass_default_equals_params_yaml():
    shipped, defaults = load_params(REPO / "params.yaml"), Params()
    ours, theirs = flatten(shipped), flatten(defaults)
    absent = object()
    differ = [
        f"{k}: params.yaml {ours.get(k, absent)!r}, dataclass {theirs.get(k, absent)!r}"
        for k in sorted(set(ours) | set(theirs))
        if ours.get(k, absent) != theirs.get(k, absent)
    ]
    assert differ == [], "change the dataclass default to the params.yaml value"
    assert shipped == defaults


def keys_in(cls: type, raw: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Every key of ``raw`` that is a dataclass field: sections and their settings."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in raw:
            path = (*prefix, f.name)
            yield path
            if dataclasses.is_dataclass(hints[f.name]):
                yield from keys_in(hints[f.name], raw[f.name], path)


def test_deleting_any_key_from_params_yaml_keeps_the_recipe():
    raw = shipped_raw()
    shipped = from_dict(Params, raw, where="params.yaml")
    keys = list(keys_in(Params, raw))
    assert ("train", "lr") in keys and ("train", "relabel", "merge") in keys
    assert ("train", "sampler") in keys and len(keys) > 100
    changed = []
    for path in keys:
        cut = copy.deepcopy(raw)
        node = cut
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
        if from_dict(Params, cut, where="params.yaml") != shipped:
            changed.append(".".join(path))
    assert changed == []


# ---- enum-like settings: typed Literal, checked at load ------------------------------------
def literal_of(tp: Any) -> tuple[str, ...] | None:
    """The choices of ``Literal[...]`` or ``Literal[...] | None``; None for other types."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def enum_settings(cls: type = Params, prefix: str = "") -> Iterator[tuple[str, tuple]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from enum_settings(hints[f.name], key + ".")
        elif (choices := literal_of(hints[f.name])) is not None:
            yield key, choices


ENUMS = dict(enum_settings())


def test_the_enum_like_settings_are_literals():
    expected = """data.preset evaluation.metric model.arch model.global_pool train.eval_model
        train.centroid_dtype train.loss.consistency_kind train.loss.single_negatives
        storage.retry_mode storage.checksum_algorithm"""
    assert set(expected.split()) <= set(ENUMS)


@pytest.mark.parametrize("key", sorted(ENUMS))
def test_a_bad_enum_value_names_key_value_choices_and_file(key, tmp_path):
    path = write(tmp_path, "data:\n  seed: 1\n")
    choices = ENUMS[key]
    with pytest.raises(ConfigError) as err:
        load_params(path, [f"{key}=bogus"])
    message = str(err.value)
    assert message.startswith(f"{path}: '{key}' must be ")
    assert message.endswith(f", got 'bogus' (from --set {key}=bogus)")
    assert all(c in message for c in choices) and "\n" not in message
    for value in choices:  # every listed choice loads
        assert config.to_dict(load_params(path, [f"{key}={value}"]))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.targets=[{name: t, format: viper, root: x}]", "data.targets.0.format"),
        ("validation.renumbered_test_formats=[viper]", "validation.renumbered_test_formats.0"),
        ("train.device=gpu", "train.device"),
        ("train.device=cuda:x", "train.device"),
        ("model.arch=true", "model.arch"),  # YAML's true is no string
    ],
)
def test_enums_in_lists_and_the_device_pattern_are_checked(tmp_path, override, key):
    path = write(tmp_path, "data:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: '{key}' must be .*, got "):
        load_params(path, [override])
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert load_params(path, [f"train.device={device}"]).train.device == device


def test_the_cli_prints_one_line_and_exits_2(capsys):
    from dynamix.cli import main

    params = str(REPO / "params.yaml")
    code = main(["prepare", "--params", params, "--set", "evaluation.metric=hamming"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"dynamix prepare: error: {params}: 'evaluation.metric' must be cosine or euclidean, got 'hamming' "
        "(from --set evaluation.metric=hamming)\n"
    )


def test_the_modules_acting_on_a_setting_know_exactly_its_choices():
    from dynamix.centroids import resolve_dtype
    from dynamix.data.registry import LOADERS
    from dynamix.evaluation.features import METRICS
    from dynamix.infer.checkpoint import ENCODERS
    from dynamix.synth.catalog import PRESETS

    assert typing.get_args(config.DatasetFormat) == tuple(LOADERS)
    assert set(typing.get_args(config.Metric)) == set(METRICS)
    assert typing.get_args(config.EvalModel) == ENCODERS
    assert set(typing.get_args(config.SynthPreset)) == set(PRESETS)
    assert all(resolve_dtype(d).is_floating_point for d in typing.get_args(config.CentroidDtype))


def test_atomic_writes_leave_a_normal_mode_and_no_temp_file(tmp_path):
    import os
    import stat

    from dynamix.io import atomic_path, write_json_atomic

    target = tmp_path / "out" / "m.json"
    write_json_atomic(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text().strip() == '{\n  "a": 1\n}'  # the old file survives a crash
    assert os.listdir(target.parent) == ["m.json"]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- numbers: every numeric setting has an interval, checked at load ------------------------
def settings(cls: type = Params, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, type with its Annotated rules)`` of every leaf setting."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from settings(tp, key + ".")
        else:
            yield key, tp


def scalar_of(tp: Any) -> tuple[Any, config.Range | None, int]:
    """``(base type, its Range or None, dict levels above it)`` of ``X | None`` or ``dict[str, X]``."""
    levels = 0
    while typing.get_origin(tp) in (typing.Union, types.UnionType, dict):
        if typing.get_origin(tp) is dict:
            tp, levels = typing.get_args(tp)[1], levels + 1
        else:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is typing.Annotated:
        base, *rules = typing.get_args(tp)
        return base, next((r for r in rules if isinstance(r, config.Range)), None), levels
    return tp, None, levels


NUMBERS = {key: scalar_of(tp) for key, tp in settings() if scalar_of(tp)[0] in (int, float)}
# a key with valid names for the settings that are dicts of numbers
CONCRETE = {
    "promotion.thresholds": "promotion.thresholds.default.mAP",
    "validation.camid_max": "validation.camid_max.market1501",
}


def test_every_numeric_setting_has_an_interval():
    assert {"train.iters", "train.lr", "train.num_workers", "train.sampler.k", "promotion.thresholds"} <= set(NUMBERS)
    assert len(NUMBERS) > 60
    assert [key for key, (_, rule, _) in NUMBERS.items() if rule is None] == []


def outside(rule: config.Range) -> list[float]:
    """Values just outside ``rule``: below its lower bound, above its upper one, off its step."""
    values = []
    if rule.ge is not None or rule.gt is not None:
        values.append(rule.ge - 1 if rule.ge is not None else rule.gt)
    if rule.le is not None or rule.lt is not None:
        values.append(rule.le + 0.5 if rule.le is not None else rule.lt)
    if rule.multiple_of is not None:
        values.append((rule.ge or 0) + rule.multiple_of + 1)
    return values


def inside(rule: config.Range) -> list[float]:
    """The closed bounds themselves, and a value just inside an open one."""
    values = [b for b in (rule.ge, rule.le) if b is not None]
    values += [rule.gt + 0.5] if rule.gt is not None else []
    values += [rule.lt - 0.5] if rule.lt is not None else []
    return values


def nested(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


BAD_NUMBERS = [
    (CONCRETE.get(key, key + ".x" * levels), base, rule, value)
    for key, (base, rule, levels) in sorted(NUMBERS.items())
    for value in outside(rule)
]


@pytest.mark.parametrize(("key", "base", "rule", "value"), BAD_NUMBERS, ids=[f"{b[0]}={b[3]}" for b in BAD_NUMBERS])
def test_a_number_outside_its_interval_names_key_value_interval_and_file(key, base, rule, value, tmp_path):
    expected = f"'{key}' must be {rule.describe()}, got {base(value)!r}"
    in_file = write(tmp_path, yaml.safe_dump(nested(key, value)))
    with pytest.raises(ConfigError) as err:
        load_params(in_file)
    assert str(err.value) == f"{in_file}: {expected}"
    path = write(tmp_path, "data:\n  seed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_params(path, [f"{key}={value}"])
    assert str(err.value) == f"{path}: {expected} (from --set {key}={value})"
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", sorted(NUMBERS))
def test_the_bounds_of_an_interval_load(key, tmp_path):
    base, rule, levels = NUMBERS[key]
    key = CONCRETE.get(key, key + ".x" * levels)
    path = write(tmp_path, "data:\n  seed: 1\n")
    for value in inside(rule):
        flat = flatten(load_params(path, [f"{key}={value}"]))
        assert flat[key] == base(value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.iters=0", "'train.iters' must be >= 1, got 0"),  # it wrote an untrained best.pt
        ("train.iters=-5", "'train.iters' must be >= 1, got -5"),
        ("train.lr=-1", "'train.lr' must be > 0, got -1.0"),
        ("train.lr=.nan", "'train.lr' must be > 0, got nan"),
        ("train.num_workers=-1", "'train.num_workers' must be >= 0, got -1"),
        ("train.sampler.p_s=0", "'train.sampler.p_s' must be >= 1, got 0"),
        ("train.loss.temperature=0", "'train.loss.temperature' must be > 0, got 0.0"),
        ("train.loss.id_label_smoothing=1", "'train.loss.id_label_smoothing' must be in [0, 1), got 1.0"),
        ("train.relabel.tau_merge=1.2", "'train.relabel.tau_merge' must be in [0, 1], got 1.2"),
        ("model.img_height=100", "'model.img_height' must be >= 16 and a multiple of 16, got 100"),
        ("model.depth=0", "'model.depth' must be >= 1, got 0"),
        ("storage.multipart_chunk_mb=1", "'storage.multipart_chunk_mb' must be >= 5, got 1"),
        (
            "promotion.thresholds={default: {rank1: 0.1, mAP: 1.01}}",
            "'promotion.thresholds.default.mAP' must be in [0, 1], got 1.01",
        ),
        ("validation.camid_max={market1501: eight}", "'validation.camid_max.market1501' must be int, got str 'eight'"),
    ],
)
def test_out_of_range_values_from_set_are_refused_in_one_line(override, message, tmp_path):
    path = write(tmp_path, "data:\n  seed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_params(path, [override])
    assert str(err.value) == f"{path}: {message} (from --set {override})"
    assert load_params(path, ["train.iters=1", "model.depth=null", "train.loss.triplet_margin=null"])


def test_the_last_set_item_is_named_and_a_file_value_names_no_set(tmp_path):
    path = write(tmp_path, "train:\n  iters: 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: 'train\.iters' must be >= 1, got 0$"):
        load_params(path, ["train.lr=0.1"])  # another key's --set is not the culprit
    with pytest.raises(ConfigError, match=r"got -2 \(from --set train=\{iters: -2\}\)$"):
        load_params(path, ["train.iters=5", "train={iters: -2}"])
    assert load_params(path, ["train.iters=5"]).train.iters == 5


def test_cross_field_checks_name_the_file_read_too(tmp_path):
    path = write(tmp_path, "promotion:\n  thresholds:\n    default: {rankl: 0.1}\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert str(err.value).startswith(f"{path}: unknown metric 'promotion.thresholds.default.rankl'")
    with pytest.raises(ConfigError, match=r"\(from --set promotion\.thresholds=\{default: \{rankl: 0\.1\}\}\)$"):
        load_params(write(tmp_path, "data:\n  seed: 1\n"), ["promotion.thresholds={default: {rankl: 0.1}}"])


def test_bad_yaml_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, "data: [unclosed\n"))
    assert "not valid YAML" in str(err.value) and "\n" not in str(err.value)


def test_image_sides_follow_the_patch_size_of_every_arch():
    assert all(f"_patch{config.PATCH}_" in arch for arch in typing.get_args(config.Arch))
    assert NUMBERS["model.img_height"][1] == config.Range(ge=config.PATCH, multiple_of=config.PATCH)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.iters=0", "'train.iters' must be >= 1, got 0"),
        ("train.lr=-1", "'train.lr' must be > 0, got -1.0"),
        ("train.num_workers=-1", "'train.num_workers' must be >= 0, got -1"),
    ],
)
def test_dynamix_train_refuses_a_bad_number_in_one_line_before_training(override, message, capsys, tmp_path):
    from dynamix.cli import main

    params, out = str(REPO / "params.yaml"), tmp_path / "run"
    code = main(["train", "--params", params, "--set", f"train.out_dir={out}", "--set", override, "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err == f"dynamix train: error: {params}: {message} (from --set {override})\n"
    assert not out.exists()  # nothing trained, no best.pt to track or promote
