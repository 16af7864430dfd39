import json

import numpy as np
import pytest

from attacks.core.skeletons import BUILTIN, Skeleton, SkeletonError, get_skeleton

# The NTU literature's 1-based (child, parent) bones, as ARCHITECTURE.md lists them.
NTU_BONES_1BASED = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
                    (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23),
                    (23, 8), (24, 25), (25, 12)]


def test_ntu25_bones_are_the_published_list():
    s = BUILTIN["ntu25"]
    assert s.num_joints == 25 and s.num_bones == 24
    assert sorted((c + 1, p + 1) for c, p in s.bones) == sorted(NTU_BONES_1BASED)
    assert s.joints[20] == "spine_shoulder" and s.root == 20
    assert s.spine == (0, 1, 2, 3, 20)


def test_cmu25_parents_and_names():
    s = BUILTIN["cmu25"]
    assert list(s.parents) == [10, 0, 1, 2, 3, 10, 5, 6, 7, 8, -1, 10, 11, 12, 13, 13, 15, 16, 17, 17, 13, 20, 21, 22, 22]
    assert s.joints[10] == "Hips" and s.root == 10 and s.num_bones == 24
    assert s.joints[19] == "LThumb" and s.parents[19] == s.index("LeftHand")
    assert s.spine == (10, 11, 12, 13, 14)


@pytest.mark.parametrize("name", ["ntu25", "cmu25"])
def test_parts_and_pairs_cover_every_joint_once(name):
    s = BUILTIN[name]
    covered = sorted(j for part in s.parts.values() for j in part)
    assert covered == list(range(s.num_joints))
    for left, right in s.left_right:
        assert s.joints[left].lower().startswith(("l", "left")) and s.joints[right].lower().startswith(("r", "right"))


@pytest.mark.parametrize("name", ["ntu25", "cmu25"])
def test_edges_and_adjacency_derive_from_parents(name):
    s = BUILTIN[name]
    a = s.adjacency()
    assert a.sum() == 2 * s.num_bones and np.allclose(a, a.T)
    for c, p in s.bones:
        assert a[c, p] == 1 and s.parents[c] == p
    assert len(s.edges(self_loops=True)) == s.num_bones + s.num_joints


def test_bone_lengths_numpy_and_torch_agree():
    import torch

    s = BUILTIN["cmu25"]
    pos = np.random.default_rng(0).normal(size=(2, 5, 25, 3)).astype(np.float32)
    ln = s.bone_lengths(pos)
    assert ln.shape == (2, 5, 24)
    c, p = s.bones[3]
    assert np.isclose(ln[1, 2, 3], np.linalg.norm(pos[1, 2, c] - pos[1, 2, p]))
    assert np.allclose(s.bone_lengths(torch.from_numpy(pos)).numpy(), ln, atol=1e-6)


def test_joint_weights_favour_the_spine():
    w = BUILTIN["ntu25"].joint_weights()
    assert w[20] == pytest.approx(0.04) and w[5] == pytest.approx(0.02)


def twenty_joint_definition():
    return {"name": "kinect20", "joints": [f"j{i}" for i in range(20)],
            "parents": [-1, 0, 1, 2, 1, 4, 5, 6, 1, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18],
            "spine": [0, 1, 2, 3],
            "parts": {"trunk": [0, 1, 2, 3], "left_arm": [4, 5, 6, 7], "right_arm": [8, 9, 10, 11],
                      "left_leg": [12, 13, 14, 15], "right_leg": [16, 17, 18, 19]},
            "hips": [12, 16], "shoulders": [4, 8]}


def test_user_skeleton_from_json_file(tmp_path):
    f = tmp_path / "kinect20.json"
    f.write_text(json.dumps(twenty_joint_definition()))
    s = get_skeleton(str(f))
    assert s.num_joints == 20 and s.num_bones == 19 and s.root == 0
    assert Skeleton.from_json(s.to_json()) == s


@pytest.mark.parametrize("change, field", [
    ({"parents": [-1, 0, 1]}, "parents"),
    ({"parents": [-1, -1] + [0] * 18}, "root"),
    ({"spine": [0, 99]}, "spine"),
    ({"parents": [1, 2, 0] + [0] * 17}, "root"),
])
def test_inconsistent_definitions_name_the_field(change, field):
    d = {**twenty_joint_definition(), **change}
    with pytest.raises(SkeletonError, match=field):
        Skeleton.from_dict(d)


def test_cycle_is_rejected():
    d = twenty_joint_definition()
    d["parents"] = [-1, 2, 1] + d["parents"][3:]
    with pytest.raises(SkeletonError, match="cycle"):
        Skeleton.from_dict(d)


def test_bad_json_names_the_file_and_line(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"name": "x",\n "joints": [}')
    with pytest.raises(SkeletonError, match=r"broken.json: line 2"):
        get_skeleton(str(f))


def test_unknown_name():
    with pytest.raises(SkeletonError, match="unknown skeleton"):
        get_skeleton("kinect99")
