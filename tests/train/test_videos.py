"""The id → video map behind video-restricted contrast (train.loss.single_negatives)."""

import numpy as np

from dynamix.sampling.index import IdIndex
from dynamix.train.videos import VideoGroups


def groups_of(labels, camids, single, num_ids):
    return VideoGroups(IdIndex(np.array(labels), np.array(camids), np.array(single, bool)), num_ids)


def test_video_groups_from_live_labels():
    # images: 2 multi-camera ids (0, 1), single-camera ids 2, 3 in video 7 and 4 in video 9
    groups = groups_of([0, 0, 1, 2, 2, 3, 4, -1], [0, 1, 0, 7, 7, 7, 9, 9], [0, 0, 0, 1, 1, 1, 1, 1], 6)
    assert groups.id_video.tolist() == [-1, -1, 7, 7, 9, -1]  # id 5 unused
    assert groups.tensor.tolist() == groups.id_video.tolist()
    # triplet groups: multi-camera and filtered samples 0, single-camera 1 + video
    assert groups.triplet_groups(np.array([0, 2, 3, 4, -1])).tolist() == [0, 8, 8, 10, 0]
    # every id of the batch's videos, whatever ids the batch itself holds
    assert sorted(groups.ids_of_batch_videos(np.array([1, 3]))) == [2, 3]
    assert sorted(groups.ids_of_batch_videos(np.array([2, 4, -1]))) == [2, 3, 4]
    assert len(groups.ids_of_batch_videos(np.array([0, 1]))) == 0


def test_video_groups_follow_a_relabel():
    camids, single = [7, 7, 9, 9], [1, 1, 1, 1]
    groups = groups_of([2, 2, 2, -1], camids, single, 4)  # id 3's images moved or filtered
    assert groups.id_video[3] == -1  # no images left: no group
    assert sorted(groups.ids_of_batch_videos(np.array([2]))) == [2]
    assert groups_of([2, 2, 3, 3], camids, single, 4).id_video.tolist() == [-1, -1, 7, 9]
