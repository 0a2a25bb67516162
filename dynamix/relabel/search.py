"""Top-k cosine search with faiss: the only neighbour structure the relabeler uses.

Memory is O(N × k), never O(N × M): relabeling needs each image's best other centroids and
merging needs each centroid's nearest centroids, nothing more. The index is an exact flat
inner-product index on L2-normalised fp32 vectors (inner product = cosine), on the GPU
when faiss has one and the caller allows it. For very large banks ``nlist > 0`` switches
to an IVF index, which trades exactness for sub-linear search time.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from dynamix.relabel.faiss_import import faiss  # the loader's INFO noise muted there

log = logging.getLogger(__name__)


def as_float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A C-contiguous fp32 numpy copy (faiss's input format) of a tensor or array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def take_rows(x: torch.Tensor | np.ndarray, rows: np.ndarray) -> torch.Tensor | np.ndarray:
    """``x[rows]`` for a tensor (on its device) or an array: gathers only what is needed."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(rows, dtype=torch.long, device=x.device)]
    return np.asarray(x)[rows]


def normalized(x: torch.Tensor | np.ndarray, inplace: bool = False) -> np.ndarray:
    """Rows L2-normalised in fp32, (N, D); zero rows stay zero.

    ``inplace=True`` overwrites ``x`` itself when it already is a C-contiguous fp32 array
    (or a CPU fp32 tensor): only for temporaries the caller owns, such as a
    :func:`take_rows` result, where it saves an (N, D) copy (2.9 GiB at 1M × 768).
    """
    out = as_float32(x)
    if not inplace:
        out = out.copy()
    faiss.normalize_L2(out)
    return out


@functools.cache
def _gpu_resources():  # one shared allocator, created on first GPU use only
    return faiss.StandardGpuResources()


def gpu_available(use_gpu: bool) -> bool:
    return bool(use_gpu) and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def faiss_index(dim: int, use_gpu: bool = False) -> faiss.Index:
    """Empty exact inner-product index; on GPU 0 when ``use_gpu`` and faiss sees a GPU."""
    index = faiss.IndexFlatIP(dim)
    if gpu_available(use_gpu):
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index


def _ivf_index(base: np.ndarray, nlist: int, nprobe: int, use_gpu: bool) -> faiss.Index:
    dim = base.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(base)  # faiss k-means has a fixed default seed: deterministic
    index.nprobe = nprobe
    if gpu_available(use_gpu):  # the GPU copy owns its own quantizer
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index  # faiss's wrapper keeps the quantizer alive (referenced_objects)


def knn_search(
    base: torch.Tensor | np.ndarray,
    queries: torch.Tensor | np.ndarray,
    k: int,
    use_gpu: bool = False,
    nlist: int = 0,
    nprobe: int = 16,
    overwrite_queries: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k of ``queries`` (N, D) among ``base`` (M, D).

    Returns ``sims`` (N, k') fp32 and ``index`` (N, k') int64 row positions in ``base``,
    best first, with k' = min(k, M); missing results (IVF only) have index −1 and
    similarity −inf. ``overwrite_queries=True`` lets a caller that owns an fp32
    ``queries`` array have it normalised in place instead of copied.
    """
    base, queries = normalized(base), normalized(queries, inplace=overwrite_queries)
    k = min(int(k), base.shape[0])
    if k <= 0 or queries.shape[0] == 0:
        return np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64)
    if nlist > 0 and base.shape[0] >= 39 * nlist:
        index = _ivf_index(base, nlist, nprobe, use_gpu)
    else:
        index = faiss_index(base.shape[1], use_gpu)
    index.add(base)
    sims, idx = index.search(queries, k)
    sims[idx < 0] = -np.inf
    return sims, idx.astype(np.int64)
