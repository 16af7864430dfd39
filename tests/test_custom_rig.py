"""A user's JSON rig without `hips`/`shoulders`: the lateral axis is inferred from its parts or
joint names, a rig with neither is centred but not turned (with a warning), and such a rig
trains on every architecture."""
import json
import warnings

import numpy as np
import pytest
import torch
from django.core.management import call_command

from attacks.core.data import preprocessing

from attacks.core.data import protocol_view
from attacks.core.data.readers.base import RawClip
from attacks.core.recognizers import ARCHITECTURES
from attacks.core.skeletons import Skeleton, get_skeleton, infer_lateral_pairs

PARENTS = [-1, 0, 1, 2, 1, 4, 5, 6, 1, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18]
NO_FACING = "facing is not normalised"


def rig20(**changes) -> dict:
    """20 joints in the documented JSON format (name, joints, parents, spine, parts), no hips/shoulders."""
    d = {"name": "rig20", "joints": [f"j{i}" for i in range(20)], "parents": list(PARENTS),
         "spine": [0, 1, 2, 3],
         "parts": {"trunk": [0, 1, 2, 3], "left_arm": [4, 5, 6, 7], "right_arm": [8, 9, 10, 11],
                   "left_leg": [12, 13, 14, 15], "right_leg": [16, 17, 18, 19]}}
    d.update(changes)
    return d


# ---- inference ---------------------------------------------------------------------------

def test_pairs_are_inferred_from_parts_and_the_definition_round_trips(tmp_path):
    path = tmp_path / "rig20.json"
    path.write_text(json.dumps(rig20()))
    s = get_skeleton(str(path))
    assert s.hips == (12, 16) and s.shoulders == (4, 8)  # each limb part's joint nearest the root
    assert s.inferred == ("hips", "shoulders")
    d = s.to_dict()
    assert "hips" not in d and "shoulders" not in d  # what the user wrote, nothing more
    assert Skeleton.from_dict(d) == s and Skeleton.from_json(s.to_json()) == s


@pytest.mark.parametrize("parts", [
    {"l_leg": [12, 13, 14, 15], "r_leg": [16, 17, 18, 19], "leftArm": [4, 5, 6, 7], "rightArm": [8, 9, 10, 11]},
    {"LeftLeg": [13, 12, 14, 15], "RightLeg": [17, 16, 18, 19], "arm.L": [5, 4, 6, 7], "arm.R": [9, 8, 10, 11]},
    {"LEG_LEFT": [12, 13, 14, 15], "leg_right": [16, 17, 18, 19], "Left Arm": [4, 5, 6, 7],
     "Right Arm": [8, 9, 10, 11]},
])
def test_part_names_are_read_generally(parts):
    s = Skeleton.from_dict(rig20(parts=parts))
    assert s.hips == (12, 16) and s.shoulders == (4, 8)


def test_explicit_pairs_are_kept_and_written_back():
    s = Skeleton.from_dict(rig20(hips=[13, 17]))
    assert s.hips == (13, 17) and s.shoulders == (4, 8) and s.inferred == ("shoulders",)
    d = s.to_dict()
    assert d["hips"] == [13, 17] and "shoulders" not in d
    assert Skeleton.from_dict(d) == s


MIXAMO20 = ["Hips", "Spine", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
            "RightShoulder", "RightArm", "RightForeArm", "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot",
            "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase"]


@pytest.mark.parametrize("names, hips, shoulders", [
    # BVH/Mixamo: LeftShoulder is the clavicle, LeftArm the shoulder joint proper.
    ({}, (12, 16), (5, 9)),
    ({12: "lhip", 16: "rhip", 4: "lshoulder", 8: "rshoulder", 5: "lelbow", 9: "relbow"}, (12, 16), (4, 8)),
    ({12: "left_hip", 16: "right_hip", 4: "ShoulderLeft", 8: "ShoulderRight", 5: "e1", 9: "e2"}, (12, 16), (4, 8)),
    ({12: "lfemur", 16: "rfemur", 4: "lclavicle", 8: "rclavicle", 5: "lhumerus", 9: "rhumerus"}, (12, 16), (5, 9)),
])
def test_pairs_are_inferred_from_joint_names_without_parts(names, hips, shoulders):
    joints = [names.get(i, n) for i, n in enumerate(MIXAMO20)]
    s = Skeleton.from_dict(rig20(joints=joints, parts={}))
    assert (s.hips, s.shoulders) == (hips, shoulders)
    assert infer_lateral_pairs(s.joints, s.parents, {}) == {"hips": hips, "shoulders": shoulders}


def test_limb_part_names_beat_the_nearest_joint():
    # CMU: LHipJoint sits on the root; the hip proper is LeftUpLeg, one joint further out.
    cmu = get_skeleton("cmu25").to_dict()
    del cmu["hips"], cmu["shoulders"]
    s = Skeleton.from_dict(cmu)
    assert s.joints[s.hips[0]] == "LeftUpLeg" and s.joints[s.hips[1]] == "RightUpLeg"
    assert s.shoulders == get_skeleton("cmu25").shoulders


