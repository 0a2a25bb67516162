"""The id → video map behind video-restricted contrast (train.loss.single_negatives)."""

import numpy as np

from dynamix.train.videos import VideoGroups


def test_video_groups_from_live_labels():
    # images: 2 multi-camera ids (0, 1), single-camera ids 2, 3 in video 7 and 4 in video 9
    labels = np.array([0, 0, 1, 2, 2, 3, 4, -1])
    camids = np.array([0, 1, 0, 7, 7, 7, 9, 9])
    single = np.array([0, 0, 0, 1, 1, 1, 1, 1], dtype=bool)
    groups = VideoGroups(labels, camids, single, num_ids=6)
    assert groups.id_video.tolist() == [-1, -1, 7, 7, 9, -1]  # id 5 unused
    assert groups.tensor.tolist() == groups.id_video.tolist()
    # triplet groups: multi-camera and filtered samples 0, single-camera 1 + video
    assert groups.triplet_groups(np.array([0, 2, 3, 4, -1])).tolist() == [0, 8, 8, 10, 0]
    # every id of the batch's videos, whatever ids the batch itself holds
    assert sorted(groups.ids_of_batch_videos(np.array([1, 3]))) == [2, 3]
    assert sorted(groups.ids_of_batch_videos(np.array([2, 4, -1]))) == [2, 3, 4]
    assert len(groups.ids_of_batch_videos(np.array([0, 1]))) == 0


def test_video_groups_follow_a_relabel():
    labels = np.array([2, 2, 3, 3])
    camids = np.array([7, 7, 9, 9])
    single = np.ones(4, dtype=bool)
    labels_after = np.array([2, 2, 2, -1])  # id 3's images moved to id 2 or filtered
    groups = VideoGroups(labels_after, camids, single, num_ids=4)
    assert groups.id_video[3] == -1  # no images left: no group
    assert sorted(groups.ids_of_batch_videos(np.array([2]))) == [2]
    assert VideoGroups(labels, camids, single, num_ids=4).id_video.tolist() == [-1, -1, 7, 9]
