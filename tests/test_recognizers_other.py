"""HRNN, SGN, MS-G3D and DGNN: shapes on several rigs, gradients to every joint, structure
read from the skeleton, double precision, and a short training run that learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attacks.core.recognizers import build_recognizer
from attacks.core.recognizers.dgnn import DGNN, incidence_matrices
from attacks.core.recognizers.hrnn import HRNN
from attacks.core.recognizers.msg3d import MSG3D
from attacks.core.recognizers.sgn import SGN
from attacks.core.recognizers.streams import bone_stream, motion_stream
from attacks.core.skeletons import Skeleton, get_skeleton

ARCHS = ("hrnn", "sgn", "msg3d", "dgnn")
TINY = {"hrnn": 4, "sgn": 8, "msg3d": 6, "dgnn": 4}
T = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run hundreds of small ops: one thread avoids pool synchronisation."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subset_skeleton(base: Skeleton, keep: list[int], name: str) -> Skeleton:
    """`base` restricted to the joints `keep`; a dropped parent is replaced by its nearest
    kept ancestor, parts and pairs are filtered and re-indexed (a JSON rig, via from_dict)."""
    new = {old: i for i, old in enumerate(keep)}

    def kept_ancestor(j):
        p = base.parents[j]
        while p != -1 and p not in new:
            p = base.parents[p]
        return -1 if p == -1 else new[p]

    d = {
        "name": name,
        "joints": [base.joints[j] for j in keep],
        "parents": [kept_ancestor(j) for j in keep],
        "spine": [new[j] for j in base.spine if j in new],
        "parts": {k: [new[j] for j in v if j in new] for k, v in base.parts.items()},
        "left_right": [[new[a], new[b]] for a, b in base.left_right if a in new and b in new],
    }
    return Skeleton.from_dict(d)


def kinect_v1_20() -> Skeleton:
    """A 20-joint rig (Kinect v1 layout): ntu25 without neck, hand tips and thumbs."""
    ntu = get_skeleton("ntu25")
    drop = {2, 21, 22, 23, 24}
    return subset_skeleton(ntu, [j for j in range(25) if j not in drop], "kinect20")


SKELETONS = {"ntu25": get_skeleton("ntu25"), "cmu25": get_skeleton("cmu25"), "kinect20": kinect_v1_20()}


def make(arch, skeleton, num_classes=5, persons=2, frames=T, **kw):
    torch.manual_seed(0)
    return build_recognizer(arch, skeleton, num_classes, num_persons=persons, num_frames=frames,
                            width=TINY[arch], **kw)


def motion_batch(skeleton, n=3, persons=2, frames=T, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, frames, skeleton.num_joints, persons, generator=g, dtype=dtype)


def test_the_20_joint_rig_is_a_valid_tree_with_all_parts():
    sk = SKELETONS["kinect20"]
    assert sk.num_joints == 20 and sk.num_bones == 19
    assert sk.parents[sk.index("head")] == sk.index("spine_shoulder")
    assert sorted(j for p in sk.parts.values() for j in p) == list(range(20))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rig", sorted(SKELETONS))
def test_logits_shape_on_every_rig_and_person_count(arch, rig):
    sk = SKELETONS[rig]
    for persons in (1, 2):
        model = make(arch, sk, num_classes=7, persons=persons).eval()
        with torch.no_grad():
            out = model(motion_batch(sk, n=2, persons=persons))
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rig", ["ntu25", "kinect20"])
def test_gradient_reaches_every_joint_and_coordinate(arch, rig):
    sk = SKELETONS[rig]
    model = make(arch, sk).eval()
    x = motion_batch(sk).requires_grad_(True)
    model(x)[:, 1].sum().backward()
    per_joint = x.grad.abs().sum(dim=(0, 2, 4))  # (C, V)
    assert per_joint.shape == (3, sk.num_joints)
    assert (per_joint > 0).all(), f"no gradient at (coordinate, joint) {torch.nonzero(per_joint == 0).tolist()}"


@pytest.mark.parametrize("arch", ARCHS)
def test_double_precision_forward_and_backward(arch):
    sk = SKELETONS["ntu25"]
    model = make(arch, sk).double().eval()
    x = motion_batch(sk, dtype=torch.float64).requires_grad_(True)
    out = model(x)
    out.sum().backward()
    assert out.dtype == torch.float64 and x.grad.dtype == torch.float64
    # Double precision must agree with float32 on the same weights.
    single = make(arch, sk).eval()
    with torch.no_grad():
        ref = single(x.detach().float())
    assert torch.allclose(out.detach().float(), ref, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_short_training_run_lowers_the_loss(arch):
    """Two classes that differ in how one arm moves: 30 Adam steps must cut the loss.

    The training-mode loss is compared (BatchNorm running statistics lag behind the
    weights after only 30 steps, so eval-mode numbers would measure that lag instead).
    """
    sk = SKELETONS["ntu25"]
    torch.manual_seed(1)
    n = 16
    x = 0.1 * torch.randn(n, 3, T, sk.num_joints, 1)
    y = torch.arange(n) % 2
    t = torch.linspace(0, 2 * np.pi, T)
    arm = list(sk.parts["right_arm"])
    # Class 1 waves the right arm up and down; class 0 only jitters.
    wave = torch.sin(3 * t)[None, :, None] * (y == 1).float()[:, None, None]  # (N, T, 1)
    x[:, 1, :, arm, 0] += wave
    model = make(arch, sk, num_classes=2, persons=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5]), losses
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()


def test_registry_builds_each_class():
    sk = SKELETONS["ntu25"]
    for arch, cls in zip(ARCHS, (HRNN, SGN, MSG3D, DGNN)):
        assert isinstance(make(arch, sk), cls)


# ---- HRNN -----------------------------------------------------------------------------------

def _layer1_outputs(model, x):
    outs = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: outs.__setitem__(name, out[0]))
             for name, m in model.layer1.items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return outs


def test_hrnn_feeds_each_part_from_the_skeleton_parts():
    """Moving a joint from one part to another changes which first-layer RNN sees it."""
    base = get_skeleton("ntu25")
    d = base.to_dict()
    elbow = base.index("left_elbow")
    d["name"] = "ntu25-elbow-in-trunk"
    d["parts"]["left_arm"] = [j for j in d["parts"]["left_arm"] if j != elbow]
    d["parts"]["trunk"] = d["parts"]["trunk"] + [elbow]
    custom = Skeleton.from_dict(d)

    for sk, expect_changed in ((base, {"left_arm"}), (custom, {"trunk"})):
        model = make("hrnn", sk, persons=1).eval()
        assert elbow in model.part_joints(next(iter(expect_changed))).tolist()
        x = motion_batch(sk, persons=1)
        x2 = x.clone()
        x2[:, :, :, elbow] += 1.0
        a, b = _layer1_outputs(model, x), _layer1_outputs(model, x2)
        changed = {p for p in a if not torch.allclose(a[p], b[p])}
        assert changed == expect_changed


def test_hrnn_rejects_a_skeleton_without_its_five_parts():
    d = get_skeleton("ntu25").to_dict()
    del d["parts"]["left_leg"]
    with pytest.raises(ValueError, match="left_leg"):
        HRNN(Skeleton.from_dict(d), 4)


def test_hrnn_rejects_joints_outside_every_part():
    d = get_skeleton("ntu25").to_dict()
    d["parts"]["left_arm"] = d["parts"]["left_arm"][:-1]
    with pytest.raises(ValueError, match="left_thumb"):
        HRNN(Skeleton.from_dict(d), 4)


def test_hrnn_published_hidden_sizes():
    model = HRNN(get_skeleton("ntu25"), 65, num_persons=1)
    assert [model.layer1["trunk"].hidden_size, model.layer2["left_arm"].hidden_size,
            model.layer3["upper"].hidden_size, model.layer4.hidden_size] == [30, 60, 90, 120]
    assert model.layer4.bidirectional and isinstance(model.layer4, torch.nn.LSTM)
    assert model.layer1["trunk"].input_size == 3 * len(get_skeleton("ntu25").parts["trunk"])


def test_hrnn_checks_the_person_count():
    sk = SKELETONS["ntu25"]
    with pytest.raises(ValueError, match="HRNN built for"):
        make("hrnn", sk, persons=1)(motion_batch(sk, persons=2))


# ---- SGN ------------------------------------------------------------------------------------

def test_sgn_resamples_other_lengths_differentiably():
    sk = SKELETONS["ntu25"]
    model = make("sgn", sk, frames=8).eval()
    x = motion_batch(sk, frames=20).requires_grad_(True)
    out = model(x)
    out.sum().backward()
    assert out.shape == (3, 5)
    # Linear resampling with aligned ends: the first and last input frames always count.
    assert x.grad[:, :, 0].abs().sum() > 0 and x.grad[:, :, -1].abs().sum() > 0


def test_sgn_published_size_matches_the_paper():
    """SGN reports 0.69M parameters (NTU: 25 joints, 60 classes, 20 segments)."""
    model = SGN(get_skeleton("ntu25"), 60, num_frames=20)
    n = sum(p.numel() for p in model.parameters())
    assert 0.68e6 < n < 0.70e6


def test_sgn_adjacency_is_a_softmax_over_joints():
    sk = SKELETONS["cmu25"]
    model = make("sgn", sk).eval()
    z = torch.randn(2, 2 * TINY["sgn"], sk.num_joints, T)
    g = model.adjacency(z)
    assert g.shape == (2, T, sk.num_joints, sk.num_joints)
    assert torch.allclose(g.sum(-1), torch.ones(2, T, sk.num_joints))


# ---- MS-G3D ---------------------------------------------------------------------------------

def test_msg3d_sums_a_joint_and_a_bone_stream():
    sk = SKELETONS["ntu25"]
    model = make("msg3d", sk).eval()
    x = motion_batch(sk)
    with torch.no_grad():
        joint = model.streams["joint"](x)
        bone = model.streams["bone"](bone_stream(x, sk))
        assert torch.allclose(model(x), joint + bone, atol=1e-6)


def test_msg3d_published_size_and_graph_scales():
    model = MSG3D(get_skeleton("ntu25"), 60)
    per_stream = sum(p.numel() for p in model.streams["joint"].parameters())
    assert 3.1e6 < per_stream < 3.3e6  # the paper: 3.2M per stream
    block = model.streams["joint"].blocks[0]
    assert block.gcn_path[0].scales.shape == (13, 25, 25)
    assert [g.gcn.scales.shape for g in block.g3d_path] == [(6, 75, 75), (6, 125, 125)]


def test_msg3d_rejects_widths_that_do_not_split_into_branches():
    with pytest.raises(ValueError, match="multiple of 6"):
        MSG3D(get_skeleton("ntu25"), 5, width=10)


def test_msg3d_halves_time_twice_for_odd_lengths():
    sk = SKELETONS["ntu25"]
    backbone = make("msg3d", sk, persons=1).streams["joint"].eval()
    x = motion_batch(sk, persons=1, frames=13)
    with torch.no_grad():
        h = backbone.data_bn(x)[..., 0]
        for block in backbone.blocks:
            h = block(h)
    assert h.shape[2] == 4  # 13 -> 7 -> 4


# ---- DGNN -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rig", sorted(SKELETONS))
def test_dgnn_incidence_matches_the_bones(rig):
    sk = SKELETONS[rig]
    source, target = incidence_matrices(sk)
    assert source.shape == target.shape == (sk.num_joints, sk.num_bones)
    assert (source.sum(0) == 1).all() and (target.sum(0) == 1).all()
    for e, (child, parent) in enumerate(sk.bones):
        assert source[parent, e] == 1 and target[child, e] == 1
    # Every joint but the root has exactly one incoming bone; leaves have no outgoing one.
    assert target.sum(1).tolist() == [0.0 if j == sk.root else 1.0 for j in range(sk.num_joints)]
    children = {p for _, p in sk.bones}
    assert [j for j in range(sk.num_joints) if source[j].sum() == 0] == [j for j in range(sk.num_joints) if j not in children]
    model = make("dgnn", sk)
    block = model.streams["spatial"].blocks[0]
    assert np.array_equal(block.source.detach().numpy(), source)
    assert np.array_equal(block.target.detach().numpy(), target)


def test_dgnn_bone_input_is_computed_from_the_joints():
    sk = SKELETONS["cmu25"]
    model = make("dgnn", sk)
    x = motion_batch(sk)
    b = model.bones(x)
    assert b.shape == (3, 3, T, sk.num_bones, 2)
    for e, (child, parent) in enumerate(sk.bones):
        assert torch.allclose(b[:, :, :, e], x[:, :, :, child] - x[:, :, :, parent])


def test_dgnn_motion_stream_is_optional_and_summed():
    sk = SKELETONS["ntu25"]
    model = make("dgnn", sk, motion=True).eval()
    assert set(model.streams) == {"spatial", "motion"}
    x = motion_batch(sk)
    with torch.no_grad():
        b = model.bones(x)
        expected = model.streams["spatial"](x, b) + model.streams["motion"](motion_stream(x), motion_stream(b))
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert len(model.incidence_parameters()) == 2 * 2 * 10
    assert set(make("dgnn", sk).streams) == {"spatial"}
