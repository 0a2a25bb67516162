"""load_encoder: the right weights out of a real training checkpoint, one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dynamix.cli import main as cli_main
from dynamix.errors import DynamixError
from dynamix.infer import load_encoder
from dynamix.train.state import load_checkpoint, save_checkpoint


@pytest.mark.parametrize("which", ["momentum", "online"])
def test_encoder_holds_the_checkpoint_weights_in_eval_mode(tiny_run, which):
    state = load_checkpoint(tiny_run.checkpoint)
    model = load_encoder(tiny_run.checkpoint, which)
    assert not model.training and model.img_size == (64, 32)
    assert model.arch == state["params"]["model"]["arch"]
    if which == "online":
        expected = state["model"]
    else:
        expected = {k.removeprefix("module."): v for k, v in state["momentum"].items()}
        expected.pop("num_updates")
    own = model.state_dict()
    assert own.keys() == expected.keys()
    assert all(torch.equal(own[k], expected[k]) for k in own)
    x = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (3, model.embed_dim)
    assert torch.equal(a, b)  # eval mode: no drop-path, BN running stats
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)


def test_the_two_encoders_differ(tiny_run):
    # two steps into the EMA warm-up the copy has moved towards, not onto, the online model
    m = load_encoder(tiny_run.checkpoint, "momentum")
    o = load_encoder(tiny_run.checkpoint, "online")
    pairs = zip(m.parameters(), o.parameters(), strict=True)
    assert not all(torch.equal(p, q) for p, q in pairs)


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(DynamixError, match=r"nope\.pt: checkpoint not found; pass last\.pt"):
        load_encoder(tmp_path / "nope.pt")


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(nn.Linear(2, 2).state_dict(), plain)  # a torch file, not ours
    with pytest.raises(DynamixError, match="not a DynaMix training checkpoint"):
        load_encoder(plain)
    pickled = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a whole pickled module: weights_only refuses it
    with pytest.raises(DynamixError, match="cannot read as a weights-only torch file"):
        load_encoder(pickled)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(DynamixError, match="cannot read"):
        load_encoder(text)


def test_weights_that_do_not_fit_name_the_keys(tiny_run, tmp_path):
    state = load_checkpoint(tiny_run.checkpoint)
    state["params"]["model"]["arch"] = "vit_small_patch16_224"  # 384-d, checkpoint is 192-d
    path = save_checkpoint({k: v for k, v in state.items() if k != "format_version"}, tmp_path / "wrong.pt")
    with pytest.raises(
        DynamixError,
        match=r"wrong\.pt: momentum encoder weights do not fit "
        r"vit_small_patch16_224 .*wrong shape [1-9]",
    ):
        load_encoder(path)
    state["params"]["model"] = {"arch": "vit_tiny_patch16_224"}
    path = save_checkpoint({k: v for k, v in state.items() if k != "format_version"}, tmp_path / "noparams.pt")
    with pytest.raises(DynamixError, match=r"lack model\.arch/img_height/img_width"):
        load_encoder(path, "online")


def test_unknown_encoder_name(tiny_run):
    with pytest.raises(DynamixError, match="encoder must be one of momentum, online"):
        load_encoder(tiny_run.checkpoint, "ema")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    argv = [
        "extract",
        "--checkpoint",
        str(tmp_path / "gone.pt"),
        "--folder",
        str(tmp_path),
        "--out",
        str(tmp_path / "f.npz"),
    ]
    (tmp_path / "a.png").write_bytes(b"")  # the folder must not be the failing part
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gone.pt: checkpoint not found" in err
