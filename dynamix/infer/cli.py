"""``dynamix extract``, ``dynamix evaluate``, ``dynamix export``: use a trained checkpoint.

- extract: embeddings of a folder or a manifest → ``.npz`` (see :mod:`dynamix.infer.extract`)
- evaluate: Market-1501 metrics on the target domains → JSON (stdout and ``--out``)
- export: ONNX with an onnxruntime parity check (see :mod:`dynamix.infer.export`)

torch and friends are imported inside the handlers so that ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from dynamix.config import load_params
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

NOISY_EXPORT_LOGGERS = ("onnx_ir", "onnxscript")


def _images(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """Paths (and pid/camid when read from a manifest) named by --folder / --manifest."""
    from dynamix.infer.extract import folder_images, manifest_images

    if args.folder is not None:
        if args.split is not None:
            raise DynamixError("--split applies to --manifest only, not to --folder")
        return folder_images(args.folder), {}
    df = manifest_images(args.manifest, args.split)
    labels = {"pid": df["pid"].to_numpy(), "camid": df["camid"].to_numpy()}
    return df["path"].astype(str).tolist(), labels


def _extract(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dynamix.infer.checkpoint import build_encoder, read_checkpoint
    from dynamix.infer.extract import extract_to_file
    from dynamix.train.trainer import resolve_device

    paths, labels = _images(args)
    device = resolve_device(args.device)
    model, info = build_encoder(read_checkpoint(args.checkpoint), args.checkpoint, args.encoder, device)
    meta = {"checkpoint": args.checkpoint, "encoder": args.encoder, "step": info.step}
    with tqdm(total=len(paths), desc="extract", unit="img", disable=not args.progress) as bar:
        extract_to_file(
            model,
            paths,
            args.out,
            meta=meta,
            labels=labels,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=device,
            amp=args.amp and device.type == "cuda",
            progress=bar.update,
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dynamix.infer.evaluate import evaluate_checkpoint
    from dynamix.io import write_json_atomic

    params = load_params(args.params, args.set)
    result = evaluate_checkpoint(
        params, args.checkpoint, encoder=args.encoder, targets=args.target or None, plots_dir=args.plots_dir
    )
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps(result, sort_keys=True))
    return 0


def _export(args: argparse.Namespace) -> int:
    from dynamix.infer.checkpoint import build_encoder, read_checkpoint
    from dynamix.infer.export import export_onnx

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in NOISY_EXPORT_LOGGERS:  # one INFO line per optimisation pass otherwise
            logging.getLogger(name).setLevel(logging.WARNING)
    if args.folder is None and args.manifest is None:
        args.manifest, args.split = _default_parity_manifest(args), "query"
    paths, _ = _images(args)
    model, info = build_encoder(read_checkpoint(args.checkpoint), args.checkpoint, args.encoder)
    meta = {"checkpoint": args.checkpoint, "encoder": args.encoder, "step": info.step}
    report = export_onnx(model, args.out, paths[: args.images], meta=meta, opset=args.opset)
    print(json.dumps(report["parity"], sort_keys=True))
    return 0


def _default_parity_manifest(args: argparse.Namespace) -> str:
    """The first target's manifest (its query images) when no images were named."""
    from dynamix.data.manifest import manifest_path

    params = load_params(args.params, args.set)
    if not params.data.targets:
        raise DynamixError("export: no images for the parity check; pass --folder or --manifest")
    path = manifest_path(params, params.data.targets[0].name)
    if not path.is_file():
        raise DynamixError(
            f"{path}: not found for the parity check images; run `dynamix prepare` or pass "
            "--folder DIR / --manifest PATH"
        )
    return str(path)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="last.pt / best.pt of `dynamix train`")
    p.add_argument(
        "--encoder",
        default="momentum",
        choices=["momentum", "online"],
        help="encoder of the checkpoint (default momentum, as in training)",
    )


def _sources(p: argparse.ArgumentParser, required: bool) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--folder", help="folder of .jpg/.png images (searched recursively)")
    src.add_argument("--manifest", help="Parquet manifest (`dynamix manifest` / `prepare`)")
    p.add_argument("--split", help="with --manifest: only this split (train, query, gallery)")


def _params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a params.yaml key")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("extract", help="embeddings of a folder or manifest → .npz")
    _common(p)
    _sources(p, required=True)
    p.add_argument("--out", required=True, help="features file (.npz)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=_extract)

    p = subparsers.add_parser("evaluate", help="Market-1501 metrics of a checkpoint on the target domains → JSON")
    _common(p)
    _params(p)
    p.add_argument(
        "--target", action="append", metavar="NAME", help="only this target of data.targets (repeatable; default: all)"
    )
    p.add_argument("--out", help="also write the metrics JSON here (e.g. metrics/eval.json)")
    p.add_argument("--plots-dir", help="write ranked-list PNGs (ranks_<target>.png) here")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("export", help="ONNX export with an onnxruntime parity check")
    _common(p)
    p.add_argument("--out", required=True, help="model file (.onnx); report beside it (.json)")
    _sources(p, required=False)
    _params(p)
    p.add_argument(
        "--images",
        type=int,
        default=8,
        help="real images for the parity check (default 8; default source: the "
        "query split of the first target manifest in params.yaml)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    p.set_defaults(func=_export)
