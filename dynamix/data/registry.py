"""Format name → loader, so ``params.yaml`` and the CLI can name a dataset by its format.

``load_dataset`` is the one call the pipeline uses (``dynamix prepare``, ``dynamix
manifest``). It rejects unknown formats and unknown options up front, listing what is
accepted, and turns the strings a command line gives (``merge_val=false``) into the
argument types the loader declares, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from dynamix.data.cuhk03 import load_cuhk03_np
from dynamix.data.cuhk_sysu import load_cuhk_sysu
from dynamix.data.luperson_nl import load_luperson_nl
from dynamix.data.manifest import make_manifest
from dynamix.data.market1501 import load_dukemtmc, load_market1501
from dynamix.data.msmt17 import load_msmt17
from dynamix.data.single_camera import load_single_camera
from dynamix.errors import DynamixError, ManifestError

log = logging.getLogger(__name__)

Loader = Callable[..., pd.DataFrame]

LOADERS: dict[str, Loader] = {
    "market1501": load_market1501,
    "dukemtmc": load_dukemtmc,
    "msmt17": load_msmt17,
    "cuhk03-np": load_cuhk03_np,
    "single_camera": load_single_camera,
    "cuhk-sysu": load_cuhk_sysu,
    "luperson-nl": load_luperson_nl,
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def load_dataset(
    fmt: str, root: str | os.PathLike[str], domain: str | None = None, **options: Any
) -> pd.DataFrame:
    """Manifest of the dataset at ``root`` read by the ``fmt`` loader.

    ``domain`` defaults to the format name; ``options`` are the loader's keyword arguments
    (e.g. ``merge_val`` for ``msmt17``, ``variant`` for ``cuhk03-np``).
    """
    if fmt not in LOADERS:
        raise DynamixError(f"unknown dataset format {fmt!r}; known formats: {', '.join(LOADERS)}")
    loader = LOADERS[fmt]
    domain = fmt if domain is None else domain
    if not isinstance(domain, str) or not domain.strip():
        raise DynamixError(f"{fmt} at {root}: domain must be a non-empty name, got {domain!r}")
    kwargs = coerce_options(fmt, loader, options)
    log.debug("loading %s from %s as domain %s with %s", fmt, root, domain, kwargs)
    return loader(root, domain=domain, **kwargs)


def coerce_options(fmt: str, loader: Loader, options: dict[str, Any]) -> dict[str, Any]:
    """Check ``options`` against the loader's keyword arguments; parse textual booleans."""
    params = {
        name: p
        for name, p in inspect.signature(loader).parameters.items()
        if name not in ("root", "domain")
    }
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in params:
            known = ", ".join(params) or "none"
            raise DynamixError(f"{fmt}: unknown option {key!r}; known options: {known}")
        default = params[key].default
        if isinstance(default, bool) and isinstance(value, str):
            low = value.strip().lower()
            if low not in _TRUE + _FALSE:
                raise DynamixError(f"{fmt}: option {key}={value!r} must be true or false")
            value = low in _TRUE
        out[key] = value
    return out


def combine(manifests: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate manifests of different datasets into one validated manifest.

    Two inputs sharing a domain name would merge their pid spaces (and
    ``relabel_for_training`` would fuse different people), so that is an error; a path
    in two inputs is caught by the manifest's duplicate-path rule. Extra columns are
    dropped: the result has exactly the manifest schema.
    """
    if not manifests:
        raise ManifestError("combine: no manifests given")
    owner: dict[str, int] = {}
    for i, df in enumerate(manifests):
        for domain in df["domain"].unique():
            if domain in owner:
                raise ManifestError(
                    f"combine: domain {domain!r} is in manifests {owner[domain]} and {i}; "
                    "give every dataset its own domain name"
                )
            owner[domain] = i
    return make_manifest(pd.concat(manifests, ignore_index=True))
