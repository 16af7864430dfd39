"""The procedural motion generator: shapes, determinism, kinematics, classes, reader interface."""
import json

import numpy as np
import pytest

from attacks.core.data.preprocessing import normalise_for_recognition, to_fixed_length
from attacks.core.data.readers import ReaderError, get_reader
from attacks.core.data.readers import synthetic as syn
from attacks.core.skeletons import get_skeleton

NTU = get_skeleton("ntu25")
CMU = get_skeleton("cmu25")

# A Kinect v1 / MSR Action3D style 20-joint rig, as a user would write it.
KINECT20 = {
    "name": "kinect20",
    "joints": ["hip_center", "spine", "shoulder_center", "head",
               "shoulder_left", "elbow_left", "wrist_left", "hand_left",
               "shoulder_right", "elbow_right", "wrist_right", "hand_right",
               "hip_left", "knee_left", "ankle_left", "foot_left",
               "hip_right", "knee_right", "ankle_right", "foot_right"],
    "parents": [-1, 0, 1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18],
    "spine": [0, 1, 2, 3],
    "parts": {"trunk": [0, 1, 2, 3], "left_arm": [4, 5, 6, 7], "right_arm": [8, 9, 10, 11],
              "left_leg": [12, 13, 14, 15], "right_leg": [16, 17, 18, 19]},
    "left_right": [[4, 8], [5, 9], [6, 10], [7, 11], [12, 16], [13, 17], [14, 18], [15, 19]],
    "hips": [12, 16],
    "shoulders": [4, 8],
}


@pytest.fixture
def kinect20(tmp_path):
    path = tmp_path / "kinect20.json"
    path.write_text(json.dumps(KINECT20))
    return get_skeleton(str(path))


def motions(clips):
    return np.stack([c.motion for c in clips])


def test_counts_labels_and_meta():
    clips = syn.generate(NTU, num_classes=4, clips_per_class=7, num_frames=25, fps=20, num_performers=3)
    assert len(clips) == 28
    assert [c.meta["class_id"] for c in clips] == [k for k in range(4) for _ in range(7)]
    assert len({c.label for c in clips}) == 4
    assert {c.label for c in clips} == {name for name, _ in syn.ACTIONS[:4]}
    assert all(c.motion.shape == (1, 25, 25, 3) and c.motion.dtype == np.float32 for c in clips)
    assert all(c.fps == 20.0 for c in clips)
    assert sorted({c.meta["performer"] for c in clips}) == [0, 1, 2]
    assert len({c.source for c in clips}) == 28
    with pytest.raises(ValueError):
        syn.generate(NTU, num_classes=len(syn.ACTIONS) + 1)


def test_deterministic_per_seed_and_different_across_seeds():
    a = motions(syn.generate(NTU, num_classes=3, clips_per_class=3, num_frames=30, seed=5))
    b = motions(syn.generate(NTU, num_classes=3, clips_per_class=3, num_frames=30, seed=5))
    c = motions(syn.generate(NTU, num_classes=3, clips_per_class=3, num_frames=30, seed=6))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_a_class_does_not_depend_on_how_many_classes_were_asked_for():
    few = syn.generate(CMU, num_classes=2, clips_per_class=3, num_frames=20, seed=1)
    many = syn.generate(CMU, num_classes=5, clips_per_class=3, num_frames=20, seed=1)
    np.testing.assert_array_equal(motions(few), motions(many[:6]))


