"""Import protocols (raw, smart, ntu), their inverse, and fixed-length batching."""
import numpy as np
import pytest

from attacks.core.data import preprocessing as pp
from attacks.core.data.readers import gtu
from attacks.core.data.readers.base import RawClip
from attacks.core.data.readers.synthetic import generate, rest_pose
from attacks.core.skeletons import get_skeleton

NTU = get_skeleton("ntu25")
CMU = get_skeleton("cmu25")


def rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def walking_rest_pose(skeleton, frames, yaw=0.0, start=(0.0, 0.0, 0.0), step=(0.0, 0.0, 0.0)):
    """The rest pose turned by ``yaw`` and moved by ``step`` per frame: (1, T, V, 3)."""
    pose = rest_pose(skeleton) @ rotation_y(yaw).T
    moves = np.asarray(start) + np.arange(frames)[:, None] * np.asarray(step)
    return (pose[None] + moves[:, None, :])[None].astype(np.float32)


def clip_of(motion, fps=30.0, **meta):
    return RawClip(motion=motion, fps=fps, label="a", source="test", meta=dict(meta))


def wiggle(motion, seed=0):
    """Give a motion some non-rigid per-frame variation so that frames differ."""
    rng = np.random.default_rng(seed)
    return (motion + rng.normal(0, 0.01, motion.shape)).astype(np.float32)


# ---- raw ------------------------------------------------------------------------------

def test_raw_leaves_motions_untouched():
    clips = generate(NTU, num_classes=2, clips_per_class=2, num_frames=20)
    before = [c.motion.copy() for c in clips]
    out, stats = pp.apply_protocol(clips, "raw", NTU)
    assert stats == {}
    assert len(out) == len(clips)
    for c, m in zip(out, before):
        np.testing.assert_array_equal(c.motion, m)
        assert c.fps == 30.0 and c.num_frames == 20


def test_unknown_protocol_and_raw_options_are_errors():
    clips = generate(NTU, num_classes=1, clips_per_class=1, num_frames=10)
    with pytest.raises(ValueError, match="unknown protocol"):
        pp.apply_protocol(clips, "hdm", NTU)
    with pytest.raises(ValueError, match="no options"):
        pp.apply_protocol(clips, "raw", NTU, window=60)


# ---- smart ----------------------------------------------------------------------------

def test_smart_windows_count_length_and_source_frames():
    motion = wiggle(walking_rest_pose(NTU, 150))
    out, stats = pp.apply_protocol([clip_of(motion, performer=3)], "smart", NTU)
    # 150 frames, window 60, stride 30: starts 0, 30, 60, 90 (a window at 120 would run past the end)
    assert len(out) == 4 == stats["windows_out"]
    assert [c.frame_range for c in out] == [(0, 60), (30, 90), (60, 120), (90, 150)]
    assert all(c.motion.shape == (1, 60, 25, 3) for c in out)
    assert all(c.meta["performer"] == 3 and c.label == "a" for c in out)
    assert stats["window"] == 60 and stats["stride"] == 30 and stats["clips_in"] == 1


def test_smart_custom_window_and_stride():
    motion = wiggle(walking_rest_pose(NTU, 100))
    out, _ = pp.apply_protocol([clip_of(motion)], "smart", NTU, window=40, stride=20)
    assert [c.frame_range for c in out] == [(0, 40), (20, 60), (40, 80), (60, 100)]


def test_smart_centres_and_faces_each_window_but_keeps_translation_within_it():
    yaw = 2.3
    motion = walking_rest_pose(NTU, 90, yaw=yaw, start=(1.0, 0.2, -3.0), step=(0.01, 0.0, 0.02))
    out, _ = pp.apply_protocol([clip_of(motion)], "smart", NTU)
    rest = rest_pose(NTU)
    for c in out:
        first = c.motion[0, 0]
        np.testing.assert_allclose(first[NTU.center_joint], 0.0, atol=1e-5)
        right_minus_left = first[NTU.hips[1]] - first[NTU.hips[0]]
        assert right_minus_left[0] < 0 and abs(right_minus_left[2]) < 1e-5  # body faces +z
        # A rest pose turned and moved comes back as the (centred) rest pose facing +z.
        np.testing.assert_allclose(first, rest - rest[NTU.center_joint], atol=1e-5)
        # The walk within the window is kept (60 frames * 0.0224 m), in the facing frame.
        travelled = c.motion[0, -1, NTU.center_joint] - first[NTU.center_joint]
        np.testing.assert_allclose(np.linalg.norm(travelled), 59 * np.hypot(0.01, 0.02), rtol=1e-4)
        assert np.isclose(np.cos(c.meta["world"]["rotation_y"] + yaw), 1.0)  # turned back by -yaw


