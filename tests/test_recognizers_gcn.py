"""Skeleton graphs, shared GCN blocks, input streams and the ST-GCN family of recognizers.

Models are built at tiny widths and depths so the whole file runs in seconds on a CPU;
the published configurations are only constructed (parameter counts), never run.
"""
import numpy as np
import pytest
import torch

from attacks.core.recognizers import build_recognizer, recognizer_class
from attacks.core.recognizers import graph
from attacks.core.recognizers.blocks import CTRGC, DataBatchNorm, GraphConv, MultiScaleTemporalConv, TemporalConv
from attacks.core.recognizers.stgcn import block_schedule
from attacks.core.recognizers.streams import bone_stream, motion_stream, stream_input
from attacks.core.skeletons import Skeleton, get_skeleton

ARCHS = ("stgcn", "agcn", "asgcn", "ctrgcn")
TINY = dict(width=8, num_blocks=3)


def _json20() -> Skeleton:
    """A 20-joint rig (Kinect v1 style) given as JSON, root in the middle of the list."""
    parents = [1, 2, -1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 2, 12, 13, 14, 12, 16, 17, 18]
    d = {
        "name": "rig20",
        "joints": [f"j{i}" for i in range(20)],
        "parents": parents,
        "spine": [0, 1, 2],
    }
    import json
    return Skeleton.from_json(json.dumps(d), source="rig20.json")


SKELETONS = {"ntu25": get_skeleton("ntu25"), "cmu25": get_skeleton("cmu25"), "rig20": _json20()}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CI box the
    thread hand-offs cost far more than the arithmetic."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _motion(skeleton, n=2, t=16, m=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, skeleton.num_joints, m, generator=g, dtype=dtype)


# ---- graph ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SKELETONS))
@pytest.mark.parametrize("mode", graph.MODES)
def test_graph_edges_are_the_skeleton_bones(name, mode):
    sk = SKELETONS[name]
    a = graph.adjacency_partitions(sk, mode).sum(axis=0)
    off = {(int(i), int(j)) for i, j in zip(*np.nonzero(a)) if i != j}
    bones = {(c, p) for c, p in sk.bones} | {(p, c) for c, p in sk.bones}
    assert off == bones
    assert (np.diag(a) > 0).all()  # every mode keeps a self partition


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_spatial_partitions_split_the_normalised_adjacency(name):
    sk = SKELETONS[name]
    parts = graph.adjacency_partitions(sk, "spatial")
    full = graph.normalize_digraph(sk.adjacency() + np.eye(sk.num_joints))
    assert parts.shape == (3, sk.num_joints, sk.num_joints)
    np.testing.assert_allclose(parts.sum(axis=0), full, atol=1e-6)
    # disjoint supports: every entry belongs to exactly one partition
    assert ((parts != 0).sum(axis=0) <= 1).all()
    # partition 1 carries messages towards the centre, partition 2 away from it
    depth = sk.depth()  # hops to the root, the default centre
    for v, w in zip(*np.nonzero(parts[1])):
        assert depth[v] > depth[w]
    for v, w in zip(*np.nonzero(parts[2])):
        assert depth[v] < depth[w]
    np.testing.assert_allclose(np.diag(parts[0]), np.diag(full))


def test_spatial_partitions_follow_the_chosen_centre():
    sk = SKELETONS["ntu25"]
    around_root = graph.adjacency_partitions(sk, "spatial")
    around_spine_mid = graph.adjacency_partitions(sk, "spatial", center=sk.center_joint)
    assert sk.center_joint != sk.root
    # the bone between the root (spine shoulder) and spine mid flips direction
    r, c = sk.root, sk.center_joint
    assert around_root[1][c, r] > 0 and around_root[2][c, r] == 0
    assert around_spine_mid[2][c, r] > 0 and around_spine_mid[1][c, r] == 0


def test_directed_partitions_are_identity_inward_outward():
    sk = SKELETONS["cmu25"]
    parts = graph.adjacency_partitions(sk, "directed")
    np.testing.assert_array_equal(parts[0], np.eye(sk.num_joints))
    assert ((parts[1] != 0) == (parts[2] != 0).T).all()
    # every receiving joint averages: nonzero columns sum to one
    for p in parts[1:]:
        col = p.sum(axis=0)
        np.testing.assert_allclose(col[col > 0], 1.0, atol=1e-6)
    # each non-root joint sends exactly one message inwards (to its parent)
    np.testing.assert_array_equal((parts[1] != 0).sum(axis=1), [0 if p == -1 else 1 for p in sk.parents])


