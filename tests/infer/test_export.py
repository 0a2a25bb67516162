"""ONNX export of a trained checkpoint: onnxruntime matches PyTorch on real images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import dynamix.infer.export as export_mod
from dynamix.cli import main as cli_main
from dynamix.errors import DynamixError
from dynamix.infer import ParityError, check_parity, export_onnx, folder_images, load_encoder
from dynamix.infer.export import load_images


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    """`dynamix export` of the momentum encoder, parity on 5 target query images."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    argv = [
        "export",
        "--checkpoint",
        str(tiny_run.checkpoint),
        "--out",
        str(out),
        "--manifest",
        str(tiny_run.manifest("market-syn")),
        "--split",
        "query",
        "--images",
        "5",
    ]
    assert cli_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def images(tiny_run) -> torch.Tensor:
    """7 gallery images of another target (the parity check saw market-syn queries)."""
    paths = folder_images(tiny_run.world / "night-syn" / "bounding_box_test")[-7:]
    return load_images(paths, (64, 32))


def test_report_records_the_contract_and_the_parity(exported, tiny_run):
    report = json.loads(exported.with_suffix(".json").read_text())
    assert report["checkpoint"] == str(tiny_run.checkpoint) and report["step"] == 2
    assert report["encoder"] == "momentum" and report["onnx"] == "model.onnx"
    assert report["input"]["shape"] == ["batch", 3, 64, 32]
    assert report["input"]["range"] == [0.0, 1.0]
    assert report["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert report["normalization"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert report["output"]["shape"] == ["batch", 192] and report["output"]["l2_normalized"]
    parity = report["parity"]
    assert parity["images"] == 5 and parity["batch_sizes"] == [1, 5]
    assert parity["max_abs_diff"] <= 1e-4 and parity["min_cosine"] >= 0.9999
    assert report["versions"]["onnxruntime"] == ort.__version__


def test_graph_has_a_dynamic_batch_axis(exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "images" and out.name == "embedding"
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert isinstance(in_dims[0], str) and in_dims[1:] == [3, 64, 32]
    assert isinstance(out_dims[0], str) and out_dims[1:] == [192]


@pytest.mark.parametrize("batch", [1, 5, 7])
def test_onnxruntime_matches_pytorch_on_other_real_images(exported, tiny_run, images, batch):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    model = load_encoder(tiny_run.checkpoint)
    x = images[:batch]
    (got,) = session.run(["embedding"], {"images": x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == (batch, 192)
    assert np.abs(got - ref).max() <= 1e-4
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_parity_check_catches_a_different_model(exported, tiny_run, images):
    other = load_encoder(tiny_run.checkpoint)
    with torch.no_grad():
        other.bnneck.weight.mul_(torch.linspace(0.5, 1.5, other.embed_dim))
    with pytest.raises(ParityError, match=r"model\.onnx: onnxruntime disagrees with PyTorch"):
        check_parity(exported, other, images)
    report = check_parity(exported, load_encoder(tiny_run.checkpoint), images)  # the right one
    assert report["batch_sizes"] == [1, 7] and report["max_abs_diff"] <= 1e-4


def test_failed_parity_leaves_no_model_file(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "MAX_ABS_DIFF", -1.0)  # no export can pass this
    out = tmp_path / "bad.onnx"
    paths = folder_images(tiny_run.world / "market-syn" / "query")[:2]
    with pytest.raises(ParityError, match="the model was not exported"):
        export_onnx(load_encoder(tiny_run.checkpoint, "online"), out, paths)
    assert list(tmp_path.iterdir()) == []


def test_export_user_errors(tiny_run, tmp_path, capsys):
    model = load_encoder(tiny_run.checkpoint)
    with pytest.raises(DynamixError, match=r"must end in \.onnx"):
        export_onnx(model, tmp_path / "m.pt", ["x.jpg"])
    with pytest.raises(DynamixError, match="at least one real image"):
        export_onnx(model, tmp_path / "m.onnx", [])
    params = ["--params", str(tiny_run.params_file), "--set", "data.manifests_dir=/nonexistent"]
    argv = ["export", "--checkpoint", str(tiny_run.checkpoint), "--out", str(tmp_path / "m.onnx")]
    assert cli_main([*argv, *params]) == 2
    assert "market-syn.parquet: not found for the parity check" in capsys.readouterr().err
