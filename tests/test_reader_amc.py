"""ASF/AMC reader: the real HDM05 take, the Acclaim rotation convention, units, lookup, broken files."""
import re
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from attacks.core.data.readers import amc, bvh
from attacks.core.data.readers.base import ReaderError
from attacks.core.data.readers.kinematics import rest_positions
from attacks.core.skeletons import get_skeleton

CMU25 = get_skeleton("cmu25")
ASF_UNIT = 0.0254 / 0.45  # HDM_dg.asf says `length 0.45`: one unit is 1/0.45 inch
AMC_NAME = "HDM_dg_06-03_03_120.amc"


@pytest.fixture
def hdm05(shared_datasets):
    return shared_datasets / "samples" / "hdm05"


@pytest.fixture
def take(hdm05):
    return hdm05 / AMC_NAME


@pytest.fixture
def clip(take):
    return amc.read_file(take, CMU25)[0]


def root_lines(path):
    """(frame number, root values) straight from the AMC text."""
    out, frame = [], None
    for line in path.read_text(errors="replace").splitlines():
        tokens = line.split()
        if len(tokens) == 1 and tokens[0].isdigit():
            frame = int(tokens[0])
        elif tokens[:1] == ["root"]:
            out.append((frame, np.array(tokens[1:], dtype=float)))
    return out


def copy_take(hdm05, tmp_path, amc_name=AMC_NAME, edit=None):
    shutil.copy(hdm05 / "HDM_dg.asf", tmp_path / "HDM_dg.asf")
    lines = (hdm05 / AMC_NAME).read_text(errors="replace").splitlines()
    if edit is not None:
        lines = edit(lines)
    dst = tmp_path / amc_name
    dst.write_text("\n".join(lines) + "\n")
    return dst


# ---- the real HDM05 take ---------------------------------------------------------------------------
def test_scene_take_shape_rate_and_label(clip):
    assert clip.motion.shape == (1, 202, 25, 3)
    assert clip.motion.dtype == np.float32
    assert clip.fps == 120.0
    assert clip.label == "06-03"  # an uncut scene file: the label is the scene id
    assert clip.meta["actor"] == "dg" and clip.meta["scene"] == "06-03" and clip.meta["take"] == 3
    assert clip.meta["asf"] == "HDM_dg.asf"
    assert clip.frame_range == (0, 202)


def test_bone_lengths_are_constant(clip):
    lengths = CMU25.bone_lengths(clip.motion[0]).astype(np.float64)
    mean, std = lengths.mean(0), lengths.std(0)
    # HandIndex1 hangs from the hand across the dropped ASF bone `lhand`, which has its own
    # dofs: that cmu25 "bone" bends by construction. Every other one is rigid.
    bends = {CMU25.index("LeftHandIndex1"), CMU25.index("RightHandIndex1")}
    rigid = [b for b, (child, _) in enumerate(CMU25.bones) if child not in bends and mean[b] > 1e-6]
    assert len(rigid) >= 18
    assert (std[rigid] / mean[rigid]).max() < 1e-4
    bent = [b for b, (child, _) in enumerate(CMU25.bones) if child in bends]
    assert (std[bent] / mean[bent]).min() > 1e-3


def test_full_asf_rig_is_rigid(take, hdm05):
    """Every ASF bone (start to end) keeps its ASF length in every frame."""
    acclaim = amc.parse_asf(hdm05 / "HDM_dg.asf")
    names = [n for n in acclaim.rig.names if n != "root"]
    parents = [acclaim.rig.names[p] for p in acclaim.rig.parents[1:]]
    spec = {"name": "asf", "joints": ["root", *names],
            "parents": [-1, *[(["root", *names]).index(p) for p in parents]]}
    skeleton = get_skeleton(spec)
    motion = amc.read_file(take, skeleton)[0].motion[0].astype(np.float64)
    lengths = skeleton.bone_lengths(motion)
    for b, (child, parent) in enumerate(skeleton.bones):
        parent_bone = skeleton.joints[parent]
        expected = 0.0 if parent_bone == "root" else acclaim.bones[parent_bone].length * ASF_UNIT
        np.testing.assert_allclose(lengths[:, b], expected, atol=2e-6, err_msg=skeleton.joints[child])


