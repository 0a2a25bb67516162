"""ReIDModel and MomentumEncoder on a tiny ViT at 64×32 (fast on a CPU)."""

import pytest
import timm
import torch

from dynamix.centroids import CentroidBank
from dynamix.errors import DynamixError
from dynamix.losses import CentroidLoss
from dynamix.model import MomentumEncoder, ReIDModel

ARCH, SIZE = "vit_tiny_patch16_224", (64, 32)


def seeded_model(**kwargs) -> ReIDModel:
    with torch.random.fork_rng():  # timm initialises from the global RNG: seed a private fork
        torch.manual_seed(0)
        return ReIDModel(ARCH, img_size=SIZE, **kwargs)


@pytest.fixture(scope="module")
def model() -> ReIDModel:
    return seeded_model()


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def test_embedding_shape_norm_and_finite(model):
    model.eval()
    emb = model(images(4))
    assert emb.shape == (4, model.embed_dim) == (4, 192)
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    out = model(images(4), return_pre_bn=True)
    assert torch.equal(out.embedding, emb) and out.pre_bn.shape == (4, 192)


def test_real_size_input_has_no_nan():
    m = ReIDModel(ARCH, img_size=(128, 64)).train()
    emb = m(torch.rand(2, 3, 128, 64))
    assert emb.shape == (2, 192) and torch.isfinite(emb).all()


def test_bnneck_bias_is_frozen(model):
    assert not model.bnneck.bias.requires_grad and model.bnneck.weight.requires_grad
    assert "mean" not in model.state_dict()  # normalisation constants are not weights


def test_unknown_arch_is_a_user_error():
    with pytest.raises(DynamixError, match="not supported"):
        ReIDModel("resnet50", img_size=SIZE)


def test_momentum_decay_zero_equals_student_and_one_stays_fixed():
    student = seeded_model()
    follower = MomentumEncoder(student, decay=0.0)
    frozen = MomentumEncoder(student, decay=1.0)
    initial = {k: v.clone() for k, v in frozen.module.state_dict().items()}
    student.train()
    student(images(4))  # moves BN running statistics
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01)
    follower.update(student, step=1)
    frozen.update(student, step=1)
    for k, v in student.state_dict().items():
        assert torch.equal(follower.module.state_dict()[k], v), k
    params = dict(frozen.module.named_parameters())
    assert all(torch.equal(params[k], initial[k]) for k in params)
    # buffers are copied, not averaged: running stats follow the student even at decay 1
    assert torch.equal(frozen.module.bnneck.running_mean, student.bnneck.running_mean)
    assert not any(p.requires_grad for p in follower.parameters())


def test_momentum_average_warmup_and_resume():
    student = torch.nn.Linear(2, 1, bias=False)
    ema = MomentumEncoder(student, decay=0.9, warmup_steps=10)
    assert ema.decay_at(5) == pytest.approx(0.45) and ema.decay_at(50) == 0.9
    with torch.no_grad():
        student.weight.fill_(1.0)
        ema.module.weight.fill_(0.0)
    ema.update(student)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.1))
    ema.train()
    assert not ema.module.training
    clone = MomentumEncoder(torch.nn.Linear(2, 1, bias=False))
    clone.load_state_dict(ema.state_dict())
    assert torch.equal(clone.module.weight, ema.module.weight) and clone.num_updates == 1


def test_local_checkpoint_loads_with_resampled_pos_embed(tmp_path):
    source = timm.create_model(ARCH, pretrained=False, num_classes=0)  # 224×224 grid
    path = tmp_path / "vit_tiny.pth"
    torch.save(source.state_dict(), path)
    m = ReIDModel(ARCH, img_size=SIZE, pretrained_path=path)
    key = "blocks.0.attn.qkv.weight"
    assert torch.equal(m.backbone.state_dict()[key], source.state_dict()[key])
    assert m.backbone.pos_embed.shape == (1, 1 + 4 * 2, 192)


def test_missing_checkpoint_names_the_path(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(DynamixError, match=r"nope\.pth: pretrained weights file not found"):
        ReIDModel(ARCH, img_size=SIZE, pretrained_path=path)


def test_wrong_keys_are_listed(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder_x.weight": torch.zeros(3), "cls_token": torch.zeros(1, 1, 192)}, path)
    with pytest.raises(DynamixError, match=r"unexpected 1: encoder_x\.weight") as err:
        ReIDModel(ARCH, img_size=SIZE, pretrained_path=path)
    assert "missing" in str(err.value) and "other.pth" in str(err.value)
    state = timm.create_model(ARCH, pretrained=False, num_classes=0).state_dict()
    state["blocks.0.norm1.weight"] = torch.ones(384)  # a ViT-S sized tensor
    torch.save(state, path)
    with pytest.raises(DynamixError, match=r"wrong shape 1: blocks\.0\.norm1\.weight"):
        ReIDModel(ARCH, img_size=SIZE, pretrained_path=path)


def test_few_steps_of_centroid_loss_reduce_it():
    model = seeded_model().train()
    momentum = MomentumEncoder(model, decay=0.9)
    x, labels = images(8, seed=1), torch.arange(8) % 4
    bank = CentroidBank(4, model.embed_dim, dtype="fp32")
    bank.init_from(momentum(x), labels)
    loss_fn = CentroidLoss(temperature=0.1, full_softmax=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(6):
        loss = loss_fn(model(x), labels, bank.centroids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        momentum.update(model, step)
        bank.update(momentum(x), labels, momentum=0.5)
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_depth_and_average_pooling_are_configurable():
    shallow = seeded_model(depth=2, global_pool="avg")
    assert len(shallow.backbone.blocks) == 2 and shallow.backbone.global_pool == "avg"
    out = shallow.eval()(images(3))
    assert out.shape == (3, 192) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(DynamixError, match="global_pool 'max'"):
        ReIDModel(ARCH, img_size=SIZE, global_pool="max")
