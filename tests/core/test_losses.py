"""Losses on hand-made tensors with known answers."""

import math

import pytest
import torch
import torch.nn.functional as F

from dynamix.losses import (
    CentroidLoss,
    ConsistencyLoss,
    IdentityClassifierLoss,
    TripletLoss,
    sample_negatives,
)


def normed(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=1)


def random_setup(num_ids: int = 20, batch: int = 8, dim: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    feats = normed(torch.randn(batch, dim, generator=gen))
    labels = torch.randint(0, num_ids, (batch,), generator=gen)
    centroids = normed(torch.randn(num_ids, dim, generator=gen)).half()
    return feats, labels, centroids


# --- centroid loss ---------------------------------------------------------------------


def test_centroid_loss_two_ids_by_hand():
    centroids = torch.eye(2)
    feats = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    loss = CentroidLoss(temperature=0.5, full_softmax=True)(feats, torch.tensor([0, 0]), centroids)
    # logits/τ: sample 0 → (2, 0); sample 1 → (1.2, 1.6); both target id 0
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(0.4))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_centroid_loss_equals_full_softmax_when_negatives_cover_all_ids():
    feats, labels, centroids = random_setup()
    reference = F.cross_entropy(feats @ centroids.float().T / 0.1, labels)
    full = CentroidLoss(temperature=0.1, full_softmax=True)(feats, labels, centroids)
    enough = CentroidLoss(temperature=0.1, num_negatives=20)(feats, labels, centroids)
    # sampled path: a pool of 2,000 draws covers all 20 ids, 19 negatives take the rest
    sampled = CentroidLoss(temperature=0.1, num_negatives=19, pool_size=2000)(
        feats, labels, centroids, generator=torch.Generator().manual_seed(0)
    )
    for value in (full, enough, sampled):
        assert value.item() == pytest.approx(reference.item(), rel=1e-5)


def test_centroid_loss_weights_and_ignored_labels():
    centroids = torch.eye(2)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    loss_fn = CentroidLoss(temperature=0.5, full_softmax=True)
    per_sample = math.log(1 + math.exp(-2.0))
    weighted = loss_fn(feats[:2], torch.tensor([0, 1]), centroids, weights=torch.tensor([1.0, 0.0]))
    assert weighted.item() == pytest.approx(per_sample / 2, rel=1e-6)
    ignored = loss_fn(feats, torch.tensor([0, 1, -1]), centroids)
    assert ignored.item() == pytest.approx(per_sample, rel=1e-6)


def test_centroid_loss_valid_mask_drops_columns():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # id 2: a dead duplicate
    feats, labels = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    masked = CentroidLoss(temperature=0.5, full_softmax=True)(
        feats, labels, centroids, valid_mask=torch.tensor([True, True, False])
    )
    assert masked.item() == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)


def test_centroid_loss_gradients_reach_features_only():
    feats, labels, centroids = random_setup()
    feats.requires_grad_(True)
    centroids = centroids.float().requires_grad_(True)
    CentroidLoss(num_negatives=5)(feats, labels, centroids, generator=torch.Generator().manual_seed(0)).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert centroids.grad is None


def test_sample_negatives_hardest_first_and_excludes_batch_ids():
    feats, labels, centroids = random_setup(num_ids=50)
    gen = torch.Generator().manual_seed(3)
    neg = sample_negatives(feats, labels, centroids, 6, hard_fraction=1.0, pool_size=5000, generator=gen)
    others = torch.tensor([i for i in range(50) if i not in labels.tolist()])
    score = (feats @ centroids[others].float().T).amax(0)
    assert sorted(neg.tolist()) == sorted(others[score.topk(6).indices].tolist())