@pytest.mark.parametrize("skeleton", [NTU, CMU], ids=["ntu25", "cmu25"])
def test_bone_lengths_are_constant_within_a_clip(skeleton):
    clean = syn.generate(skeleton, num_classes=len(syn.ACTIONS), clips_per_class=2, num_frames=40, noise=0.0)
    for c in clean:
        lengths = skeleton.bone_lengths(c.motion[0])
        np.testing.assert_allclose(lengths, lengths[:1].repeat(len(lengths), 0), atol=1e-6)
        assert lengths.min() > 0.02
    noisy = syn.generate(skeleton, num_classes=3, clips_per_class=2, num_frames=40, noise=0.003)
    for c, same_clip_clean in zip(noisy, clean):  # the first classes' clips are the same clips
        assert skeleton.bone_lengths(c.motion[0]).std(axis=0).max() < 0.01
        difference = np.abs(c.motion - same_clip_clean.motion)
        assert 0.001 < difference.mean() < 0.005 and difference.max() < 0.03


def test_rest_pose_stands_1_7_m_tall_facing_plus_z():
    for skeleton in (NTU, CMU):
        pose = syn.rest_pose(skeleton)
        assert 1.6 < pose[:, 1].max() - pose[:, 1].min() < 1.8
        assert abs(pose[:, 1].min()) < 1e-9
        assert pose[skeleton.spine[-1], 1] > pose[skeleton.spine[0], 1]
        left_hip, right_hip = skeleton.hips
        assert pose[left_hip, 0] > 0 > pose[right_hip, 0]  # left side on +x
        left_shoulder, _ = skeleton.shoulders
        assert pose[left_shoulder, 1] > pose[left_hip, 1]
        feet = [skeleton.parts["left_leg"][-1], skeleton.parts["right_leg"][-1]]
        assert (pose[feet, 1] < 0.15).all()


def test_performers_differ_in_proportions():
    clips = syn.generate(NTU, num_classes=2, clips_per_class=6, num_frames=20, num_performers=3, noise=0.0)
    lengths = {(c.meta["class_id"], c.meta["performer"]): NTU.bone_lengths(c.motion[0, 0]) for c in clips}
    # The same performer has the same body in every class and clip ...
    np.testing.assert_allclose(lengths[(0, 1)], lengths[(1, 1)], atol=1e-6)
    # ... and different performers have different bodies (not just a different size).
    ratio = lengths[(0, 0)] / lengths[(0, 1)]
    assert np.abs(lengths[(0, 0)] - lengths[(0, 1)]).max() > 0.01
    assert ratio.max() - ratio.min() > 0.01


def test_works_on_a_20_joint_json_skeleton(kinect20):
    clips = syn.generate(kinect20, num_classes=6, clips_per_class=2, num_frames=30, noise=0.0)
    assert all(c.motion.shape == (1, 30, 20, 3) for c in clips)
    pose = syn.rest_pose(kinect20)
    assert 1.6 < pose[:, 1].max() < 1.8 and pose[3, 1] == pose[:, 1].max()  # the head on top
    for c in clips:
        lengths = kinect20.bone_lengths(c.motion[0])
        np.testing.assert_allclose(lengths.std(axis=0), 0, atol=1e-6)


def test_a_skeleton_without_limb_parts_is_refused_with_a_reason():
    bare = get_skeleton({**KINECT20, "parts": {"trunk": [0, 1, 2, 3]}})
    with pytest.raises(ValueError, match="limb parts"):
        syn.generate(bare, num_classes=2, clips_per_class=1)
    with pytest.raises(ReaderError, match="limb parts"):
        syn.read_file("classes=2,clips=1", bare)