def test_smart_uses_shoulders_when_the_skeleton_has_no_hips():
    no_hips = get_skeleton({**NTU.to_dict(), "hips": None})
    motion = walking_rest_pose(no_hips, 60, yaw=-1.0)
    out, _ = pp.apply_protocol([clip_of(motion)], "smart", no_hips)
    first = out[0].motion[0, 0]
    right_minus_left = first[8] - first[4]
    assert right_minus_left[0] < 0 and abs(right_minus_left[2]) < 1e-5


@pytest.mark.parametrize("protocol", ["smart", "ntu"])
@pytest.mark.parametrize("skeleton", [NTU, CMU], ids=["ntu25", "cmu25"])
def test_protocols_are_rigid_and_keep_bone_lengths(protocol, skeleton):
    clips = generate(skeleton, num_classes=3, clips_per_class=2, num_frames=70, seed=4)
    out, _ = pp.apply_protocol(clips, protocol, skeleton)
    assert out
    for c in out:
        source = next(s for s in clips if s.source == c.source)
        frames = slice(*c.frame_range) if protocol == "smart" else slice(0, source.num_frames)
        before = skeleton.bone_lengths(source.motion[0, frames])
        after = skeleton.bone_lengths(c.motion[0, : before.shape[0]])
        np.testing.assert_allclose(after, before, atol=1e-5)


def test_smart_short_clips_are_padded_by_default_or_dropped():
    short = wiggle(walking_rest_pose(NTU, 25))
    out, stats = pp.apply_protocol([clip_of(short)], "smart", NTU)
    assert len(out) == 1 and out[0].num_frames == 60 and stats["short_clips_padded"] == 1
    assert out[0].frame_range == (0, 25)
    np.testing.assert_array_equal(out[0].motion[:, 24:], np.repeat(out[0].motion[:, 24:25], 36, axis=1))
    assert not np.array_equal(out[0].motion[:, 23], out[0].motion[:, 24])

    out, stats = pp.apply_protocol([clip_of(short)], "smart", NTU, short="drop")
    assert out == [] and stats["short_clips_dropped"] == 1
    with pytest.raises(ValueError, match="short"):
        pp.apply_protocol([clip_of(short)], "smart", NTU, short="loop")


def test_smart_resamples_to_a_target_frame_rate():
    motion = walking_rest_pose(CMU, 241, step=(0.0, 0.0, 0.005))  # 2 s at 120 Hz
    out, stats = pp.apply_protocol([clip_of(motion, fps=120.0)], "smart", CMU, fps=60)
    # 241 frames at 120 Hz -> 121 frames at 60 Hz -> windows at 0, 30, 60
    assert [c.fps for c in out] == [60.0] * 3
    assert [c.frame_range for c in out] == [(0, 119), (60, 179), (120, 239)]
    # One output frame = two source frames: the walk covers 59 * 2 * 5 mm per window.
    step = out[0].motion[0, -1, CMU.center_joint] - out[0].motion[0, 0, CMU.center_joint]
    np.testing.assert_allclose(np.linalg.norm(step), 59 * 2 * 0.005, rtol=1e-4)


def test_smart_to_world_restores_each_window():
    clips = generate(CMU, num_classes=2, clips_per_class=2, num_frames=100, seed=9)
    out, _ = pp.apply_protocol(clips, "smart", CMU)
    for c in out:
        source = next(s for s in clips if s.source == c.source)
        back = pp.to_world(c.motion, c.meta["world"])
        np.testing.assert_allclose(back, source.motion[:, slice(*c.frame_range)], atol=1e-5)