def test_root_position_is_root_values_times_asf_unit(take, clip):
    roots = root_lines(take)
    hips = CMU25.index("Hips")
    for index in (0, 101, 201):
        frame, values = roots[index]
        assert frame == index + 1
        np.testing.assert_allclose(clip.motion[0, index, hips], values[:3] * ASF_UNIT, rtol=1e-5)


def test_y_is_up(clip):
    y = dict(zip(CMU25.joints, clip.motion[0, 0, :, 1]))
    feet = max(y["LeftFoot"], y["RightFoot"], y["LeftToeBase"], y["RightToeBase"])
    assert y["Neck1"] > y["Spine1"] > y["Hips"] > y["LeftLeg"] > feet
    assert y["Neck1"] - feet > 1.0


def test_standing_height_is_a_persons(hdm05, clip):
    acclaim = amc.parse_asf(hdm05 / "HDM_dg.asf")
    height = np.ptp(rest_positions(acclaim.rig)[:, 1]) * ASF_UNIT  # toes to the top of the head bone
    assert 1.4 < height < 2.0
    assert 1.2 < np.ptp(clip.motion[0, 0, :, 1]) < 2.0  # first frame, cmu25 joints (no head)


def test_units_option_overrides_the_asf_header(take, clip):
    scaled = amc.read_file(take, CMU25, units=0.06)[0]
    np.testing.assert_allclose(scaled.motion, clip.motion * (0.06 / ASF_UNIT), rtol=1e-5, atol=1e-6)
    with pytest.raises(ReaderError, match="--units"):
        amc.read_file(take, CMU25, units="mm")


def test_output_is_not_mirrored(clip):
    """Right-handed and y up: forward (toes ahead of ankles) x left (left hip minus right hip) is up."""
    m = clip.motion[0].astype(np.float64)
    joint = CMU25.index
    left = m[:, joint("LeftUpLeg")] - m[:, joint("RightUpLeg")]
    forward = (m[:, joint("LeftToeBase")] - m[:, joint("LeftFoot")]
               + m[:, joint("RightToeBase")] - m[:, joint("RightFoot")])
    up = np.cross(forward, left)
    assert (up[:, 1] > 0).mean() > 0.95  # a mirrored skeleton would give the opposite sign


# ---- the Acclaim convention on tiny synthetic skeletons -------------------------------------------
ASF_TEMPLATE = """:version 1.10
:name tiny
:units
  mass 1.0
  length {length}
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name lowerback
     direction 0 1 0
     length 0.8
     axis 0 0 0 XYZ
  end
  begin
     id 2
     name head
     direction 0 1 0
     length 0.1
     axis 0 0 0 XYZ
  end
  begin
     id 3
     name lfemur
     direction 0 -1 0
     length 0.9
     axis 0 0 0 XYZ
  end
  begin
     id 4
     name lhumerus
     direction {arm_direction}
     length 0.3
     axis {arm_axis} XYZ
    dof {arm_dofs}
  end
:hierarchy
  begin
    root lowerback lfemur
    lowerback head lhumerus
  end
"""
TINY = {"name": "tiny", "joints": ["root", "lowerback", "lhumerus", "lhumerus_end"], "parents": [-1, 0, 1, 2]}


def arm_end(tmp_path, arm_direction, arm_axis, arm_dofs, values, root="0 0 0 0 0 0"):
    asf = tmp_path / "tiny.asf"
    asf.write_text(ASF_TEMPLATE.format(length=1.0, arm_direction=arm_direction, arm_axis=arm_axis, arm_dofs=arm_dofs))
    (tmp_path / "tiny_01.amc").write_text(f":FULLY-SPECIFIED\n:DEGREES\n1\nroot {root}\nlhumerus {values}\n")
    clip = amc.read_file(tmp_path / "tiny_01.amc", TINY, units="m")[0]
    return clip.motion[0, 0].astype(np.float64)


