"""Splits: disjoint, complete, stratified, reproducible; NTU protocols follow the published ids."""
import numpy as np
import pytest

from attacks.core.data.splits import (NTU_XSUB_TRAIN_PERFORMERS, NTU_XVIEW_TRAIN_CAMERAS, protocol_split,
                            stratified_split)


def _labels(seed=3):
    # Uneven class sizes, like GTU3DActions (about 36 clips per class, some fewer).
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 60, size=14)
    return rng.permutation(np.repeat(np.arange(14), sizes))


def _assert_partition(split, n):
    joined = np.concatenate([split["train"], split["val"], split["test"]])
    assert len(joined) == n
    assert np.array_equal(np.sort(joined), np.arange(n))
    for name, idx in split.items():
        assert idx.dtype == np.int64, name
        assert np.all(np.diff(idx) > 0), f"{name} indices must be sorted and unique"


def test_stratified_split_is_a_partition():
    labels = _labels()
    split = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    _assert_partition(split, len(labels))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stratified_split_keeps_class_proportions_within_one_clip(seed):
    labels = _labels(seed)
    split = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=seed)
    for c in np.unique(labels):
        n_c = np.sum(labels == c)
        for name, fraction in [("val", 0.1), ("test", 0.2)]:
            got = np.sum(labels[split[name]] == c)
            assert abs(got - n_c * fraction) <= 1, (c, name, got, n_c)
        assert np.sum(labels[split["train"]] == c) >= 1
    # Totals follow the fractions of the whole set as well.
    assert abs(len(split["test"]) - 0.2 * len(labels)) <= 1
    assert abs(len(split["val"]) - 0.1 * len(labels)) <= 1


def test_stratified_split_is_reproducible_and_seed_dependent():
    labels = _labels()
    a = stratified_split(labels, seed=5)
    b = stratified_split(labels, seed=5)
    c = stratified_split(labels, seed=6)
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a["test"], c["test"])


def test_stratified_split_keeps_a_training_clip_for_tiny_classes():
    labels = np.array([0, 1, 1, 2, 2, 2] + [3] * 20)
    split = stratified_split(labels, val_fraction=0.3, test_fraction=0.4, seed=0)
    _assert_partition(split, len(labels))
    for c in range(4):
        assert np.sum(labels[split["train"]] == c) >= 1


def test_stratified_split_accepts_string_labels_and_rejects_bad_fractions():
    labels = np.array(["walk", "run", "sit"] * 10)
    split = stratified_split(labels, seed=0)
    _assert_partition(split, 30)
    with pytest.raises(ValueError):
        stratified_split(labels, val_fraction=0.5, test_fraction=0.5)


def _ntu_meta():
    rng = np.random.default_rng(0)
    meta = []
    for performer in range(1, 41):
        for camera in (1, 2, 3):
            for cls in range(5):
                for _ in range(int(rng.integers(1, 3))):
                    meta.append({"performer": performer, "camera": camera, "class_id": cls})
    return meta


def test_ntu_cross_subject_uses_the_published_performers():
    meta = _ntu_meta()
    split = protocol_split(meta, "ntu-xsub", val_fraction=0.1, seed=0)
    _assert_partition(split, len(meta))
    performers = np.array([m["performer"] for m in meta])
    trainval = np.concatenate([split["train"], split["val"]])
    assert set(performers[trainval]) == set(NTU_XSUB_TRAIN_PERFORMERS)
    assert set(performers[split["test"]]) == set(range(1, 41)) - NTU_XSUB_TRAIN_PERFORMERS
    assert {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38} == NTU_XSUB_TRAIN_PERFORMERS


def test_ntu_cross_view_tests_on_camera_one_and_validates_on_train_only():
    meta = _ntu_meta()
    split = protocol_split(meta, "ntu-xview", val_fraction=0.1, seed=0)
    _assert_partition(split, len(meta))
    cameras = np.array([m["camera"] for m in meta])
    assert set(cameras[split["test"]]) == {1}
    assert set(cameras[split["val"]]) <= NTU_XVIEW_TRAIN_CAMERAS
    assert set(cameras[split["train"]]) == NTU_XVIEW_TRAIN_CAMERAS
    # Validation is stratified within the training pool.
    labels = np.array([m["class_id"] for m in meta])
    pool = np.flatnonzero(np.isin(cameras, list(NTU_XVIEW_TRAIN_CAMERAS)))
    for c in range(5):
        n_c = np.sum(labels[pool] == c)
        assert abs(np.sum(labels[split["val"]] == c) - 0.1 * n_c) <= 1


def test_protocol_split_is_reproducible_and_names_missing_fields():
    meta = _ntu_meta()
    a = protocol_split(meta, "ntu-xsub", seed=2)
    b = protocol_split(meta, "ntu-xsub", seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(KeyError, match="performer"):
        protocol_split([{"camera": 1, "class_id": 0}], "ntu-xsub")
    with pytest.raises(ValueError, match="protocol"):
        protocol_split(meta, "ntu-xsetup")


def test_windows_of_one_take_stay_in_one_part():
    # 40 takes in 4 classes, cut into 1..4 overlapping windows each (as the smart protocol does).
    rng = np.random.default_rng(5)
    take_class = np.repeat(np.arange(4), 10)
    windows = rng.integers(1, 5, size=len(take_class))
    groups = np.repeat([f"take{k}.bvh" for k in range(len(take_class))], windows)
    labels = np.repeat(take_class, windows)
    split = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=1, groups=groups)
    _assert_partition(split, len(labels))
    seen = [set(groups[split[part]]) for part in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    for c in range(4):  # stratified by take: 2 of the 10 takes of every class in val and in test
        assert len({g for g in seen[2] if take_class[int(g[4:-4])] == c}) == 2
        assert len({g for g in seen[1] if take_class[int(g[4:-4])] == c}) == 2
    with pytest.raises(ValueError, match="more than one class"):
        stratified_split(np.array([0, 1]), groups=np.array(["a", "a"]))


def test_protocol_split_validates_on_whole_takes():
    meta = [m for m in _ntu_meta() for _ in range(3)]  # three windows per take
    groups = np.repeat(np.arange(len(meta) // 3), 3)
    split = protocol_split(meta, "ntu-xsub", val_fraction=0.2, seed=0, groups=groups)
    _assert_partition(split, len(meta))
    assert not set(groups[split["train"]]) & set(groups[split["val"]])
    assert len(split["val"]) > 0
