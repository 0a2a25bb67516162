"""CentroidBank: exact updates on hand-made batches, compact storage, merge and resume."""

import math

import numpy as np
import pytest
import torch

from dynamix.centroids import CentroidBank, group_sum
from dynamix.errors import DynamixError


def unit(*values: float) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float32)
    return v / v.norm()


def test_group_sum_skips_filtered_labels():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    ids, sums, counts = group_sum(feats, torch.tensor([3, 1, 3, -1]))
    assert ids.tolist() == [1, 3]
    assert counts.tolist() == [1, 2]
    assert torch.equal(sums, torch.tensor([[0.0, 1.0], [3.0, 2.0]]))


def test_group_sum_in_blocks_matches_index_add():
    gen = torch.Generator().manual_seed(2)
    feats, weights = torch.randn(200, 8, generator=gen), torch.rand(200, generator=gen)
    labels = torch.randint(-1, 30, (200,), generator=gen)
    ids, sums, counts = group_sum(feats, labels, weights, groups_per_block=4)
    keep = labels >= 0
    expected = torch.zeros(30, 8).index_add_(0, labels[keep], feats[keep] * weights[keep, None])
    assert torch.equal(ids, torch.unique(labels[keep]))
    assert torch.allclose(sums, expected[ids], atol=1e-5)
    assert torch.equal(counts, torch.bincount(labels[keep], minlength=30)[ids])


def test_init_is_normalised_mean_per_id():
    bank = CentroidBank(4, 2, dtype="fp32")
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    bank.init_from(feats, torch.tensor([0, 0, 2]))
    assert torch.allclose(bank.centroids[0], unit(1, 1))
    assert torch.allclose(bank.centroids[2], unit(0, 1))
    assert bank.counts.tolist() == [2, 0, 1, 0]
    assert bank.initialized.tolist() == [True, False, True, False]
    assert torch.equal(bank.centroids[1], torch.zeros(2))


def test_chunked_init_equals_one_shot():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(300, 16, generator=gen)
    labels = torch.randint(0, 40, (300,), generator=gen)
    one = CentroidBank(40, 16, dtype="fp32")
    one.init_from(feats, labels)
    chunked = CentroidBank(40, 16, dtype="fp32")
    for start in range(0, 300, 70):
        chunked.init_from(feats[start : start + 70], labels[start : start + 70])
    chunked.finish_init()
    assert torch.allclose(one.centroids, chunked.centroids, atol=1e-6)
    assert torch.equal(one.counts, chunked.counts)


def test_update_exact_on_hand_made_batch():
    bank = CentroidBank(3, 2, dtype="fp32")
    bank.init_from(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    # id 0 sees (0,1) and (0,1); id 1 sees (1,0); μ = 0.5
    batch = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    updated = bank.update(batch, torch.tensor([0, 1, 0]), momentum=0.5)
    assert updated.tolist() == [0, 1]
    # c0 = normalize(0.5·(1,0) + 0.5·(0,1)) = (1,1)/√2, likewise c1
    s = 1 / math.sqrt(2)
    assert torch.allclose(bank.centroids[:2], torch.tensor([[s, s], [s, s]]))
    assert bank.counts.tolist() == [3, 2, 0]
    # μ = 0.8, id 0's batch mean is (1, 0): c0 = normalize(0.8·(s, s) + 0.2·(1, 0))
    bank.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), momentum=0.8)
    expected = torch.tensor([0.8 * s + 0.2, 0.8 * s])
    assert torch.allclose(bank.centroids[0], expected / expected.norm())


def test_first_sight_takes_the_batch_mean():
    bank = CentroidBank(5, 2, dtype="fp32")
    bank.update(torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([4, 4]), momentum=0.99)
    assert torch.allclose(bank.centroids[4], unit(1, 1))
    assert bank.counts[4] == 2


def test_update_touches_only_batch_rows_and_keeps_unit_norm():
    gen = torch.Generator().manual_seed(1)
    bank = CentroidBank(10_000, 32, dtype="fp16")
    bank.init_from(torch.randn(20_000, 32, generator=gen), torch.arange(20_000) % 10_000)
    before = bank.centroids.clone()
    labels = torch.tensor([7, 7, 123, 9_999, -1])
    bank.update(torch.randn(5, 32, generator=gen), labels, momentum=0.9)
    changed = torch.nonzero((bank.centroids != before).any(1))[:, 0]
    assert changed.tolist() == [7, 123, 9_999]
    assert bank.centroids.dtype == torch.float16
    norms = bank.centroids.float().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=2e-3)


@pytest.mark.parametrize("dtype", ["fp16", "bf16", torch.float32])
def test_storage_dtype(dtype):
    bank = CentroidBank(3, 4, dtype=dtype)
    bank.init_from(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    bank.update(torch.randn(2, 4), torch.tensor([1, 2]), momentum=0.5)
    expected = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)
    assert bank.centroids.dtype == expected
    assert torch.allclose(bank.centroids.float().norm(dim=1), torch.ones(3), atol=1e-2)


def test_unknown_dtype_is_a_user_error():
    with pytest.raises(DynamixError, match="fp16, bf16 or fp32"):
        CentroidBank(3, 4, dtype="int8")


def test_gather_fn_sees_the_batch_before_the_update():
    seen = []

    def gather(feats, labels):  # stands in for a DDP all-gather: adds a "remote" sample
        seen.append(len(labels))
        return torch.cat([feats, torch.tensor([[0.0, 1.0]])]), torch.cat([labels, labels[:1]])

    bank = CentroidBank(2, 2, dtype="fp32")
    bank.update(torch.tensor([[1.0, 0.0]]), torch.tensor([1]), momentum=0.9, gather_fn=gather)
    assert seen == [1]
    assert torch.allclose(bank.centroids[1], unit(1, 1))


def test_merge_is_count_weighted_and_remaps():
    bank = CentroidBank(5, 2, dtype="fp32")
    feats = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] + [[1.0, 1.0]])
    bank.init_from(feats, torch.tensor([1, 1, 1, 3, 4]))
    merged = bank.merge(np.array([0, 1, 2, 1, 4]))  # id 3 folds into id 1
    assert merged == 1
    # weights 3 and 1: normalize(3·(1,0) + 1·(0,1))
    assert torch.allclose(bank.centroids[1], unit(3, 1))
    assert bank.counts.tolist() == [0, 4, 0, 0, 1]
    assert torch.equal(bank.centroids[3], torch.zeros(2))
    assert torch.allclose(bank.centroids[4], unit(1, 1))  # untouched


def test_merge_rejects_mapping_to_non_representative():
    bank = CentroidBank(3, 2, dtype="fp32")
    with pytest.raises(ValueError, match="representative"):
        bank.merge(np.array([1, 2, 2]))


def test_state_dict_round_trip():
    bank = CentroidBank(6, 4, dtype="bf16")
    bank.init_from(torch.randn(12, 4), torch.arange(12) % 6)
    clone = CentroidBank(6, 4, dtype="bf16")
    clone.load_state_dict(bank.state_dict())
    assert torch.equal(clone.centroids, bank.centroids)
    assert torch.equal(clone.counts, bank.counts)
    with pytest.raises(DynamixError, match="shape"):
        CentroidBank(7, 4).load_state_dict(bank.state_dict())
