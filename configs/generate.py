"""Write ``configs/<protocol>.yaml``: ``params.yaml`` with the real-data GPU recipe and one
multi-source domain-generalisation protocol written over it.

    python configs/generate.py           # rewrite every config from params.yaml
    python configs/generate.py --check   # exit 1 if a config is not what would be written

Why full files, generated: DVC tracks one params file per stage and cannot switch it
(``dvc exp run -S`` edits single keys), so a config is used by copying it over
``params.yaml`` whole (configs/README.md); an include or ``base:`` key would leave the
copy pointing at itself and hide the inherited values from ``dvc params diff``. So every
config holds every key, and this script is the one home of what differs: :data:`RECIPE`
(the GPU recipe, the same in every config) and :data:`PROTOCOLS` (the datasets, the
promotion floors and the MLflow names). Everything else, comments included, is copied
from ``params.yaml``, so a key added there reaches every config at the next run;
``tests/test_configs.py`` fails while a config is stale.

The copy is textual (one line per key, found by its indentation path), so the comments
of ``params.yaml`` survive; every written file is then parsed back and must equal
``params.yaml`` with the overrides applied, and load with :func:`dynamix.config.load_params`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PARAMS = HERE.parent / "params.yaml"
COMMENT_COLUMN = 31  # where params.yaml's end-of-line comments start
REAL = "data/real"  # every release under one folder (the tree in configs/README.md)


@dataclass(frozen=True)
class Set:
    """Write ``value`` at a dotted key; ``comment`` replaces its end-of-line comment (and
    the comment lines continuing it), ``lead`` the comment lines just above it.
    ``value=KEEP`` changes only the comments; ``comment=""`` drops the old one."""

    value: Any
    comment: str | None = None
    lead: tuple[str, ...] | None = None


KEEP = object()

# Every release as the user lays it out after downloading it (configs/README.md).
MARKET = {"name": "market1501", "format": "market1501", "root": f"{REAL}/Market-1501-v15.09.15"}
DUKE = {"name": "dukemtmc", "format": "dukemtmc", "root": f"{REAL}/DukeMTMC-reID"}
MSMT = {"name": "msmt17", "format": "msmt17", "root": f"{REAL}/MSMT17_V1"}
CUHK03 = {"name": "cuhk03", "format": "cuhk03-np", "root": f"{REAL}/cuhk03-np"}
LUPNL = {"name": "luperson-nl", "format": "luperson-nl", "root": f"{REAL}/LUPerson-NL"}
# Options of a dataset used as a source: training splits only, as M3L trains (its loaders'
# ``train``; MSMT17 train + val). ``combine_all: true`` on every source gives the
# "protocol-3" setting of META / ACL (fast-reid COMBINEALL): all images of the sources.
SOURCE_OPTIONS = {
    "market1501": {"combine_all": False},
    "dukemtmc": {"combine_all": False},
    "msmt17": {"merge_val": True, "combine_all": False},
    "cuhk03": {"variant": "detected", "combine_all": False},
}
# As a target: the test splits of the same release (CUHK03-NP detected, as M3L advises).
TARGET_OPTIONS = {"cuhk03": {"variant": "detected"}}
# Promotion floors: sanity placeholders, far below the published multi-source DG results
# on each target; set them from the first real run's baseline.json or the paper's tables.
FLOORS = {
    "market1501": {"rank1": 0.5, "mAP": 0.25},
    "dukemtmc": {"rank1": 0.4, "mAP": 0.2},
    "msmt17": {"rank1": 0.2, "mAP": 0.08},
    "cuhk03": {"rank1": 0.15, "mAP": 0.12},
}


def source(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "options": SOURCE_OPTIONS[spec["name"]]}


def target(spec: dict[str, Any]) -> dict[str, Any]:
    options = TARGET_OPTIONS.get(spec["name"])
    return {**spec, "options": options} if options else dict(spec)


# The GPU recipe: ViT-B/16 at 256x128 in bf16 on 4 GPUs. Numbers marked "guess" are ours
# (the paper's text available gives none); the others say where they come from.
RECIPE: dict[str, Set] = {
    "data": Set(KEEP, "the real releases: configs/README.md lays them out"),
    "data.raw_dir": Set(REAL, "every release below it; DVC's prepare/validate deps (dvc.yaml)"),
    "data.single_camera": Set(
        [LUPNL],
        lead=(
            "  # LUPerson-NL (lmdb/ + keys.pkl, or the extract script's folders) in every protocol, as the",
            "  # paper mixes it with the labelled sources.",
        ),
    ),
    "validation.min_height": Set(8, "loose bounds: real crops keep their detection size, so only"),
    "validation.max_height": Set(4096, "degenerate or corrupt images fail (sizes not surveyed here)"),
    "validation.min_width": Set(4),
    "validation.max_width": Set(4096),
    "validation.decode_limit": Set(200000, "per dataset; LUPerson-NL (10.7 M crops): a seeded 200 k sample"),
    "validation.expected_counts": Set(
        {},
        lead=(
            "  # Synthetic-world image counts: none here (data/real holds no world.json); the real",
            "  # releases are checked against published_counts below.",
        ),
    ),
    "model": Set(KEEP, "ViT-B/16 at 256x128, TransReID's setting for re-ID"),
    "model.arch": Set("vit_base_patch16_224", "ViT-B/16 (patch 16; img size set below)"),
    "model.depth": Set(None, "the arch's own 12 blocks"),
    "model.img_height": Set(256, "256x128: the re-ID standard (TransReID, fast-reid)"),
    "model.img_width": Set(128),
    "model.pretrained_path": Set(
        "weights/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors",
        "",
        lead=(
            "  # timm's ImageNet ViT-B/16 (hub: timm/vit_base_patch16_224.augreg2_in21k_ft_in1k, model.safetensors),",
            "  # downloaded by you: the code never downloads (configs/README.md).",
        ),
    ),
    "model.momentum": Set(0.999, "EMA decay for long runs (docs/training.md)"),
    "model.momentum_warmup": Set(1000, "guess: ~2.5% of the run"),
    "train": Set(KEEP, "`dynamix train`; sized for 4 GPUs (H100 class) in bf16"),
    "train.iters": Set(40000, "guess: ~10 M single-camera crops seen (about one LUPerson-NL epoch)"),
    "train.lr": Set(0.00035, "guess: AdamW peak lr of ViT re-ID fine-tuning, 512 images a step"),
    "train.warmup_iters": Set(2000, "guess: 5% of the run"),
    "train.amp": Set(True, "bf16 autocast on CUDA (no loss scaling needed)"),
    "train.device": Set("auto", "cuda:LOCAL_RANK under torchrun"),
    "train.nproc_per_node": Set(4, "4 GPUs, one process each (torchrun); 1 for a single GPU"),
    "train.num_workers": Set(8, "DataLoader workers per process: about cores / nproc_per_node"),
    "train.eval_batch_size": Set(512),
    "train.eval_every": Set(5000, "a target pass costs minutes (MSMT17: 93 k images)"),
    "train.checkpoint_every": Set(1000, "last.pt: ViT-B + optimizer + a 434 k-id centroid bank"),
    "train.sampler.p_m": Set(16, "multi-camera ids per batch and GPU"),
    "train.sampler.p_s": Set(16, "guess: single-camera ids per batch and GPU: 128 images a GPU"),
    "train.relabel.warmup": Set(5000, "guess: first judged step, once the encoder has learned"),
    "train.relabel.every": Set(2000, "guess: merge window (64 single-camera ids a step on 4 GPUs)"),
    "train.relabel.merge_max_age": Set(2000, "guess: ids updated in the last window"),
}
FLOORS_LEAD = (
    "  # Minimum Rank-1 / mAP per target. PLACEHOLDERS: sanity floors far below the published",
    "  # multi-source DG results; set them from the first real run (metrics/baseline.json and",
    "  # the gate's report) or from the paper's tables before trusting a promotion.",
)


@dataclass(frozen=True)
class Protocol:
    """One leave-one-out setting: labelled sources, LUPerson-NL, one unseen target."""

    title: str
    sources: tuple[dict[str, Any], ...]
    target: dict[str, Any]


PROTOCOLS: dict[str, Protocol] = {
    "dc3ms-to-m": Protocol("D+C3+MS -> M (the paper's Figure 1)", (DUKE, CUHK03, MSMT), MARKET),
    "mc3ms-to-d": Protocol("M+C3+MS -> D", (MARKET, CUHK03, MSMT), DUKE),
    "mdc3-to-ms": Protocol("M+D+C3 -> MS", (MARKET, DUKE, CUHK03), MSMT),
    "mdms-to-c3": Protocol("M+D+MS -> C3", (MARKET, DUKE, MSMT), CUHK03),
}


def overrides(name: str) -> dict[str, Set]:
    """Everything ``configs/<name>.yaml`` writes over ``params.yaml``: the recipe + the protocol."""
    p = PROTOCOLS[name]
    tgt = p.target["name"]
    return {
        **RECIPE,
        "data.sources": Set(
            [source(s) for s in p.sources],
            lead=(
                f"  # {p.title}: labelled sources, training splits only (M3L's protocol);",
                "  # combine_all: true on each = all their images (META/ACL protocol-3). Never a target.",
            ),
        ),
        "data.targets": Set([target(p.target)], "the unseen domain: never used for training"),
        "promotion.thresholds": Set({"default": FLOORS[tgt], tgt: FLOORS[tgt]}, lead=FLOORS_LEAD),
        "tracking.experiment": Set(f"dynamix-{name}", "one MLflow experiment per protocol"),
        "tracking.registered_model": Set(
            f"dynamix-reid-{name}", "one champion per protocol (the gate compares with it)"
        ),
    }


def header(name: str) -> list[str]:
    p = PROTOCOLS[name]
    return [
        f"# {p.title}: DynaMix on real data, ViT-B/16 at 256x128 on 4 GPUs.",
        "# GENERATED by configs/generate.py from params.yaml: edit the generator (or params.yaml), then run",
        "# `python configs/generate.py`; tests/test_configs.py fails while this file is stale.",
        f"#   dynamix prepare --params configs/{name}.yaml          (and validate, train, ...: configs/README.md)",
        f"#   cp configs/{name}.yaml params.yaml && dvc exp run -n {name}",
        "# Comments below come from params.yaml unless the generator rewrote them for this recipe.",
        "",
    ]


# --- the textual copy -------------------------------------------------------------------

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?P<rest>.*)$")


def inline(value: Any) -> str:
    """``value`` as a one-line YAML flow node that PyYAML reads back to ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text or "e" not in text else text.replace("e", ".0e")
    if isinstance(value, str):
        plain = value and not re.search(r"[:#{}\[\],&*!|>'\"%@`]|^\s|\s$", value)
        return value if plain and yaml.safe_load(value) == value else json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {inline(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r}")


def with_comment(text: str, comment: str | None) -> str:
    if not comment:
        return text
    return f"{text.ljust(COMMENT_COLUMN - 1)} # {comment}"


def node_lines(indent: str, key: str, value: Any, comment: str | None) -> list[str]:
    """``key: value`` at ``indent``; a non-empty list, or a mapping of collections, in block style."""
    inner = indent + "  "
    if isinstance(value, list | tuple) and value:
        return [with_comment(f"{indent}{key}:", comment), *(f"{inner}- {inline(v)}" for v in value)]
    if isinstance(value, dict) and value and any(isinstance(v, dict | list) for v in value.values()):
        return [with_comment(f"{indent}{key}:", comment), *(f"{inner}{k}: {inline(v)}" for k, v in value.items())]
    return [with_comment(f"{indent}{key}: {inline(value)}", comment)]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_index(lines: list[str]) -> dict[str, int]:
    """Dotted path → line number of every block-mapping key."""
    index: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = KEY_LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        depth = len(m["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, m["key"]))
        index.setdefault(".".join(k for _, k in stack), i)
    return index


def _extent(lines: list[str], i: int) -> int:
    """One past the last line of the node at line ``i`` (its children and comment continuations)."""
    depth = _indent(lines[i])
    end = i + 1
    for j in range(i + 1, len(lines)):
        if not lines[j].strip():
            continue
        if _indent(lines[j]) <= depth:
            break
        end = j + 1
    return end


def _lead_start(lines: list[str], i: int) -> int:
    """First line of the comment block right above line ``i``, at its indentation."""
    start = i
    while start > 0 and lines[start - 1].lstrip().startswith("#") and _indent(lines[start - 1]) == _indent(lines[i]):
        start -= 1
    return start


def render(base: str, changes: dict[str, Set], head: list[str]) -> str:
    """``base`` (params.yaml's text) with ``changes`` written over it and ``head`` on top."""
    lines = base.splitlines()
    index = _key_index(lines)
    missing = sorted(set(changes) - set(index))
    if missing:
        raise SystemExit(f"configs/generate.py: params.yaml has no key {', '.join(missing)}; update the generator")
    # bottom-up, so the line numbers above each edit stay valid
    for path in sorted(changes, key=lambda p: index[p], reverse=True):
        change, i = changes[path], index[path]
        m = KEY_LINE.match(lines[i])
        assert m is not None
        if change.value is KEEP:
            text = lines[i].split(" #", 1)[0].rstrip() if change.comment is not None else lines[i]
            new = [with_comment(text, change.comment)] if change.comment is not None else [lines[i]]
            end = i + 1
        else:
            comment = change.comment
            if comment is None:  # keep the old end-of-line comment when it is not replaced
                old = m["rest"].split(" #", 1)
                comment = old[1].strip() if len(old) == 2 else None
            new = node_lines(m["indent"], m["key"], change.value, comment)
            end = _extent(lines, i)
        start = i
        if change.lead is not None:
            start = _lead_start(lines, i)
            new = [*change.lead, *new]
        lines[start:end] = new
    first = next(i for i, line in enumerate(lines) if KEY_LINE.match(line))
    return "\n".join([*head, *lines[first:]]) + "\n"


def set_dotted(raw: dict[str, Any], path: str, value: Any) -> None:
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = copy.deepcopy(value)


def expected(base: dict[str, Any], changes: dict[str, Set]) -> dict[str, Any]:
    """The parsed config: params.yaml's values with the changes' values set."""
    out = copy.deepcopy(base)
    for path, change in changes.items():
        if change.value is not KEEP:
            set_dotted(out, path, change.value)
    return out


def build(name: str, base_text: str) -> str:
    """The text of ``configs/<name>.yaml``, checked to parse back to the intended values."""
    changes = overrides(name)
    text = render(base_text, changes, header(name))
    want = expected(yaml.safe_load(base_text), changes)
    if yaml.safe_load(text) != want:
        raise SystemExit(f"configs/generate.py: {name}.yaml would not parse to its intended values (generator bug)")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a config differs from params.yaml + overrides")
    args = parser.parse_args(argv)
    base = PARAMS.read_text()
    stale = []
    for name in PROTOCOLS:
        path = HERE / f"{name}.yaml"
        text = build(name, base)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run python configs/generate.py", file=sys.stderr)
        return 1
    print(f"{'stale' if args.check else 'written'}: {', '.join(stale) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
