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
    with pytest.raises(ConfigError, match=r"'train\.lr' must be float"):
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
    assert message.startswith(f"{path}: '{key}' must be ") and message.endswith(", got 'bogus'")
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
        f"dynamix prepare: error: {params}: 'evaluation.metric' must be cosine or euclidean, got 'hamming'\n"
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