# ---- ntu ------------------------------------------------------------------------------

def test_ntu_shape_padding_persons_and_repetition():
    motion = wiggle(walking_rest_pose(NTU, 70, yaw=0.5, step=(0.01, 0, 0)))
    out, stats = pp.apply_protocol([clip_of(motion)], "ntu", NTU)
    m = out[0].motion
    assert m.shape == (2, 300, 25, 3)
    assert not m[1].any()  # the absent second person is zero
    np.testing.assert_allclose(m[0, 70:140], m[0, :70], atol=1e-6)  # padded by repeating the clip
    assert stats["frames"] == 300 and stats["persons"] == 2 and stats["clips_out"] == 1


def test_ntu_centres_every_frame_and_aligns_spine_and_shoulders():
    motion = wiggle(walking_rest_pose(NTU, 50, yaw=-2.0, start=(0.3, 0.1, 2.5), step=(0.02, 0, 0)), seed=1)
    motion[0] = motion[0] @ np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]]).T
    second = motion + np.array([0.8, 0, 0], dtype=np.float32)
    out, _ = pp.apply_protocol([clip_of(np.concatenate([motion, second]))], "ntu", NTU, frames=100)
    m = out[0].motion
    assert m.shape == (2, 100, 25, 3)
    np.testing.assert_allclose(m[0, :, NTU.center_joint], 0.0, atol=1e-5)  # per-frame centring
    spine = m[0, 0, NTU.spine[1]] - m[0, 0, NTU.spine[0]]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 1, 0], atol=1e-5)
    left_minus_right = m[0, 0, NTU.shoulders[0]] - m[0, 0, NTU.shoulders[1]]
    assert left_minus_right[0] > 0 and abs(left_minus_right[2]) < 1e-5
    # The second person keeps its place relative to the first (rigid, shared transform).
    np.testing.assert_allclose(np.linalg.norm(m[1, :50, 0] - m[0, :50, 0], axis=-1), 0.8, atol=1e-4)


def test_ntu_removes_null_frames_and_truncates_long_clips():
    motion = wiggle(walking_rest_pose(NTU, 40, step=(0.01, 0, 0)))
    with_gaps = motion.copy()
    with_gaps[0, 10:15] = 0
    out, stats = pp.apply_protocol([clip_of(with_gaps)], "ntu", NTU, frames=60)
    compact = np.concatenate([motion[:, :10], motion[:, 15:]], axis=1)
    reference, _ = pp.apply_protocol([clip_of(compact)], "ntu", NTU, frames=60)
    np.testing.assert_allclose(out[0].motion, reference[0].motion, atol=1e-6)
    assert stats["null_frames_removed"] == 5 and out[0].meta["world"]["frames"] == 35

    out, stats = pp.apply_protocol([clip_of(motion)], "ntu", NTU, frames=30)
    assert out[0].motion.shape[1] == 30 and stats["truncated"] == 1

    out, stats = pp.apply_protocol([clip_of(np.zeros((1, 10, 25, 3)))], "ntu", NTU)
    assert out == [] and stats["empty_clips_dropped"] == 1


def test_ntu_to_world_restores_one_and_two_person_clips():
    one = wiggle(walking_rest_pose(NTU, 80, yaw=1.0, start=(0.5, 0, 3), step=(0, 0, -0.01)))
    two = np.concatenate([one, wiggle(one + np.float32(0.7), seed=3)])
    out, _ = pp.apply_protocol([clip_of(one), clip_of(two)], "ntu", NTU)
    for source, c in zip([one, two], out):
        back = pp.to_world(c.motion, c.meta["world"])
        assert back.shape == source.shape
        np.testing.assert_allclose(back, source, atol=1e-5)
    full = pp.to_world(out[0].motion, out[0].meta["world"], crop=False)
    assert full.shape == (2, 300, 25, 3) and not full[1].any()


def test_to_world_without_transform_is_identity():
    m = np.random.default_rng(0).normal(size=(1, 5, 25, 3)).astype(np.float32)
    np.testing.assert_array_equal(pp.to_world(m, None), m)


# ---- real data ----------------------------------------------------------------------