def test_actions_move_the_body_parts_they_name():
    clips = {c.label: c.motion[0] for c in syn.generate(NTU, num_classes=len(syn.ACTIONS), clips_per_class=1,
                                                          num_frames=90, noise=0.0)}
    head, right_hand, left_hand = 3, 11, 7

    def travel(m, joint):  # path length relative to the pelvis
        rel = m[:, joint] - m[:, 0]
        return np.linalg.norm(np.diff(rel, axis=0), axis=-1).sum()

    assert travel(clips["wave right arm"], right_hand) > 3 * travel(clips["wave right arm"], left_hand)
    assert travel(clips["wave left arm"], left_hand) > 3 * travel(clips["wave left arm"], right_hand)
    wave = clips["wave right arm"]
    assert (wave[:, right_hand, 1] > wave[:, 20, 1]).all()  # the waving hand stays above the shoulders
    raise_arms = clips["raise both arms"]
    assert (raise_arms[:, [left_hand, right_hand], 1] > raise_arms[:, [head], 1]).any(axis=0).all()
    squat = clips["squat"]
    assert squat[:, 0, 1].max() - squat[:, 0, 1].min() > 0.25  # the pelvis goes down and up
    jump = clips["jump"]
    assert (jump[..., 1].min(axis=1) > 0.1).any()  # both feet off the floor at some point
    for label in ("squat", "bow", "wave right arm", "side bend"):
        assert clips[label][..., 1].min(axis=1).max() < 1e-6  # grounded: some joint on the floor
    bow = clips["bow"]
    lean = (bow[:, head] - bow[:, 0])[:, [0, 2]]
    assert np.linalg.norm(lean, axis=-1).max() > 0.4  # the head comes forward of the pelvis
    kick = clips["kick right leg"]
    assert kick[:, 19, 1].max() > 0.4 and kick[:, 15, 1].max() < 0.05  # right foot up, left foot down


def test_classes_are_separable_by_a_nearest_centroid_rule():
    """A cheap proxy for 'a small GCN learns them': held-out clips of another seed."""
    def features(clips):
        x = to_fixed_length([normalise_for_recognition(c.motion, NTU) for c in clips], 20, 1)[:, 0]
        x = np.concatenate([x.mean(1), x.std(1)], axis=-1)  # indifferent to each clip's phase
        return x.reshape(len(clips), -1), np.array([c.meta["class_id"] for c in clips])

    train_x, train_y = features(syn.generate(NTU, num_classes=8, clips_per_class=10, num_frames=60, seed=0))
    test_x, test_y = features(syn.generate(NTU, num_classes=8, clips_per_class=10, num_frames=60, seed=1))
    centroids = np.stack([train_x[train_y == k].mean(0) for k in range(8)])
    predicted = np.linalg.norm(test_x[:, None] - centroids[None], axis=-1).argmin(1)
    assert (predicted == test_y).mean() > 0.9


# ---- reader interface -----------------------------------------------------------------

def test_reader_lists_one_pseudo_path_per_class_and_reads_what_generate_makes():
    reader = get_reader("synthetic")
    files = reader.list_files("classes=3,clips=4,frames=30,seed=2")
    assert len(files) == 3
    clips = [c for f in files for c in reader.read_file(f, CMU)]
    expected = syn.generate(CMU, num_classes=3, clips_per_class=4, num_frames=30, seed=2)
    np.testing.assert_array_equal(motions(clips), motions(expected))
    assert [c.source for c in clips] == [c.source for c in expected]
    assert [c.label for c in clips] == [c.label for c in expected]
    # A whole spec read at once equals the per-class reads.
    np.testing.assert_array_equal(motions(reader.read_file("classes=3,clips=4,frames=30,seed=2", CMU)),
                                  motions(clips))


def test_reader_defaults_overrides_and_errors():
    assert len(syn.list_files("")) == len(syn.list_files("default")) == syn.DEFAULTS["classes"]
    clips = syn.read_file(syn.list_files("classes=2,clips=3,frames=12")[1], NTU, fps=15, units="cm")
    assert len(clips) == 3 and all(c.fps == 15.0 and c.meta["class_id"] == 1 for c in clips)
    for bad, message in [("classes=six", "not a number"), ("colour=red", "bad synthetic spec"),
                         ("classes=0", "classes=0"), ("clips", "bad synthetic spec"),
                         (f"classes={len(syn.ACTIONS) + 1}", "must be in")]:
        with pytest.raises(ReaderError, match=message):
            syn.list_files(bad)
    with pytest.raises(ReaderError, match="outside"):
        syn.read_file("synthetic/classes=2,clips=1/class5", NTU)
