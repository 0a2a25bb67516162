"""``dynamix train --resume`` on a damaged ``last.pt``: one line naming the file and the way
out, exit 2; never a traceback (a zero-byte file used to raise IndexError inside the
handler that builds the message)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynamix.errors import DynamixError
from dynamix.train.state import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[2]
WAY_OUT = "delete it (or put back a complete copy) and run again, or start without --resume"


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint({"step": 3, "model": {"w": torch.arange(4096.0)}, "params": {}}, path)
    return path.read_bytes()


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("keep", [0, 1, 0.01, 0.5, 0.99])
def test_a_zero_byte_or_truncated_checkpoint_is_one_line_naming_the_file(good_bytes, tmp_path, keep, mmap):
    path = tmp_path / "last.pt"
    path.write_bytes(good_bytes[: int(keep * len(good_bytes)) if isinstance(keep, float) else keep])
    with pytest.raises(DynamixError) as err:
        load_checkpoint(path, mmap=mmap)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and message.endswith(WAY_OUT)
    assert "\n" not in message
    if keep == 0:
        assert message == f"{path}: checkpoint is empty (0 bytes); {WAY_OUT}"
    else:
        assert f"cannot read checkpoint of {path.stat().st_size} bytes, truncated or not a torch file" in message


def test_the_intact_checkpoint_loads_with_and_without_mmap(good_bytes, tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(good_bytes)
    for mmap in (False, True):
        state = load_checkpoint(path, mmap=mmap)
        assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.arange(4096.0))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a zip"])
def test_dynamix_train_resume_on_a_damaged_last_pt_exits_2_with_one_line(content, tmp_path, capsys):
    from dynamix.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(content)
    params = str(REPO / "params.yaml")
    args = ["--set", f"train.out_dir={out}", "--resume", "--skip-validation", "--no-progress"]  # no manifests here
    code = main(["train", "--params", params, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"dynamix train: error: {out / 'last.pt'}: ") and err.endswith(f"{WAY_OUT}\n")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # nothing written beside it
