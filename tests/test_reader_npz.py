"""npz reader: SMART-style (N, T, V*3) arrays and this project's (N, M, T, V, 3) exports."""
import numpy as np
import pytest

from attacks.core.data.readers import ReaderError, get_reader
from attacks.core.data.readers import npz
from attacks.core.skeletons import get_skeleton

RNG_SEED = 7


@pytest.fixture
def ntu25():
    return get_skeleton("ntu25")


def random_motions(shape):
    return np.random.default_rng(RNG_SEED).normal(size=shape).astype(np.float32)


def save(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# ---- SMART layout --------------------------------------------------------------------

def test_smart_layout_rows_become_clips(tmp_path, ntu25):
    motions = random_motions((4, 6, 25, 3))
    path = save(tmp_path, clips=motions.reshape(4, 6, 75), classes=np.array([2, 0, 1, 2]),
                class_names=np.array(["kick", "wave", "jump"]))
    clips = npz.read_file(path, ntu25)
    assert len(clips) == 4
    for i, clip in enumerate(clips):
        assert clip.motion.shape == (1, 6, 25, 3)
        np.testing.assert_array_equal(clip.motion[0], motions[i])  # x0 y0 z0 x1 ... joint-major
        assert clip.source == f"data.npz#{i}"
        assert clip.fps == 30.0
        assert clip.person_indices == (0,)
    assert [c.label for c in clips] == ["jump", "kick", "wave", "jump"]
    assert [c.meta["class_id"] for c in clips] == [2, 0, 1, 2]


def test_one_hot_classes_equal_integer_classes(tmp_path, ntu25):
    motions = random_motions((3, 5, 75))
    ids = np.array([1, 3, 0])
    one_hot = np.eye(4, dtype=np.float32)[ids]
    by_id = npz.read_file(save(tmp_path, "a.npz", clips=motions, classes=ids), ntu25)
    by_one_hot = npz.read_file(save(tmp_path, "b.npz", clips=motions, classes=one_hot), ntu25)
    assert [c.label for c in by_id] == ["1", "3", "0"]  # no class_names: the index as text
    assert [c.label for c in by_one_hot] == [c.label for c in by_id]


def test_fps_from_file_and_option_and_lengths(tmp_path, ntu25):
    motions = random_motions((2, 8, 75))
    path = save(tmp_path, clips=motions, classes=np.array([0, 1]), fps=np.float64(120.0),
                lengths=np.array([8, 5]))
    clips = npz.read_file(path, ntu25)
    assert [c.fps for c in clips] == [120.0, 120.0]
    assert [c.num_frames for c in clips] == [8, 5]
    assert clips[1].frame_range == (0, 5)
    np.testing.assert_array_equal(clips[1].motion[0], motions[1, :5].reshape(5, 25, 3))
    assert [c.fps for c in npz.read_file(path, ntu25, fps=60)] == [60.0, 60.0]


def test_scale_converts_units(tmp_path, ntu25):
    motions = random_motions((1, 4, 75))
    clip, = npz.read_file(save(tmp_path, clips=motions, classes=np.array([0])), ntu25, scale=0.01)
    np.testing.assert_allclose(clip.motion[0], motions[0].reshape(4, 25, 3) * 0.01, rtol=1e-6)


# ---- export layout -----------------------------------------------------------------------

def export_arrays(skeleton):
    motions = random_motions((3, 2, 10, 25, 3))
    lengths = np.array([10, 7, 4])
    motions[1, 1] = 0  # the second clip has one person
    for i, n in enumerate(lengths):
        motions[i, :, n:] = 0  # frame padding
    return dict(
        clips=motions, lengths=lengths, labels=np.array([1, 0, 1]),
        class_names=np.array(["sit", "stand"]), sources=np.array(["a.skeleton", "b.skeleton", "c.skeleton"]),
        fps=np.float64(30.0), skeleton=np.array(skeleton.to_json()),
    )


def test_export_layout_round_trips(tmp_path, ntu25):
    arrays = export_arrays(ntu25)
    clips = npz.read_file(save(tmp_path, "export.npz", **arrays), ntu25)
    assert [c.num_persons for c in clips] == [2, 1, 2]
    assert [c.num_frames for c in clips] == [10, 7, 4]
    assert [c.label for c in clips] == ["stand", "sit", "stand"]
    assert [c.meta["original_source"] for c in clips] == ["a.skeleton", "b.skeleton", "c.skeleton"]
    assert clips[2].source == "export.npz#2"
    assert clips[0].person_indices == (0, 1)
    for i, clip in enumerate(clips):
        np.testing.assert_array_equal(
            clip.motion, arrays["clips"][i, : clip.num_persons, : clip.num_frames])


def test_export_persons_key_wins_over_zero_detection(tmp_path, ntu25):
    arrays = export_arrays(ntu25)
    arrays["persons"] = np.array([1, 1, 2])
    clips = npz.read_file(save(tmp_path, **arrays), ntu25)
    assert [c.num_persons for c in clips] == [1, 1, 2]


def test_export_with_string_labels(tmp_path, ntu25):
    arrays = export_arrays(ntu25)
    arrays["labels"] = np.array(["stand", "sit", "stand"])
    clips = npz.read_file(save(tmp_path, **arrays), ntu25)
    assert [c.label for c in clips] == ["stand", "sit", "stand"]
    assert [c.meta["class_id"] for c in clips] == [1, 0, 1]


def test_export_with_another_rig_is_refused(tmp_path, ntu25):
    arrays = export_arrays(ntu25)
    arrays["skeleton"] = np.array(get_skeleton("cmu25").to_json())
    with pytest.raises(ReaderError, match="'skeleton'") as err:
        npz.read_file(save(tmp_path, "export.npz", **arrays), ntu25)
    assert "export.npz" in str(err.value)


# ---- failures ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 5, 72), (2, 1, 5, 24, 3)])
def test_joint_count_mismatch_names_file_and_key(tmp_path, ntu25, shape):
    path = save(tmp_path, "short.npz", clips=np.zeros(shape, np.float32), classes=np.array([0, 1]))
    with pytest.raises(ReaderError, match="'clips'") as err:
        npz.read_file(path, ntu25)
    assert "short.npz" in str(err.value)


@pytest.mark.parametrize("missing", ["clips", "classes"])
def test_missing_key_is_named(tmp_path, ntu25, missing):
    arrays = {"clips": random_motions((2, 4, 75)), "classes": np.array([0, 1])}
    del arrays[missing]
    with pytest.raises(ReaderError, match=f"missing key '{missing}'"):
        npz.read_file(save(tmp_path, **arrays), ntu25)


def test_non_npz_files_are_refused(tmp_path, ntu25):
    text = tmp_path / "notes.npz"
    text.write_text("clips,classes\n1,2\n")
    with pytest.raises(ReaderError, match="notes.npz: not an .npz archive"):
        npz.read_file(text, ntu25)
    single = tmp_path / "array.npy"
    np.save(single, np.zeros((2, 4, 75)))
    with pytest.raises(ReaderError, match="not an .npz"):
        npz.read_file(single, ntu25)


@pytest.mark.parametrize("bad, match", [
    ({"classes": np.array([0, 5])}, "class_names"),
    ({"classes": np.array([0.5, 1.0])}, "non-integer"),
    ({"classes": np.zeros((2, 3))}, "one-hot"),
    ({"lengths": np.array([4, 9])}, "'lengths'"),
    ({"fps": np.float64(0.0)}, "fps"),
])
def test_inconsistent_fields_are_named(tmp_path, ntu25, bad, match):
    arrays = {"clips": random_motions((2, 4, 75)), "classes": np.array([0, 1]),
              "class_names": np.array(["a", "b"])}
    arrays.update(bad)
    with pytest.raises(ReaderError, match=match):
        npz.read_file(save(tmp_path, **arrays), ntu25)


def test_non_finite_values_are_refused(tmp_path, ntu25):
    motions = random_motions((3, 4, 75))
    motions[2, 1, 5] = np.nan
    with pytest.raises(ReaderError, match="row 2"):
        npz.read_file(save(tmp_path, clips=motions, classes=np.array([0, 1, 2])), ntu25)


def test_list_files_is_the_archive_itself(tmp_path):
    path = save(tmp_path, clips=np.zeros((1, 2, 75)), classes=np.array([0]))
    assert npz.list_files(path) == [path]
    with pytest.raises(ReaderError):
        npz.list_files(tmp_path / "absent.npz")
    assert get_reader("npz") is npz