def test_dofs_apply_in_listed_order(tmp_path):
    # rx then rz (M = Rz @ Rx): Rx(90) (0, .3, 0) = (0, 0, .3); Rz(90) keeps it.
    end = arm_end(tmp_path, "0 1 0", "0 0 0", "rx rz", "90 90")[3]
    np.testing.assert_allclose(end - [0, 0.8, 0], [0, 0, 0.3], atol=1e-6)
    # rz then rx (M = Rx @ Rz): Rz(90) (0, .3, 0) = (-.3, 0, 0); Rx(90) keeps it.
    end = arm_end(tmp_path, "0 1 0", "0 0 0", "rz rx", "90 90")[3]
    np.testing.assert_allclose(end - [0, 0.8, 0], [-0.3, 0, 0], atol=1e-6)


def test_dofs_rotate_about_the_bones_own_axes(tmp_path):
    # axis 0 0 90: the bone's local x is the world y. rx = 90 turns (.3, 0, 0) about +y to (0, 0, -.3)
    # (C M C^-1; the inverse conjugation would give (0, 0, +.3)).
    end = arm_end(tmp_path, "1 0 0", "0 0 90", "rx", "90")[3]
    np.testing.assert_allclose(end - [0, 0.8, 0], [0, 0, -0.3], atol=1e-6)


def test_axis_angles_apply_in_listed_order(tmp_path):
    # axis 90 0 90 XYZ: C = Rz(90) @ Rx(90), so local x -> world y (and not world z as Rx @ Rz gives).
    end = arm_end(tmp_path, "1 0 0", "90 0 90", "rx", "90")[3]
    np.testing.assert_allclose(end - [0, 0.8, 0], [0, 0, -0.3], atol=1e-6)


def test_root_translation_and_rotation(tmp_path):
    # Root at (1, 2, 3), rotated 90 degrees about y: the arm (.3 along +x) ends up along -z.
    p = arm_end(tmp_path, "1 0 0", "0 0 0", "rx", "0", root="1 2 3 0 90 0")
    np.testing.assert_allclose(p[0], [1, 2, 3], atol=1e-6)
    np.testing.assert_allclose(p[3] - p[2], [0, 0, -0.3], atol=1e-6)


def test_radians(tmp_path):
    asf = tmp_path / "tiny.asf"
    asf.write_text(ASF_TEMPLATE.format(length=1.0, arm_direction="0 1 0", arm_axis="0 0 0", arm_dofs="rx"))
    (tmp_path / "tiny_01.amc").write_text(f":RADIANS\n1\nroot 0 0 0 0 0 0\nlhumerus {np.pi / 2}\n")
    end = amc.read_file(tmp_path / "tiny_01.amc", TINY, units="m")[0].motion[0, 0, 3]
    np.testing.assert_allclose(end - [0, 0.8, 0], [0, 0, 0.3], atol=1e-6)


def test_asf_length_header_sets_the_unit(tmp_path):
    # length 0.0254 means one unit is one metre (1 / 0.0254 inch).
    (tmp_path / "tiny.asf").write_text(ASF_TEMPLATE.format(length=0.0254, arm_direction="1 0 0", arm_axis="0 0 0",
                                                           arm_dofs="rx"))
    (tmp_path / "tiny_01.amc").write_text("1\nroot 0 1 0 0 0 0\nlhumerus 0\n2\nroot 0 1 0 0 0 0\nlhumerus 0\n")
    clip = amc.read_file(tmp_path / "tiny_01.amc", TINY)[0]
    np.testing.assert_allclose(clip.motion[0, :, 3], [[0.3, 1.8, 0]] * 2, atol=1e-6)
    assert clip.fps == amc.DEFAULT_FPS and clip.label == "tiny_01"
    assert amc.read_file(tmp_path / "tiny_01.amc", TINY, fps=60, label="wave")[0].fps == 60.0