def test_sample_negatives_respects_mask_size_and_seed():
    feats, labels, centroids = random_setup(num_ids=1000)
    valid = torch.arange(1000) % 2 == 0
    draws = [
        sample_negatives(feats, labels, centroids, 32, valid_mask=valid, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    neg = draws[0]
    assert 0 < len(neg) <= 32 and len(set(neg.tolist())) == len(neg)
    assert valid[neg].all()
    assert not torch.isin(neg, labels).any()


# --- triplet loss ----------------------------------------------------------------------


def test_triplet_zero_when_clusters_are_far_apart():
    feats = normed(torch.tensor([[1.0, 0.01], [1.0, -0.01], [0.01, 1.0], [-0.01, 1.0]]))
    assert TripletLoss(margin=0.3)(feats, torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_triplet_hand_computed_value():
    s = 1 / math.sqrt(2)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]], requires_grad=True)
    loss = TripletLoss(margin=0.3)(feats, torch.tensor([0, 0, 1]))
    # anchors 0 and 1: d_ap = 1, d_an = 1 − s; anchor 2 has no positive
    assert loss.item() == pytest.approx(1 - (1 - s) + 0.3, rel=1e-6)
    loss.backward()
    assert feats.grad.abs().sum() > 0
    soft = TripletLoss(margin=None)(feats, torch.tensor([0, 0, 1]))
    assert soft.item() == pytest.approx(math.log(1 + math.exp(s)), rel=1e-6)


def test_triplet_groups_keep_mining_within_a_data_type():
    # a multi-camera pair (group 0) and a single-camera pair (group 1); sample 2 looks
    # exactly like sample 0 but belongs to another id and the other group
    feats = normed(torch.tensor([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]))
    labels, groups = torch.tensor([0, 0, 5, 5]), torch.tensor([0, 0, 1, 1])
    assert TripletLoss(margin=0.3)(feats, labels).item() > 0
    # within groups, no anchor has a negative: nothing to mine
    assert TripletLoss(margin=0.3)(feats, labels, groups).item() == 0.0
    feats4 = torch.cat([feats, normed(torch.tensor([[0.0, 1.0]]))])
    within = TripletLoss(margin=0.3)(feats4, torch.tensor([0, 0, 5, 5, 9]), torch.tensor([0, 0, 1, 1, 0]))
    # group 0 anchors 0 and 1: d_ap = 0.2, d_an(→ sample 4) = 1.0 and 0.4 → only anchor 1 hurts
    assert within.item() == pytest.approx((0.2 - 0.4 + 0.3) / 2, rel=1e-5)


def test_triplet_cross_negatives_open_single_camera_negatives_to_multi_camera_anchors_only():
    # multi-camera pair 0/1 (group 0); single-camera pair 5 (group 1) whose first image looks
    # exactly like anchor 0: as a cross negative it is anchor 0's hardest negative
    feats = normed(torch.tensor([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]))
    labels, groups = torch.tensor([0, 0, 5, 5]), torch.tensor([0, 0, 1, 1])
    cross = groups == 1
    loss = TripletLoss(margin=0.3)(feats, labels, groups, cross)
    # anchors 0 and 1: d_ap = 0.2, hardest negative = sample 2 (d = 0 and 0.2); single-camera
    # anchors 2 and 3 still see no negative inside their own group and are left out
    assert loss.item() == pytest.approx(((0.2 - 0.0 + 0.3) + (0.2 - 0.2 + 0.3)) / 2, rel=1e-5)
    assert TripletLoss(margin=0.3)(feats, labels, groups).item() == 0.0  # closed: nothing to mine
    # a cross negative is never a positive, and a filtered image (label −1) is never used
    filtered = TripletLoss(margin=0.3)(feats, torch.tensor([0, 0, -1, 5]), groups, cross)
    assert filtered.item() == pytest.approx(((0.2 - 1.0 + 0.3) * 0 + (0.2 - 0.4 + 0.3)) / 2, rel=1e-5)


# --- consistency loss ------------------------------------------------------------------


def test_consistency_cosine_values_and_gradient_direction():
    online = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    momentum = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = ConsistencyLoss("cosine")(online, momentum)
    assert loss.item() == pytest.approx(0.5)  # (0 + 1) / 2
    loss.backward()
    assert online.grad is not None and momentum.grad is None


