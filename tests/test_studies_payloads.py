"""Compact motion payloads: size budget, round trip and the browser's decoding recipe."""
import base64
import json
import zlib

import numpy as np
import pytest

from studies.core.payloads import FORMAT, MAX_BYTES, decode_motion, encode_motion


def smooth_motion(frames=180, joints=25, persons=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 6, frames)[None, :, None, None]
    base = rng.normal(0, 0.4, (persons, 1, joints, 3))
    swing = 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5, (persons, 1, joints, 3)) * t)
    return (base + swing + rng.normal(0, 0.002, (persons, frames, joints, 3))).astype(np.float32)


def test_six_second_motion_fits_budget_and_round_trips_within_half_a_step():
    motion = smooth_motion()
    payload = encode_motion(motion, fps=30)
    assert len(json.dumps(payload)) <= MAX_BYTES
    decoded = decode_motion(payload)
    assert decoded.shape == motion.shape
    assert np.all(np.abs(decoded - motion) <= np.asarray(payload["scale"]) * 0.5 + 1e-6)
    assert np.abs(decoded - motion).max() < 1e-4  # 16-bit levels kept for realistic motion


def test_rough_motion_still_fits_by_dropping_quantisation_bits():
    motion = np.random.default_rng(1).normal(0, 1, (1, 180, 25, 3)).astype(np.float32)
    payload = encode_motion(motion, fps=30)
    assert len(json.dumps(payload)) <= MAX_BYTES
    assert np.all(np.abs(decode_motion(payload) - motion) <= np.asarray(payload["scale"]) * 0.5 + 1e-6)


def test_browser_recipe_int16_running_sum_decodes_wrapped_deltas():
    # A jump across the whole range makes deltas overflow int16; the wrapping running sum undoes it.
    motion = np.zeros((1, 4, 2, 3), dtype=np.float32)
    motion[0, 1] = 1.0
    motion[0, 2] = -1.0
    payload = encode_motion(motion, fps=30)
    assert payload["format"] == FORMAT
    raw = np.frombuffer(zlib.decompress(base64.b64decode(payload["data"])), dtype="<i2").reshape(1, 4, 2, 3).copy()
    for t in range(1, 4):  # what the JavaScript loop does with an Int16Array
        raw[0, t] = (raw[0, t].astype(np.int32) + raw[0, t - 1]).astype(np.int16)
    positions = np.asarray(payload["offset"]) + raw * np.asarray(payload["scale"])
    np.testing.assert_allclose(positions, motion, atol=1e-4)


def test_payload_names_nothing_but_geometry():
    payload = encode_motion(smooth_motion(30), fps=30)
    assert set(payload) == {"format", "shape", "fps", "offset", "scale", "data"}


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        encode_motion(np.zeros((30, 25, 3)), fps=30)


def test_each_view_has_its_own_grid_same_format_and_sub_millimetre_agreement():
    motion = smooth_motion()
    left = encode_motion(motion, fps=30, view="key-a", side="left")
    right = encode_motion(motion, fps=30, view="key-b", side="right")
    assert set(left) == set(right) == {"format", "shape", "fps", "offset", "scale", "data"}
    assert left["data"] != right["data"] and left["offset"] != right["offset"]
    # the same view key on either side still differs: the side decides the shift's sign
    assert encode_motion(motion, fps=30, view="key-a", side="right")["offset"] != left["offset"]
    assert encode_motion(motion, fps=30, view="key-a", side="left") == left  # deterministic (cacheable)
    for payload in (left, right):
        decoded = decode_motion(payload)
        assert np.all(np.abs(decoded - motion) <= np.asarray(payload["scale"]) * 0.5 + 1e-6)
    gap = np.abs(decode_motion(left) - decode_motion(right)).max()
    assert gap <= max(max(left["scale"]), max(right["scale"])) + 1e-6 and gap < 1e-3  # one step, < 1 mm
    # extreme values stay inside int16 with the shifted grid (no wrap-around at the range ends)
    edges = np.zeros((1, 3, 2, 3), dtype=np.float32)
    edges[0, 1], edges[0, 2] = 1.0, -1.0
    for side in ("left", "right"):
        np.testing.assert_allclose(decode_motion(encode_motion(edges, 30, view="k", side=side)), edges, atol=1e-4)


def test_broken_motion_is_deterministic_gross_and_drawable():
    from studies.core.payloads import broken_motion
    motion = smooth_motion(60)
    a, b = broken_motion(motion, seed=3), broken_motion(motion, seed=3)
    assert a.shape == motion.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, broken_motion(motion, seed=4))
    assert np.abs(a - motion).mean() > 0.05  # several centimetres per joint and frame
    assert len(json.dumps(encode_motion(a, fps=30))) <= MAX_BYTES
