"""``params.yaml`` read into frozen, typed dataclasses.

One file configures everything: DVC stages, Prefect flows and the CLI all go through
:func:`load_params`, so a typo in a key or a wrong type fails at once with the key's full
dotted name, instead of silently falling back to a default deep inside a run.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dynamix.errors import DynamixError

T = TypeVar("T")


class ConfigError(DynamixError):
    """A key in params.yaml is unknown, missing, or of the wrong type."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset on disk and the loader that reads it."""

    name: str
    format: str
    root: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    raw_dir: str = "data/raw"
    manifests_dir: str = "data/manifests"
    preset: str = "default"
    seed: int = 0
    sources: tuple[DatasetSpec, ...] = ()
    single_camera: tuple[DatasetSpec, ...] = ()
    targets: tuple[DatasetSpec, ...] = ()

    def all_datasets(self) -> tuple[DatasetSpec, ...]:
        return self.sources + self.single_camera + self.targets


@dataclass(frozen=True)
class EvaluationConfig:
    max_rank: int = 50
    metric: str = "cosine"
    block_size: int = 512


@dataclass(frozen=True)
class BaselineConfig:
    """Hand-crafted colour-histogram descriptor: the floor a learned model must beat."""

    stripes: int = 8
    bins: int = 8


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


def load_params(path: str | os.PathLike[str] = "params.yaml", overrides: list[str] = ()) -> Params:
    """Read ``path`` into :class:`Params`; ``overrides`` are ``dotted.key=yaml_value`` strings."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: params file not found; run from the repo root or pass --params")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    for item in overrides:
        apply_override(raw, item)
    return from_dict(Params, raw, where=str(p))


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


def from_dict(cls: type[T], raw: Any, *, where: str, key: str = "") -> T:
    """Build dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    label = f"{where}: {key or 'top level'}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        dotted = f"{key}.{unknown[0]}" if key else unknown[0]
        raise ConfigError(f"{where}: unknown key '{dotted}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in raw:
            kwargs[name] = _coerce(hints[name], raw[name], where=where, key=sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{sub}'")
    return cls(**kwargs)


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
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
        return tuple(
            _coerce(args[0], v, where=where, key=f"{key}.{i}") for i, v in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true/false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(
            f"{where}: '{key}' must be {tp.__name__}, got {type(value).__name__} {value!r}"
        )
    return value
