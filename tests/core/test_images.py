"""ManifestImageDataset and transforms: shapes, [0, 1] range, two views, clear read errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from dynamix.centroids import CentroidBank
from dynamix.data.images import IMAGENET_MEAN, ManifestImageDataset, build_transforms, load_rgb
from dynamix.errors import DynamixError
from dynamix.sampling import MixedBatchSampler


def write_jpegs(folder, n, size=(96, 40), seed=0):
    """``n`` smooth random JPEGs of ``size`` (H, W); returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = (rng.random((size[0] // 8, size[1] // 8, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(coarse).resize((size[1], size[0]), Image.BILINEAR)
        path = folder / f"img_{i:03d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    return write_jpegs(tmp_path_factory.mktemp("jpegs"), 8)


@pytest.mark.parametrize("size", [(128, 64), (64, 32)])
@pytest.mark.parametrize("train", [True, False])
def test_dataset_returns_float_images_in_unit_range(jpegs, size, train):
    torch.manual_seed(0)
    ds = ManifestImageDataset(jpegs, transform=build_transforms(size, train))
    assert len(ds) == 8
    for i in range(len(ds)):
        img, index = ds[i]
        assert type(img) is torch.Tensor and index == i
        assert img.shape == (3, *size) and img.dtype == torch.float32
        assert img.min() >= 0.0 and img.max() <= 1.0


def test_eval_transform_is_resize_only_and_not_normalised(jpegs):
    ds = ManifestImageDataset(jpegs, transform=build_transforms((64, 32), train=False))
    expected = v2.Resize((64, 32), antialias=True)(v2.ToImage()(load_rgb(jpegs[0]))).float() / 255
    assert torch.allclose(ds[0][0], expected)
    assert torch.equal(ds[0][0], ds[0][0])  # deterministic


def test_two_views_are_augmented_independently(jpegs):
    torch.manual_seed(0)
    ds = ManifestImageDataset(jpegs, transform=build_transforms((64, 32), True), two_views=True)
    for i in range(len(ds)):
        first, second, index = ds[i]
        assert first.shape == second.shape == (3, 64, 32) and index == i
        assert not torch.equal(first, second)


def test_random_erasing_fills_with_the_mean_colour(tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (32, 64), (255, 255, 255)).save(path)
    t = build_transforms((64, 32), True, flip_p=0, pad=0, jitter=0, erasing_p=1.0)
    img = ManifestImageDataset([str(path)], transform=t)[0][0]
    erased = (img != 1.0).any(dim=0)
    assert erased.any()
    mean = torch.tensor(IMAGENET_MEAN)[:, None]
    assert torch.allclose(img[:, erased], mean.expand(3, int(erased.sum())))


@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing"])
def test_unreadable_image_error_names_the_file(jpegs, tmp_path, kind):
    path = tmp_path / f"{kind}.jpg"
    if kind == "garbage":
        path.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    elif kind == "truncated":
        data = open(jpegs[0], "rb").read()
        path.write_bytes(data[: len(data) // 2])
    ds = ManifestImageDataset([jpegs[0], str(path)])
    ds[0]
    with pytest.raises(DynamixError, match="cannot read image") as err:
        ds[1]
    message = str(err.value)
    assert str(path) in message and "\n" not in message and "dynamix manifest" in message


def test_paths_round_trip_through_the_packed_buffer(tmp_path):
    names = [tmp_path / "a.jpg", tmp_path / "Straße ü" / "é_0001.jpg", "rel/x.png"]
    ds = ManifestImageDataset(names, labels=[0, 1, 2], camids=[0, 0, 1])
    assert [ds.path(i) for i in range(3)] == [str(n) for n in names]
    with pytest.raises(DynamixError, match="3 paths but 2 labels"):
        ManifestImageDataset(names, labels=[0, 1])


def test_loader_with_mixed_batch_sampler(tmp_path):
    paths = write_jpegs(tmp_path, 24, size=(64, 32))
    labels = np.repeat(np.arange(6), 4)  # ids 0-2 multi-camera, 3-5 single-camera
    camids = np.r_[np.tile(np.arange(4), 3), np.repeat([4, 5, 6], 4)]
    single = labels >= 3
    sampler = MixedBatchSampler(labels, camids, single, p_m=2, p_s=1, k=2, centroids=CentroidBank(6, 4), seed=0)
    ds = ManifestImageDataset(paths, transform=build_transforms((32, 16), True), two_views=True)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=0)
    first, second, index = next(iter(loader))
    assert first.shape == second.shape == (6, 3, 32, 16)
    assert sampler.groups(index).tolist() == [0, 0, 0, 0, 1, 1]
    per_id = labels[index.numpy()].reshape(3, 2)
    assert (per_id == per_id[:, :1]).all()