def test_distance_and_uniform_modes():
    sk = SKELETONS["ntu25"]
    hops = graph.hop_distance(sk)
    dist = graph.adjacency_partitions(sk, "distance", max_hop=2)
    assert dist.shape == (3, 25, 25)
    for d in range(3):
        assert ((dist[d] != 0) == (hops == d)).all()
    uni = graph.adjacency_partitions(sk, "uniform", max_hop=2)
    np.testing.assert_allclose(uni[0], dist.sum(axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="unknown graph mode"):
        graph.adjacency_partitions(sk, "bogus")


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_hop_distance_to_root_is_depth(name):
    sk = SKELETONS[name]
    hops = graph.hop_distance(sk)
    np.testing.assert_array_equal(hops[:, sk.root], sk.depth())
    np.testing.assert_array_equal(hops, hops.T)
    assert np.isinf(graph.hop_distance(sk, max_hop=1)[hops > 1]).all()


def test_k_hop_and_multiscale_adjacency():
    sk = SKELETONS["ntu25"]
    a = sk.adjacency()
    hops = graph.hop_distance(sk)
    for k in range(4):
        np.testing.assert_array_equal(graph.k_hop_adjacency(a, k), (hops == k).astype(np.float32))
    scales = graph.multiscale_adjacency(sk, 4)
    assert scales.shape == (4, 25, 25)
    for k in range(1, 4):
        support = (hops == k) | np.eye(25, dtype=bool)
        assert ((scales[k] != 0) == support).all()
        np.testing.assert_allclose(scales[k], scales[k].T, atol=1e-6)
    entangled = graph.multiscale_adjacency(sk, 3, disentangled=False, normalize=False)
    np.testing.assert_array_equal(entangled[2], (hops <= 2).astype(np.float32))
    window = graph.spatial_temporal_window(sk, 3)
    assert window.shape == (75, 75)
    np.testing.assert_array_equal(window[25:50, 0:25], a + np.eye(25))
    assert graph.multiscale_adjacency(window, 2).shape == (2, 75, 75)


# ---- streams ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_bone_stream_is_joint_minus_parent(name):
    sk = SKELETONS[name]
    x = _motion(sk, seed=1)
    bones = bone_stream(x, sk)
    pos = x.permute(0, 4, 2, 3, 1)  # (N, M, T, V, 3)
    expected = sk.bone_vectors(pos)  # (N, M, T, B, 3)
    got = bones.permute(0, 4, 2, 3, 1)[..., [c for c, _ in sk.bones], :]
    assert torch.equal(got, expected)
    assert torch.equal(bones[:, :, :, sk.root], torch.zeros_like(bones[:, :, :, sk.root]))


def test_motion_stream_is_forward_difference_with_zero_last_frame():
    x = _motion(SKELETONS["ntu25"], t=7, seed=2)
    mot = motion_stream(x)
    assert mot.shape == x.shape
    assert torch.equal(mot[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
    assert torch.equal(mot[:, :, -1], torch.zeros_like(mot[:, :, -1]))
    bm = stream_input("bone_motion", x, SKELETONS["ntu25"])
    assert torch.equal(bm, motion_stream(bone_stream(x, SKELETONS["ntu25"])))
    with pytest.raises(ValueError, match="unknown stream"):
        stream_input("velocity", x, SKELETONS["ntu25"])


def test_streams_pass_gradients_to_every_joint():
    sk = SKELETONS["cmu25"]
    x = _motion(sk, seed=3).requires_grad_()
    (stream_input("bone_motion", x, sk) ** 2).sum().backward()
    assert (x.grad.abs().sum(dim=(0, 1, 2, 4)) > 0).all()


# ---- blocks ------------------------------------------------------------------------------

def test_graph_conv_attention_columns_are_distributions():
    a = graph.adjacency_partitions(SKELETONS["ntu25"], "directed")
    conv = GraphConv(3, 8, a, adaptive=True, attention=True, residual=True)
    x = torch.randn(2, 3, 10, 25)
    eff = conv.adjacency(x)
    assert eff.shape == (2, 3, 25, 25)
    attention = eff - conv.A - conv.B
    torch.testing.assert_close(attention.sum(dim=-2), torch.ones(2, 3, 25))
    assert conv(x).shape == (2, 8, 10, 25)


def test_graph_conv_mixes_only_along_edges():
    sk = SKELETONS["ntu25"]
    conv = GraphConv(3, 4, graph.adjacency_partitions(sk, "spatial"), edge_importance=True).eval()
    x = torch.randn(1, 3, 5, 25, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = conv(x)
    out[0, :, :, 0].sum().backward()  # joint 0 receives from itself and its bone neighbours only
    touched = set(torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).flatten().tolist())
    assert touched == {0} | {p for c, p in sk.bones if c == 0} | {c for c, p in sk.bones if p == 0}


def test_ctrgc_equals_sum_of_per_partition_units():
    torch.manual_seed(0)
    a = torch.from_numpy(graph.adjacency_partitions(SKELETONS["ntu25"], "directed"))
    fused = CTRGC(16, 12, num_partitions=3)
    x = torch.randn(2, 16, 6, 25)
    alpha = torch.tensor([0.7])
    r, c = fused.rel_channels, 12
    expected = 0
    for k in range(3):
        single = CTRGC(16, 12, num_partitions=1)
        for name, rows in (("conv1", r), ("conv2", r), ("conv3", c), ("conv4", c)):
            src, dst = getattr(fused, name), getattr(single, name)
            dst.weight.data.copy_(src.weight.data[k * rows:(k + 1) * rows])
            dst.bias.data.copy_(src.bias.data[k * rows:(k + 1) * rows])
        expected = expected + single(x, a[k], alpha)
    torch.testing.assert_close(fused(x, a, alpha), expected, rtol=1e-4, atol=1e-5)


def test_temporal_convs_keep_length_and_stride():
    x = torch.randn(2, 12, 16, 25)
    assert TemporalConv(12, 24, 9, stride=2)(x).shape == (2, 24, 8, 25)
    assert TemporalConv(12, 12, 3, dilation=3)(x).shape == (2, 12, 16, 25)
    ms = MultiScaleTemporalConv(12, 26, kernel_size=5, stride=2, dilations=(1, 2))
    assert ms(x).shape == (2, 26, 8, 25)
    assert MultiScaleTemporalConv(12, 12, dilations=(1, 2, 3, 4))(x).shape == (2, 12, 16, 25)


def test_data_batch_norm_normalises_every_person_joint_coordinate():
    bn = DataBatchNorm(3, 25, 2).train()
    x = _motion(SKELETONS["ntu25"], n=8, t=12, seed=4) * 5 + 3
    y = bn(x)
    assert y.shape == x.shape
    per_feature = y.permute(1, 3, 4, 0, 2).reshape(3, 25, 2, -1)
    torch.testing.assert_close(per_feature.mean(-1), torch.zeros(3, 25, 2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="expected input"):
        bn(x[..., :1])


def test_block_schedule_is_the_published_one_at_ten_blocks():
    sched = block_schedule(10, 64)
    assert [o for _, o, _ in sched] == [64] * 4 + [128] * 3 + [256] * 3
    assert [s for _, _, s in sched] == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert [o for _, o, _ in block_schedule(9, 64, (1 / 3, 2 / 3))] == [64] * 3 + [128] * 3 + [256] * 3
    assert [o for _, o, _ in block_schedule(3, 16)] == [16, 32, 64]


# ---- recognizers -------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(SKELETONS))
@pytest.mark.parametrize("persons", [1, 2])
def test_output_shape(arch, name, persons):
    sk = SKELETONS[name]
    torch.manual_seed(0)
    model = build_recognizer(arch, sk, 5, num_persons=persons, num_frames=16, **TINY).eval()
    logits = model(_motion(sk, n=3, t=16, m=persons))
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_reaches_every_joint_and_coordinate(arch):
    sk = SKELETONS["ntu25"]
    torch.manual_seed(0)
    model = build_recognizer(arch, sk, 4, num_persons=2, **TINY).eval()
    x = _motion(sk, n=2, t=16, seed=5).requires_grad_()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 3])).backward()
    per_joint_channel = x.grad.abs().sum(dim=(0, 2, 4))  # (C, V)
    assert (per_joint_channel > 0).all(), per_joint_channel


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_creates_no_state_and_works_in_float64(arch):
    sk = SKELETONS["cmu25"]
    model = build_recognizer(arch, sk, 3, num_persons=1, **TINY)
    before = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    n_params = sum(p.numel() for p in model.parameters())
    model(_motion(sk, m=1))
    model.eval()(_motion(sk, m=1))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == before
    assert sum(p.numel() for p in model.parameters()) == n_params
    model = model.to(torch.float64)
    out = model(_motion(sk, m=1, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert all(v.dtype == torch.float64 for v in model.state_dict().values() if v.is_floating_point())


def test_multi_stream_models_sum_joint_and_bone_logits():
    sk = SKELETONS["ntu25"]
    for arch in ("agcn", "ctrgcn"):
        model = build_recognizer(arch, sk, 4, num_persons=1, **TINY).eval()
        assert model.streams == ("joint", "bone")
        x = _motion(sk, m=1, seed=6)
        parts = [model.heads[s](model.backbones[s](stream_input(s, x, sk))) for s in model.streams]
        torch.testing.assert_close(model(x), parts[0] + parts[1])
    four = build_recognizer("ctrgcn", sk, 4, num_persons=1, streams=("joint", "bone", "joint_motion", "bone_motion"),
                            **TINY)
    assert four(_motion(sk, m=1)).shape == (2, 4)


def test_asgcn_actional_links_depend_on_the_input():
    sk = SKELETONS["ntu25"]
    torch.manual_seed(0)
    model = build_recognizer("asgcn", sk, 4, num_persons=1, **TINY).eval()
    infer = model.backbones["joint"].links
    a = infer(_motion(sk, m=1, seed=7)[..., 0])
    b = infer(_motion(sk, m=1, seed=8)[..., 0])
    assert a.shape == (2, 2, 25, 25)
    assert not torch.allclose(a, b)
    assert torch.equal(torch.diagonal(a, dim1=-2, dim2=-1), torch.zeros(2, 2, 25))
    assert (a >= 0).all() and (a.sum(dim=-2) <= 1 + 1e-6).all()


def test_wrong_input_shape_is_a_clear_error():
    model = build_recognizer("stgcn", "ntu25", 3, **TINY)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 3, 8, 20, 2))


@pytest.mark.parametrize("arch", ARCHS)
def test_short_training_lowers_the_loss(arch):
    """30 Adam steps on a 2-class toy problem (arms swing sideways vs up-down)."""
    sk = SKELETONS["ntu25"]
    torch.manual_seed(0)
    n, t = 8, 8
    y = torch.arange(n) % 2
    phase = torch.linspace(0, 6.28, t)
    x = 0.05 * torch.randn(n, 3, t, 25, 1)
    swing = torch.sin(phase)[None, :, None] * torch.ones(n, t, 25)
    x[y == 0, 0, :, :, 0] += swing[y == 0]
    x[y == 1, 1, :, :, 0] += swing[y == 1]
    model = build_recognizer(arch, sk, 2, num_persons=1, width=4, num_blocks=2).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


PUBLISHED_PARAMS = {  # per stream, NTU (25 joints), 60 classes
    "stgcn": 3.10e6,  # Yan et al. 2018 (as counted by reimplementations)
    "agcn": 3.47e6,  # Shi et al. 2019, one stream
    "ctrgcn": 1.46e6,  # Chen et al. 2021, one stream
}


@pytest.mark.parametrize("arch", sorted(PUBLISHED_PARAMS))
def test_published_width_matches_published_parameter_count(arch):
    model = recognizer_class(arch)(get_skeleton("ntu25"), 60)
    per_stream = sum(p.numel() for p in model.parameters()) / len(model.streams)
    assert abs(per_stream - PUBLISHED_PARAMS[arch]) / PUBLISHED_PARAMS[arch] < 0.03, per_stream