# ---- naming and lookup -----------------------------------------------------------------------------
def test_cut_clip_name_gives_class_and_group(hdm05, tmp_path):
    path = copy_take(hdm05, tmp_path, "HDM_dg_cartwheelLHandStart1Reps_004_120.amc")
    clip = amc.read_file(path, CMU25, class_groups=hdm05 / "hdm05_class_groups.tsv")[0]
    assert clip.label == "cartwheelLHandStart1Reps"
    assert clip.meta["group"] == "cartwheel" and clip.meta["take"] == 4 and clip.meta["actor"] == "dg"


def test_asf_is_found_by_subject_prefix_or_given(hdm05, tmp_path):
    path = copy_take(hdm05, tmp_path)
    shutil.copy(hdm05 / "HDM_dg.asf", tmp_path / "HDM.asf")  # a shorter matching prefix loses
    shutil.copy(hdm05 / "HDM_dg.asf", tmp_path / "other.asf")
    assert amc.find_asf(path) == tmp_path / "HDM_dg.asf"
    (tmp_path / "HDM_dg.asf").unlink()
    assert amc.find_asf(path) == tmp_path / "HDM.asf"
    (tmp_path / "HDM.asf").rename(tmp_path / "another.asf")
    with pytest.raises(ReaderError, match="asf=") as err:
        amc.read_file(path, CMU25)  # two skeletons, neither named after the take
    assert AMC_NAME in str(err.value)
    (tmp_path / "another.asf").unlink()
    assert amc.find_asf(path) == tmp_path / "other.asf"  # the only one in the folder
    clip = amc.read_file(path, CMU25, asf=tmp_path / "other.asf")[0]
    assert clip.motion.shape == (1, 202, 25, 3)