@pytest.fixture
def gtu_clips(shared_datasets):
    folder = shared_datasets / "gtu3dactions"
    files = [folder / "4" / "movement1.txt", folder / "9" / "movement1.txt"]
    files = [f for f in files if f.exists()] or gtu.list_files(folder)[:2]
    return [c for f in files for c in gtu.read_file(f, NTU)]


def test_real_gtu_clips_through_smart_and_ntu(gtu_clips):
    smart, stats = pp.apply_protocol(gtu_clips, "smart", NTU)
    assert stats["clips_in"] == 2 and len(smart) >= 2
    for c in smart:
        source = next(s for s in gtu_clips if s.source == c.source)
        first = c.motion[0, 0]
        np.testing.assert_allclose(first[NTU.center_joint], 0, atol=1e-5)
        lateral = first[NTU.hips[1]] - first[NTU.hips[0]]
        assert lateral[0] < 0 and abs(lateral[2]) < 1e-5
        frames = source.motion[:, slice(*c.frame_range)]
        n = frames.shape[1]
        np.testing.assert_allclose(NTU.bone_lengths(c.motion[0, :n]), NTU.bone_lengths(frames[0]), atol=1e-5)
        np.testing.assert_allclose(pp.to_world(c.motion, c.meta["world"])[:, :n], frames, atol=1e-5)
    ntu, _ = pp.apply_protocol(gtu_clips, "ntu", NTU)
    for source, c in zip(gtu_clips, ntu):
        assert c.motion.shape == (2, 300, 25, 3)
        np.testing.assert_allclose(pp.to_world(c.motion, c.meta["world"]), source.motion, atol=1e-5)
    # Kinect subjects face the camera (-z): the normalisation turns them round to face +z.
    assert any(abs(c.meta["world"]["rotation_y"]) > np.pi / 2 for c in smart)


# ---- resampling and batching ---------------------------------------------------------

def test_resample_keeps_ends_and_interpolates_linearly():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(2, 7, 4, 3)).astype(np.float32)
    r = pp.resample(m, 19)
    assert r.shape == (2, 19, 4, 3)
    np.testing.assert_array_equal(r[:, 0], m[:, 0])
    np.testing.assert_array_equal(r[:, -1], m[:, -1])
    times = np.linspace(0, 6, 19)
    expected = np.stack([np.interp(times, np.arange(7), m[p, :, v, c])
                         for p in range(2) for v in range(4) for c in range(3)], -1)
    np.testing.assert_allclose(r.transpose(1, 0, 2, 3).reshape(19, -1), expected, atol=1e-6)
    np.testing.assert_array_equal(pp.resample(m[:, :1], 5), np.repeat(m[:, :1], 5, axis=1))
    np.testing.assert_allclose(pp.resample(m, 3), m[:, [0, 3, 6]], atol=1e-7)


def test_to_fixed_length_resamples_each_clip_and_fixes_persons():
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(1, 10, 5, 3)), rng.normal(size=(3, 33, 5, 3)), rng.normal(size=(2, 1, 5, 3))]
    batch = pp.to_fixed_length(clips, 16, 2)
    assert batch.shape == (3, 2, 16, 5, 3) and batch.dtype == np.float32
    assert not batch[0, 1].any()
    for b, c in zip(batch, clips):
        np.testing.assert_allclose(b[: min(2, len(c))], pp.resample(c[:2], 16), atol=1e-6)


def test_normalise_for_recognition_is_pure_and_matches_centre_and_face():
    m = walking_rest_pose(NTU, 12, yaw=0.7, start=(2, 0, 1))
    before = m.copy()
    n = pp.normalise_for_recognition(m, NTU)
    np.testing.assert_array_equal(m, before)
    np.testing.assert_allclose(n[0, 0, NTU.center_joint], 0, atol=1e-6)
    lateral = n[0, 0, NTU.hips[1]] - n[0, 0, NTU.hips[0]]
    assert lateral[0] < 0 and abs(lateral[2]) < 1e-6
    same, world = pp.centre_and_face(m, NTU)
    np.testing.assert_array_equal(same, n)
    np.testing.assert_allclose(pp.to_world(n, world), m, atol=1e-5)
