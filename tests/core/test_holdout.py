"""The selection split: held-out source identities, out of training, query/gallery by camera."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynamix.evaluation.holdout import MAX_SHARE, holdout_pids, holdout_split, is_held_out


def _rows(domains: dict[str, int], images_per_cam: int = 2, cams: int = 3) -> pd.DataFrame:
    """Train rows: every pid of every domain seen by ``cams`` cameras, pid 0 by one only."""
    out = []
    for domain, n_ids in domains.items():
        for pid in range(n_ids):
            for cam in range(1 if pid == 0 else cams):
                for j in range(images_per_cam):
                    out.append({"path": f"{domain}/{pid}_{cam}_{j}.jpg", "domain": domain, "pid": pid, "camid": cam})
    return pd.DataFrame(out)


def test_holdout_pids_seeded_per_source_capped_and_multi_camera_only():
    rows = _rows({"a": 40, "b": 8})
    held = holdout_pids(rows, ids_per_source=5, seed=0)
    assert set(held) == {"a", "b"}
    assert len(held["a"]) == 5
    assert len(held["b"]) == int(MAX_SHARE * 8)  # capped: a small source keeps most of its ids
    assert all(0 not in pids for pids in held.values())  # pid 0 has one camera: no cross-camera query
    again = holdout_pids(rows, ids_per_source=5, seed=0)
    assert all(np.array_equal(held[d], again[d]) for d in held)
    other = holdout_pids(rows, ids_per_source=5, seed=1)
    assert not np.array_equal(held["a"], other["a"])
    assert holdout_pids(rows, ids_per_source=0, seed=0) == {}


def test_held_out_rows_leave_training_and_form_a_cross_camera_split():
    rows = _rows({"a": 20, "b": 20})
    held = holdout_pids(rows, ids_per_source=3, seed=0)
    mask = is_held_out(rows, held)
    assert mask.sum() == 6 * 3 * 2  # 6 ids x 3 cameras x 2 images
    kept = rows[~mask]
    for domain, pids in held.items():
        assert not kept[(kept["domain"] == domain) & kept["pid"].isin(pids)].shape[0]
    query, gallery = holdout_split(rows[mask], seed=0)
    # one query per (identity, camera); the same pid number in two sources is two people
    assert len(query) == 6 * 3 and len(gallery) == len(rows[mask]) - len(query)
    assert not query.duplicated(["pid", "camid"]).any()
    assert query["pid"].nunique() == 6
    assert set(query["split"]) == {"query"} and set(gallery["split"]) == {"gallery"}
    # every query has a same-identity gallery image from another camera
    for _, q in query.iterrows():
        assert ((gallery["pid"] == q["pid"]) & (gallery["camid"] != q["camid"])).any()