def test_list_files_recurses_and_sorts(tmp_path):
    for rel in ("s2/b.amc", "s1/a.AMC", "s1/a.asf", "c.amc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in amc.list_files(tmp_path)] == ["c.amc", "s1/a.AMC", "s2/b.amc"]
    assert amc.list_files(tmp_path / "c.amc") == [tmp_path / "c.amc"]
    with pytest.raises(ReaderError, match="not a file or folder"):
        amc.list_files(tmp_path / "missing")


# ---- broken files ------------------------------------------------------------------------------------
def line_of(lines, predicate, nth=0):
    return [i for i, line in enumerate(lines) if predicate(line)][nth]


def assert_reader_error(path, match, line=None, **options):
    with pytest.raises(ReaderError, match=match) as err:
        amc.read_file(path, CMU25, **options)
    if line is not None:
        assert err.value.line == line, str(err.value)
    return err.value


def test_truncated_amc_is_refused(hdm05, tmp_path):
    lines = (hdm05 / AMC_NAME).read_text(errors="replace").splitlines()
    last_frame = line_of(lines, lambda s: s.strip() == "202")
    path = copy_take(hdm05, tmp_path, edit=lambda ls: ls[: last_frame + 10])
    err = assert_reader_error(path, "frame 202 lacks bone", line=last_frame + 1)
    assert AMC_NAME in str(err)


def test_garbage_value_is_refused(hdm05, tmp_path):
    def garbage(lines):
        k = line_of(lines, lambda s: s.startswith("lfemur "), nth=50)
        lines[k] = "lfemur 1.0 nonsense 2.0"
        return lines
    lines = (hdm05 / AMC_NAME).read_text(errors="replace").splitlines()
    k = line_of(lines, lambda s: s.startswith("lfemur "), nth=50)
    assert_reader_error(copy_take(hdm05, tmp_path, edit=garbage), "not a number", line=k + 1)


def test_wrong_number_of_values_is_refused(hdm05, tmp_path):
    def extra(lines):
        k = line_of(lines, lambda s: s.startswith("ltibia "), nth=7)
        lines[k] += " 3.0"
        return lines
    lines = (hdm05 / AMC_NAME).read_text(errors="replace").splitlines()
    k = line_of(lines, lambda s: s.startswith("ltibia "), nth=7)
    assert_reader_error(copy_take(hdm05, tmp_path, edit=extra), "has 2 values, the ASF declares 1", line=k + 1)


def test_unknown_bone_in_amc_is_refused(hdm05, tmp_path):
    def rename(lines):
        k = line_of(lines, lambda s: s.startswith("head "), nth=3)
        lines[k] = lines[k].replace("head", "skull")
        return lines
    lines = (hdm05 / AMC_NAME).read_text(errors="replace").splitlines()
    k = line_of(lines, lambda s: s.startswith("head "), nth=3)
    assert_reader_error(copy_take(hdm05, tmp_path, edit=rename), "'skull' is not in the ASF", line=k + 1)


def test_not_an_amc_is_refused(hdm05, tmp_path):
    path = copy_take(hdm05, tmp_path, edit=lambda ls: ["hello world"] + ls)
    assert_reader_error(path, "not an AMC", line=1)


def test_bone_the_alias_table_cannot_map_is_named(hdm05, tmp_path):
    path = copy_take(hdm05, tmp_path, edit=lambda ls: [s.replace("lhumerus", "lupperarm") for s in ls])
    asf_lines = (tmp_path / "HDM_dg.asf").read_text(errors="replace").splitlines()
    (tmp_path / "HDM_dg.asf").write_text("\n".join(s.replace("lhumerus", "lupperarm") for s in asf_lines) + "\n")
    hierarchy_line = line_of(asf_lines, lambda s: s.startswith(":hierarchy")) + 1
    err = assert_reader_error(path, "LeftArm", line=hierarchy_line)
    assert "HDM_dg.asf" in str(err) and "lhumerus" in str(err)


def test_truncated_asf_is_refused(hdm05, tmp_path):
    path = copy_take(hdm05, tmp_path)
    asf_lines = (hdm05 / "HDM_dg.asf").read_text(errors="replace").splitlines()
    (tmp_path / "HDM_dg.asf").write_text("\n".join(asf_lines[:60]) + "\n")
    err = assert_reader_error(path, "hierarchy")
    assert "HDM_dg.asf" in str(err)


# ---- the real convention, checked against the take's raw markers ----------------------------------
def read_c3d_markers(path):
    """Marker trajectories (T, N, 3) in metres and their labels from a float-format C3D file."""
    raw = path.read_bytes()
    header = np.frombuffer(raw[:24], "<i2").astype(int)
    num_points, first, last, data_block = header[1], header[3], header[4], header[8]
    assert np.frombuffer(raw[12:16], "<f4")[0] < 0  # negative scale: float samples
    num_frames = last - first + 1
    start = (data_block - 1) * 512
    data = np.frombuffer(raw[start:start + num_frames * num_points * 16], "<f4").reshape(num_frames, num_points, 4)
    # POINT:LABELS holds fixed-width names: three unnamed markers, then "Daniel:<marker>".
    labels = [m.decode().split(":")[-1] for m in re.findall(rb"\*\d+(?= )|Daniel:[A-Z0-9]+", raw[512:start])]
    assert len(labels) == num_points
    return data[..., :3].astype(np.float64) / 1000.0, labels


def test_joints_follow_the_recorded_markers(take, hdm05):
    """Forward kinematics of the AMC lands next to the markers Vicon fitted it to.

    Markers sit on the skin, a few centimetres from the joint centres; a wrong rotation
    convention (dof order, axis order, or C^-1 M C) puts some of them 20-60 cm away.
    """
    markers, labels = read_c3d_markers(hdm05 / "HDM_dg_06-03_03_120.c3d")
    pairs = {"ltibia": "LKNE", "rtibia": "RKNE", "lfoot": "LANK", "rfoot": "RANK", "lradius": "LELB",
             "rradius": "RELB", "lwrist": "LWRA", "rwrist": "RWRA", "ltoes": "LTOE", "rtoes": "RTOE",
             "lhumerus": "LSHO", "rhumerus": "RSHO", "lfingers": "LFIN", "rfingers": "RFIN"}
    skeleton = get_skeleton({"name": "markers", "joints": ["root", *pairs], "parents": [-1] + [0] * len(pairs)})
    joints = amc.read_file(take, skeleton)[0].motion[0, :, 1:].astype(np.float64)
    target = markers[:, [labels.index(m) for m in pairs.values()]]
    assert joints.shape == target.shape
    a, b = joints.reshape(-1, 3), target.reshape(-1, 3)
    u, _, vt = np.linalg.svd((a - a.mean(0)).T @ (b - b.mean(0)))
    rotation = u @ vt
    assert np.linalg.det(rotation) > 0  # the lab frame (z up) is a proper rotation of ours (y up)
    residual = np.linalg.norm((a - a.mean(0)) @ rotation + b.mean(0) - b, axis=1).reshape(joints.shape[:2])
    per_marker = np.median(residual, axis=0)
    assert per_marker.max() < 0.12, dict(zip(pairs.values(), per_marker.round(3)))
    assert np.median(residual) < 0.09


def test_same_motion_through_a_bvh_file_gives_the_same_positions(take, hdm05, tmp_path):
    """Write the AMC's local rotations as a BVH (Z Y X channels) and read it back."""
    acclaim = amc.parse_asf(hdm05 / "HDM_dg.asf")
    frames, _, degrees = amc.parse_amc(take, acclaim)
    rotations, translation = amc.local_transforms(acclaim, frames, degrees)
    rig = acclaim.rig
    euler = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True)
    euler = euler.reshape(rotations.shape[0], rig.num_joints, 3)

    children = {j: [k for k in range(rig.num_joints) if rig.parents[k] == j] for j in range(rig.num_joints)}
    text, columns = ["HIERARCHY"], []

    def emit(j, depth):
        pad, offset = "  " * depth, " ".join(f"{v:.9f}" for v in rig.offsets[j])
        if rig.end_site[j]:
            text.extend([pad + "End Site", pad + "{", pad + "  OFFSET " + offset, pad + "}"])
            return
        text.extend([pad + ("ROOT " if depth == 0 else "JOINT ") + rig.names[j], pad + "{", pad + "  OFFSET " + offset])
        if depth == 0:
            text.append(pad + "  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
            columns.append(translation)
        else:
            text.append(pad + "  CHANNELS 3 Zrotation Yrotation Xrotation")
        columns.append(euler[:, j])
        for k in children[j]:
            emit(k, depth + 1)
        text.append(pad + "}")

    emit(0, 0)
    table = np.concatenate(columns, axis=1)
    text += ["MOTION", f"Frames: {len(table)}", "Frame Time: 0.008333"]
    text += [" ".join(f"{v:.9f}" for v in row) for row in table]
    path = tmp_path / "HDM_dg_06-03_03_120.bvh"
    path.write_text("\n".join(text) + "\n")

    from_amc = amc.read_file(take, CMU25)[0]
    from_bvh = bvh.read_file(path, CMU25)[0]
    assert from_bvh.label == from_amc.label and from_bvh.fps == from_amc.fps
    np.testing.assert_allclose(from_bvh.motion, from_amc.motion, atol=2e-5)


def test_hierarchy_cycle_is_refused(tmp_path):
    text = ASF_TEMPLATE.format(length=1.0, arm_direction="1 0 0", arm_axis="0 0 0", arm_dofs="rx")
    text = text.replace("    lowerback head lhumerus\n", "    lowerback head\n    lhumerus lfemur\n")
    text = text.replace("    root lowerback lfemur\n", "    root lowerback\n    lfemur lhumerus\n")
    (tmp_path / "tiny.asf").write_text(text)
    (tmp_path / "tiny_01.amc").write_text("1\nroot 0 0 0 0 0 0\nlhumerus 0\n")
    with pytest.raises(ReaderError, match="not connected to the root") as err:
        amc.read_file(tmp_path / "tiny_01.amc", TINY, units="m")
    assert "tiny.asf" in str(err.value)
