"""BVH reader: real HDM05/CMU rigs, forward kinematics, units, axes, labels and broken files."""
import json

import numpy as np
import pytest

from attacks.core.data.readers import bvh
from attacks.core.data.readers.base import ReaderError
from attacks.core.data.readers.kinematics import UNIT_NAMES, rest_positions
from attacks.core.skeletons import get_skeleton

CMU25 = get_skeleton("cmu25")
ASF_UNIT = 0.0254 / 0.45  # metres per ASF unit for `length 0.45`
CUT_NAME = "HDM_bd_cartwheelLHandStart1Reps_001_120.bvh"


@pytest.fixture
def cartwheel(shared_datasets):
    return shared_datasets / "samples" / "hdm05_bvh" / CUT_NAME


@pytest.fixture
def rest_poses(shared_datasets):
    return shared_datasets / "samples" / "rest_poses"


@pytest.fixture
def cartwheel_clip(cartwheel):
    return bvh.read_file(cartwheel, CMU25)[0]


def motion_rows(path):
    """(line number, values) of every motion row, read without the reader."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "MOTION") + 3
    return [(i + 1, np.array(lines[i].split(), dtype=float)) for i in range(start, len(lines)) if lines[i].strip()]


def cumulative_offsets(path):
    """Rest-pose joint positions by summing OFFSETs along the braces (independent of the reader)."""
    positions, stack, pending = {}, [np.zeros(3)], None
    for line in path.read_text().splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] in ("ROOT", "JOINT"):
            pending = tokens[1]
        elif tokens[0] == "End":
            pending = None
        elif tokens[0] == "OFFSET":
            here = stack[-1] + np.array(tokens[1:4], dtype=float)
            if pending is not None:
                positions[pending] = here
            stack.append(here)
        elif tokens[0] == "}":
            stack.pop()
        elif tokens[0] == "MOTION":
            break
    return positions


def write_bvh(path, joints, rows, frame_time=1 / 30):
    """joints: list of (depth, name or None for End Site, offset, channels)."""
    out, depth = ["HIERARCHY"], 0
    for level, name, offset, channels in joints:
        while depth > level:
            depth -= 1
            out.append("  " * depth + "}")
        kind = "ROOT" if level == 0 else "JOINT"
        out.append("  " * level + (f"{kind} {name}" if name else "End Site"))
        out.append("  " * level + "{")
        out.append("  " * (level + 1) + "OFFSET " + " ".join(map(str, offset)))
        if channels:
            out.append("  " * (level + 1) + f"CHANNELS {len(channels)} " + " ".join(channels))
        depth = level + 1
    while depth > 0:
        depth -= 1
        out.append("  " * depth + "}")
    out += ["MOTION", f"Frames: {len(rows)}", f"Frame Time: {frame_time:.6f}"]
    out += [" ".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(out) + "\n")
    return path


ROT = ["Zrotation", "Yrotation", "Xrotation"]
POS_ROT = ["Xposition", "Yposition", "Zposition", *ROT]
# A 1.75 m tall rig in metres: hips at the origin, a spine, a head and one leg.
TINY = [
    (0, "Hips", (0, 0, 0), POS_ROT),
    (1, "Spine", (0, 0.5, 0), ROT),
    (2, "Head", (0, 0.4, 0), ROT),
    (3, None, (0, 0.1, 0), None),
    (1, "LeftUpLeg", (0.1, 0, 0), ROT),
    (2, "LeftLeg", (0, -0.45, 0), ROT),
    (3, None, (0, -0.3, 0), None),
]
TINY_SKELETON = {"name": "tiny", "joints": ["Hips", "Spine", "Head", "LeftUpLeg", "LeftLeg", "LeftLeg_end"],
                 "parents": [-1, 0, 1, 0, 3, 4]}


# ---- the real HDM05 cut clip ------------------------------------------------------------------
def test_hdm05_cut_clip_shape_rate_and_label(cartwheel_clip):
    assert cartwheel_clip.motion.shape == (1, 401, 25, 3)
    assert cartwheel_clip.motion.dtype == np.float32
    assert cartwheel_clip.fps == 120.0
    assert cartwheel_clip.label == "cartwheelLHandStart1Reps"
    assert cartwheel_clip.meta["actor"] == "bd" and cartwheel_clip.meta["take"] == 1
    assert "group" not in cartwheel_clip.meta  # no class-group table given


def test_class_group_comes_from_the_table(cartwheel, shared_datasets):
    table = shared_datasets / "samples" / "hdm05" / "hdm05_class_groups.tsv"
    clip = bvh.read_file(cartwheel, CMU25, class_groups=table)[0]
    assert clip.meta["group"] == "cartwheel"


def test_bone_lengths_are_constant(cartwheel_clip):
    lengths = CMU25.bone_lengths(cartwheel_clip.motion[0]).astype(np.float64)
    mean, std = lengths.mean(0), lengths.std(0)
    real = mean > 1e-6  # cmu25 keeps zero-length bones (LHipJoint sits on Hips, Neck on Spine1)
    assert real.sum() >= 18
    assert (std[real] / mean[real]).max() < 1e-4
    assert std[~real].max() < 1e-6


def test_root_position_is_root_channels_times_asf_unit(cartwheel, cartwheel_clip):
    rows = motion_rows(cartwheel)
    hips = CMU25.index("Hips")
    for frame in (0, 200, 400):
        _, values = rows[frame]
        np.testing.assert_allclose(cartwheel_clip.motion[0, frame, hips], values[:3] * ASF_UNIT, rtol=1e-5)


def test_y_is_up_and_the_first_frame_stands(cartwheel_clip):
    frame = cartwheel_clip.motion[0, 0]
    y = dict(zip(CMU25.joints, frame[:, 1]))
    feet = max(y["LeftFoot"], y["RightFoot"], y["LeftToeBase"], y["RightToeBase"])
    assert y["Neck1"] > y["Spine1"] > y["Hips"] > y["LeftLeg"] > feet
    assert y["Neck1"] - feet > 1.0
    assert abs(min(y.values())) < 0.1  # feet on the floor (y = 0)


def test_rest_height_is_a_persons(cartwheel):
    parsed = bvh.parse_bvh(cartwheel)
    height = np.ptp(rest_positions(parsed.rig)[:, 1]) * ASF_UNIT
    # The HDM05 BVH export has no head bone beyond the Head joint and a zero-length
    # thorax, so its rig is shorter than the actor; still a person's size.
    assert 1.2 < height < 2.0


def test_standing_height_in_the_first_frame(cartwheel_clip):
    assert 1.1 < np.ptp(cartwheel_clip.motion[0, 0, :, 1]) < 2.0


# ---- rest-pose rigs ------------------------------------------------------------------------------
def test_rest_pose_equals_cumulative_offsets(rest_poses):
    path = rest_poses / "hdm05_rest.bvh"
    clip = bvh.read_file(path, CMU25)[0]
    expected = cumulative_offsets(path)
    assert set(CMU25.joints) <= set(expected)
    for j, name in enumerate(CMU25.joints):
        np.testing.assert_allclose(clip.motion[0, 0, j], expected[name] * ASF_UNIT, atol=1e-6, err_msg=name)


def test_full_cmu_rig_maps_onto_cmu25(rest_poses):
    full = bvh.read_file(rest_poses / "rest.bvh", CMU25)[0]
    reduced = bvh.read_file(rest_poses / "hdm05_rest.bvh", CMU25)[0]
    np.testing.assert_allclose(full.motion, reduced.motion, atol=1e-6)


def test_asf_names_and_cmu_names_give_the_same_skeleton(rest_poses, cartwheel, tmp_path):
    """The HDM05 clip uses ASF names; renamed to CMU names it must give identical positions."""
    text = cartwheel.read_text()
    cmu_names = [line.split()[1] for line in (rest_poses / "rest.bvh").read_text().splitlines()
                 if line.split()[:1] in (["ROOT"], ["JOINT"])]
    asf_names = [line.split()[1] for line in text.splitlines() if line.split()[:1] in (["ROOT"], ["JOINT"])]
    assert len(cmu_names) == len(asf_names) == 31
    lines = text.splitlines()
    k = 0
    for i, line in enumerate(lines):
        if line.split()[:1] in (["ROOT"], ["JOINT"]):
            lines[i] = line.replace(asf_names[k], cmu_names[k])
            k += 1
    renamed = tmp_path / "renamed.bvh"
    renamed.write_text("\n".join(lines) + "\n")
    a = bvh.read_file(cartwheel, CMU25)[0].motion
    b = bvh.read_file(renamed, CMU25)[0].motion
    np.testing.assert_array_equal(a, b)


def test_wrong_unit_guess_is_refused_with_a_hint(rest_poses):
    # ntu_rest.bvh has CMU names but offsets in metres: read as ASF units it is 7 cm tall.
    with pytest.raises(ReaderError, match="--units") as err:
        bvh.read_file(rest_poses / "ntu_rest.bvh", CMU25)
    assert "ntu_rest.bvh" in str(err.value)
    clip = bvh.read_file(rest_poses / "ntu_rest.bvh", CMU25, units="m")[0]
    assert 1.0 < np.ptp(clip.motion[0, 0, :, 1]) < 2.0


def test_units_option_scales_everything(cartwheel, cartwheel_clip):
    scaled = bvh.read_file(cartwheel, CMU25, units=0.06)[0]
    np.testing.assert_allclose(scaled.motion, cartwheel_clip.motion * (0.06 / ASF_UNIT), rtol=1e-5, atol=1e-6)
    assert bvh.read_file(cartwheel, CMU25, units="asf")[0].motion.tolist() == cartwheel_clip.motion.tolist()
    with pytest.raises(ReaderError, match="--units"):
        bvh.read_file(cartwheel, CMU25, units="cm")  # 24 cm tall
    with pytest.raises(ReaderError, match="units='furlong'"):
        bvh.read_file(cartwheel, CMU25, units="furlong")


# ---- synthetic rigs: conventions ---------------------------------------------------------------
def test_rotation_channels_compose_in_listed_order(tmp_path):
    # Hips rotates its children; Z then X listed means Rz @ Rx.
    joints = [(0, "Hips", (0, 0, 0), ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation"]), *TINY[1:]]
    path = write_bvh(tmp_path / "zx.bvh", joints, [[0, 1, 0, 90, 90] + [0] * 12])
    spine = bvh.read_file(path, TINY_SKELETON, units="m")[0].motion[0, 0, 1]
    # Rz(90) @ Rx(90) @ (0, 0.5, 0) = Rz(90) @ (0, 0, 0.5) = (0, 0, 0.5); plus the root at y = 1.
    np.testing.assert_allclose(spine, [0, 1, 0.5], atol=1e-6)
    joints[0] = (0, "Hips", (0, 0, 0), ["Xposition", "Yposition", "Zposition", "Xrotation", "Zrotation"])
    path = write_bvh(tmp_path / "xz.bvh", joints, [[0, 1, 0, 90, 90] + [0] * 12])
    spine = bvh.read_file(path, TINY_SKELETON, units="m")[0].motion[0, 0, 1]
    # Rx(90) @ Rz(90) @ (0, 0.5, 0) = Rx(90) @ (-0.5, 0, 0) = (-0.5, 0, 0).
    np.testing.assert_allclose(spine, [-0.5, 1, 0], atol=1e-6)


def test_child_rotation_moves_only_descendants(tmp_path):
    row = [0.2, 1.0, -0.3] + [0] * 3 + [0] * 3 + [0] * 3 + [0, 0, 90] + [0] * 3  # LeftUpLeg Xrotation 90
    clip = bvh.read_file(write_bvh(tmp_path / "knee.bvh", TINY, [row]), TINY_SKELETON, units="m")[0]
    p = dict(zip(TINY_SKELETON["joints"], clip.motion[0, 0]))
    np.testing.assert_allclose(p["Hips"], [0.2, 1.0, -0.3], atol=1e-6)
    np.testing.assert_allclose(p["LeftUpLeg"], [0.3, 1.0, -0.3], atol=1e-6)
    # Rx(90) @ (0, -0.45, 0) = (0, 0, -0.45): the thigh swings backwards, the foot follows.
    np.testing.assert_allclose(p["LeftLeg"], [0.3, 1.0, -0.75], atol=1e-6)
    np.testing.assert_allclose(p["LeftLeg_end"], [0.3, 1.0, -1.05], atol=1e-6)
    np.testing.assert_allclose(p["Head"], [0.2, 1.9, -0.3], atol=1e-6)


def test_non_root_position_channels_replace_the_offset(tmp_path):
    joints = list(TINY)
    joints[1] = (1, "Spine", (0, 0.5, 0), POS_ROT)
    row = [0, 0, 0, 0, 0, 0] + [0, 0.6, 0, 0, 0, 0] + [0] * 9
    clip = bvh.read_file(write_bvh(tmp_path / "six.bvh", joints, [row]), TINY_SKELETON, units="m")[0]
    np.testing.assert_allclose(clip.motion[0, 0, 1], [0, 0.6, 0], atol=1e-6)


def test_z_up_rig_comes_out_y_up(tmp_path):
    z_up = [(d, n, (o[0], -o[2], o[1]), c) for d, n, o, c in TINY]  # rotate the rig: y -> z
    rows = [[0, 0, 0] + [0] * 15]
    clip = bvh.read_file(write_bvh(tmp_path / "zup.bvh", z_up, rows), TINY_SKELETON, units="m")[0]
    reference = bvh.read_file(write_bvh(tmp_path / "yup.bvh", TINY, rows), TINY_SKELETON, units="m")[0]
    np.testing.assert_allclose(clip.motion, reference.motion, atol=1e-6)
    y = dict(zip(TINY_SKELETON["joints"], clip.motion[0, 0, :, 1]))
    assert y["Head"] > y["Hips"] > y["LeftLeg_end"]


def test_custom_skeleton_maps_through_aliases(tmp_path, cartwheel, cartwheel_clip):
    # ASF-style target names on the ASF-named file, and CMU names that exist only as aliases.
    spec = {"name": "legs", "joints": ["root", "LeftUpLeg", "ltibia", "LeftFoot"], "parents": [-1, 0, 1, 2]}
    skel_file = tmp_path / "legs.json"
    skel_file.write_text(json.dumps(spec))
    clip = bvh.read_file(cartwheel, str(skel_file))[0]
    expected = cartwheel_clip.motion[:, :, [CMU25.index(n) for n in ("Hips", "LeftUpLeg", "LeftLeg", "LeftFoot")]]
    np.testing.assert_array_equal(clip.motion, expected)


def test_frame_rate_is_snapped_to_whole_rates(tmp_path):
    rows = [[0, 0, 0] + [0] * 15]
    assert bvh.read_file(write_bvh(tmp_path / "a.bvh", TINY, rows, 1 / 30), TINY_SKELETON, units="m")[0].fps == 30.0
    odd = bvh.read_file(write_bvh(tmp_path / "b.bvh", TINY, rows, 0.0125), TINY_SKELETON, units="m")[0]
    assert odd.fps == 80.0
    assert bvh.read_file(tmp_path / "b.bvh", TINY_SKELETON, units="m", fps=25)[0].fps == 25.0


def test_label_is_the_stem_unless_hdm05_or_given(tmp_path):
    path = write_bvh(tmp_path / "jump_07.bvh", TINY, [[0] * 18])
    assert bvh.read_file(path, TINY_SKELETON, units="m")[0].label == "jump_07"
    assert bvh.read_file(path, TINY_SKELETON, units="m", label="jump")[0].label == "jump"


def test_unknown_units_default_is_centimetres_for_other_rigs(tmp_path):
    cm = [(d, n, tuple(100 * v for v in o), c) for d, n, o, c in TINY]
    renamed = [(d, f"bone{i}" if n else None, o, c) for i, (d, n, o, c) in enumerate(cm)]
    path = write_bvh(tmp_path / "cm.bvh", renamed, [[0, 100, 0] + [0] * 15])
    spec = {"name": "two", "joints": ["bone0", "bone2"], "parents": [-1, 0]}
    clip = bvh.read_file(path, spec)[0]
    np.testing.assert_allclose(clip.motion[0, 0], [[0, 1, 0], [0, 1.9, 0]], atol=1e-6)
    assert clip.meta["metres_per_unit"] == UNIT_NAMES["cm"]


# ---- broken files ----------------------------------------------------------------------------
def broken_copy(src, dst, edit):
    lines = src.read_text().splitlines()
    dst.write_text("\n".join(edit(lines)) + "\n")
    return dst


def motion_start(lines):
    return next(i for i, line in enumerate(lines) if line.strip() == "MOTION") + 3


def assert_reader_error(path, match, line=None, skeleton=CMU25, **options):
    with pytest.raises(ReaderError, match=match) as err:
        bvh.read_file(path, skeleton, **options)
    assert str(path) in str(err.value)
    if line is not None:
        assert err.value.line == line
        assert f"line {line}" in str(err.value)
    return err.value


def test_truncated_motion_is_refused(cartwheel, tmp_path):
    path = broken_copy(cartwheel, tmp_path / "short.bvh", lambda ls: ls[:-100])
    assert_reader_error(path, r"only 301 rows.*truncated", line=len(cartwheel.read_text().splitlines()) - 100)


def test_row_cut_in_the_middle_is_refused(cartwheel, tmp_path):
    def cut(lines):
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        return lines
    path = broken_copy(cartwheel, tmp_path / "cut.bvh", cut)
    n = len(cartwheel.read_text().splitlines())
    assert_reader_error(path, "values, the hierarchy declares 96 channels", line=n)


def test_truncated_hierarchy_is_refused(cartwheel, tmp_path):
    path = broken_copy(cartwheel, tmp_path / "head.bvh", lambda ls: ls[:90])
    assert_reader_error(path, "no MOTION section", line=90)


def test_wrong_number_of_values_is_refused(cartwheel, tmp_path):
    def extra(lines):
        k = motion_start(lines) + 10
        lines[k] += " 0.0"
        return lines
    path = broken_copy(cartwheel, tmp_path / "extra.bvh", extra)
    err = assert_reader_error(path, "97 values", line=None)
    assert err.line == motion_start(cartwheel.read_text().splitlines()) + 11


def test_garbage_value_is_refused(cartwheel, tmp_path):
    def garbage(lines):
        k = motion_start(lines) + 20
        values = lines[k].split()
        values[7] = "1.2.3"
        lines[k] = " ".join(values)
        return lines
    path = broken_copy(cartwheel, tmp_path / "garbage.bvh", garbage)
    assert_reader_error(path, "not a number", line=motion_start(cartwheel.read_text().splitlines()) + 21)


def test_garbage_in_the_hierarchy_is_refused(cartwheel, tmp_path):
    def garbage(lines):
        lines[30] = "\tBANANA 1 2 3"
        return lines
    assert_reader_error(broken_copy(cartwheel, tmp_path / "g.bvh", garbage), "BANANA", line=31)


def test_not_a_bvh_file_is_refused(tmp_path):
    path = tmp_path / "notes.bvh"
    path.write_text("hello\nworld\n")
    assert_reader_error(path, "HIERARCHY", line=1)
    empty = tmp_path / "empty.bvh"
    empty.write_text("")
    assert_reader_error(empty, "empty")


def test_more_rows_than_declared_is_refused(cartwheel, tmp_path):
    path = broken_copy(cartwheel, tmp_path / "long.bvh", lambda ls: ls + [ls[-1]])
    assert_reader_error(path, "more motion rows", line=len(cartwheel.read_text().splitlines()) + 1)


def test_joint_the_alias_table_cannot_map_is_named(cartwheel, tmp_path):
    path = broken_copy(cartwheel, tmp_path / "renamed.bvh",
                       lambda ls: [line.replace("JOINT lhumerus", "JOINT lupperarm") for line in ls])
    err = assert_reader_error(path, "LeftArm", line=1)
    assert "lhumerus" in str(err)


def test_unbalanced_braces_are_refused(cartwheel, tmp_path):
    def drop_brace(lines):
        k = max(i for i, line in enumerate(lines[: motion_start(lines) - 3]) if line.strip() == "}")
        return lines[:k] + lines[k + 1:]
    assert_reader_error(broken_copy(cartwheel, tmp_path / "brace.bvh", drop_brace), "unbalanced")


# ---- listing ----------------------------------------------------------------------------------
def test_list_files_recurses_and_sorts(tmp_path):
    for rel in ("b/z.bvh", "a/y.BVH", "x.bvh", "a/readme.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in bvh.list_files(tmp_path)] == ["a/y.BVH", "b/z.bvh", "x.bvh"]
    assert bvh.list_files(tmp_path / "x.bvh") == [tmp_path / "x.bvh"]
    with pytest.raises(ReaderError, match="not a file or folder"):
        bvh.list_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReaderError, match="no .bvh files"):
        bvh.list_files(tmp_path / "empty")