def test_one_sided_or_anonymous_rigs_infer_nothing():
    s = Skeleton.from_dict(rig20(parts={"trunk": [0, 1, 2, 3], "left_leg": [12, 13, 14, 15]}))
    assert s.hips is None and s.shoulders is None and s.inferred == ()
    anonymous = Skeleton.from_dict(rig20(parts={}))
    assert anonymous.hips is None and anonymous.shoulders is None and "hips" not in anonymous.to_dict()


# ---- a rig with neither pair -------------------------------------------------------------

def _rotated_motion(skeleton, frames=8, seed=0):
    from attacks.core.data.readers.synthetic import generate
    motion = generate(skeleton, num_classes=1, clips_per_class=1, num_frames=frames, seed=seed)[0].motion
    angle = np.radians(70.0)  # turned away from +z and moved off the origin
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    return (motion @ turn.T + np.array([1.0, 0.0, -2.0])).astype(np.float32)


def test_a_rig_with_neither_pair_warns_and_is_centred_but_not_turned():
    anonymous = Skeleton.from_dict(rig20(parts={"trunk": [0, 1, 2, 3]}))
    assert anonymous.hips is None and anonymous.shoulders is None
    motion = _rotated_motion(get_skeleton(rig20()))

    with pytest.warns(UserWarning, match=rf"'rig20'.*{NO_FACING}.*'hips' or 'shoulders'"):
        normalised, world = preprocessing.centre_and_face(motion, anonymous)
    centre = motion[0, 0, anonymous.center_joint]
    np.testing.assert_allclose(normalised, motion - centre, atol=1e-5)
    assert world["rotation_y"] == 0.0
    np.testing.assert_allclose(preprocessing.to_world(normalised, world), motion, atol=1e-5)

    clip = RawClip(motion=motion, fps=30.0, label="a", source="x")
    with pytest.warns(UserWarning, match=NO_FACING):
        windows, stats = preprocessing.apply_protocol([clip], "smart", anonymous, window=8, stride=8)
    assert stats["windows_out"] == 1
    np.testing.assert_allclose(windows[0].motion, motion - centre, atol=1e-5)
    with pytest.warns(UserWarning, match=NO_FACING):
        ntu, _ = preprocessing.apply_protocol([clip], "ntu", anonymous, frames=8, persons=1)
    assert np.allclose(ntu[0].motion[0, :, anonymous.center_joint], 0.0, atol=1e-5)


def test_an_inferred_rig_faces_plus_z_without_warnings():
    skeleton = get_skeleton(rig20())
    motion = _rotated_motion(skeleton)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normalised, _ = preprocessing.centre_and_face(motion, skeleton)
        view = protocol_view.normalise(torch.from_numpy(motion[None]), "raw", skeleton).numpy()[0]
    left, right = skeleton.hips
    lateral = normalised[0, 0, left] - normalised[0, 0, right]  # left - right points along +x
    assert lateral[0] > 0 and abs(lateral[2]) < 1e-5
    np.testing.assert_allclose(view, normalised, atol=1e-4)


# ---- every architecture trains on the rig -------------------------------------------------

WIDTH = {"msg3d": 6}  # MS-G3D's width is a multiple of its 6 temporal branches


@pytest.fixture
def rig_dataset(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    path = tmp_path / "rig20.json"
    path.write_text(json.dumps(rig20()))
    call_command("import_dataset", "synthetic", "classes=3,clips=6,frames=20,seed=0", name="rig20",
                 skeleton=str(path), no_progress=True)
    from attacks.models import Dataset
    return Dataset.objects.get(name="rig20")


@pytest.mark.django_db
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_trains_on_a_rig_without_hips_or_shoulders(arch, rig_dataset):
    from attacks.core.training.evaluation import predict_logits
    from attacks.models import Recognizer
    from attacks.services.recognition import load_model, recognizer_inputs, world_motion

    torch.set_num_threads(1)
    assert "hips" not in rig_dataset.skeleton and rig_dataset.get_skeleton().hips == (12, 16)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{NO_FACING}")
        call_command("train_recognizer", dataset="rig20", arch=arch, name=f"rig20-{arch}",
                     width=WIDTH.get(arch, 8), epochs=1, batch_size=8, frames=16, no_progress=True)
        record = Recognizer.objects.get(name=f"rig20-{arch}")
        assert record.status == "ready" and record.epochs_trained == 1
        model = load_model(record)
        clips = list(rig_dataset.clips.order_by("index")[:4])
        X = recognizer_inputs(record, [world_motion(c) for c in clips])
    assert X.shape[1:] == (record.input_spec["num_persons"], 16, 20, 3)
    logits = predict_logits(model, X)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
