from pathlib import Path

import pytest

from dynamix.config import ConfigError, DatasetSpec, Params, flatten, load_params

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