def test_consistency_kl_zero_for_equal_views_and_positive_otherwise():
    _, _, centroids = random_setup(num_ids=10)
    feats, _, _ = random_setup(num_ids=10, seed=1)
    kl = ConsistencyLoss("kl", temperature=0.1)
    assert kl(feats, feats.clone(), centroids).item() == pytest.approx(0.0, abs=1e-6)
    assert kl(feats, feats.roll(1, 0), centroids).item() > 0
    with pytest.raises(ValueError, match="centroids"):
        kl(feats, feats)


# --- ID cross-entropy (cosine classifier) -------------------------------------------


def test_id_loss_is_cross_entropy_of_cosine_logits_and_skips_non_multi_camera():
    loss_fn = IdentityClassifierLoss(dim=2, num_classes=2, temperature=0.5, label_smoothing=0.0)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # normalised: e1, e2
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    classes = torch.tensor([0, -1, 1])  # the middle one is a single-camera image
    logits = torch.tensor([[1.0, 0.0], [0.6, 0.8]]) / 0.5
    want = F.cross_entropy(logits, torch.tensor([0, 1]))
    assert loss_fn(feats, classes).item() == pytest.approx(want.item(), rel=1e-6)
    none = loss_fn(feats, torch.full((3,), -1))
    assert (none.item() == 0.0 and none.requires_grad is False) or none.grad_fn is not None


def test_id_loss_training_separates_the_classes():
    gen = torch.Generator().manual_seed(0)
    feats = torch.nn.Parameter(normed(torch.randn(8, 16, generator=gen)))
    classes = torch.arange(8) % 4
    loss_fn = IdentityClassifierLoss(dim=16, num_classes=4)
    opt = torch.optim.SGD([feats, *loss_fn.parameters()], lr=0.05)
    first = None
    for _ in range(30):
        loss = loss_fn(normed(feats), classes)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_centroid_loss_id_groups_restrict_the_contrast():
    # ids 0,1 in group 0 (video 0); ids 2,3 in group 1; id 4 multi-camera (−1)
    centroids = torch.eye(5)
    groups = torch.tensor([0, 0, 1, 1, -1])
    feats = normed(torch.tensor([[1.0, 0.5, 0.9, 0.9, 0.9], [0.0, 0.3, 0.0, 0.0, 1.0]]))
    labels = torch.tensor([0, 4])
    loss_fn = CentroidLoss(temperature=0.5, full_softmax=True)
    # by hand: sample 0 is scored against ids 0 and 1 only, the multi-camera sample against all
    own_video = F.cross_entropy(feats[:1, :2] / 0.5, torch.tensor([0]))
    everyone = F.cross_entropy(feats[1:] / 0.5, torch.tensor([4]))
    got = loss_fn(feats, labels, centroids, id_groups=groups)
    assert got.item() == pytest.approx(((own_video + everyone) / 2).item(), rel=1e-6)
    assert got.item() < loss_fn(feats, labels, centroids).item()  # other videos excluded
    # sampled path (one random negative): extra_ids bring the video's rivals in, same value
    sampled = CentroidLoss(temperature=0.5, num_negatives=1, hard_fraction=0.0)
    got_sampled = sampled(
        feats[:1],
        labels[:1],
        centroids,
        id_groups=groups,
        extra_ids=torch.tensor([0, 1]),
        generator=torch.Generator().manual_seed(0),
    )
    assert got_sampled.item() == pytest.approx(own_video.item(), rel=1e-6)


def test_centroid_loss_id_groups_ignore_unlabelled_rows():
    feats, labels, centroids = random_setup()
    labels[0] = -1
    groups = torch.arange(20) % 3
    loss = CentroidLoss(full_softmax=True)(feats, labels, centroids.float(), id_groups=groups)
    assert torch.isfinite(loss)
