"""Compact, browser-decodable encoding of a motion for the participant app.

A 6-second motion of 25 joints at 30 fps is 54 KB as float32 and must travel in at most
30 KB. Positions are quantised to 16-bit integers relative to a per-motion, per-axis
offset and scale (resolution ~0.03 mm over a 2 m range), differenced along time
(modulo 2^16, so the browser undoes it with an Int16Array running sum), deflated with
zlib and base64-encoded. Smooth motions compress far below the budget; if a motion does
not, the encoder drops quantisation bits (the decoder is unchanged: value = offset +
q * scale) until it fits.

Decoding in the browser: base64 -> bytes -> DecompressionStream('deflate') -> Int16Array
(little endian) laid out (M, T, V, 3); for t >= 1 add frame t-1 to frame t in an
Int16Array (wrapping); position = offset[axis] + q * scale[axis].

Each shown view gets its own encoding (`view`, e.g. the handle's key and side): the
quantisation grid is shifted by a fraction of one step and its step widened by up to
0.1%, both derived from the view, so the two identical originals of a sensitivity
trial never travel as the same bytes (a one-line script could otherwise compare them)
while decoding to within one quantisation step (~0.03 mm at 16 bits) of each other.
The format and the decoder are unchanged. This is no secrecy: decoded motions can still
be compared; catch trials and playback timing are the defence against scripts.
"""
from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np

FORMAT = "int16-tdelta-deflate-base64"
MAX_BYTES = 30_000


def encode_motion(motion: np.ndarray, fps: float, max_bytes: int | None = None, view: str | None = None,
                  side: str = "left") -> dict:
    """JSON-ready dict for a (M, T, V, 3) float motion; raises if it cannot fit `max_bytes`
    (default: `MAX_BYTES` per person-6-seconds of 25 joints at 30 fps, never less than
    `MAX_BYTES`). With `view`, the view's own sub-step grid (module docstring): the
    offset moves by a fraction in [-1/2, 0) of a step on the left `side`, [0, 1/2) on the
    right, so a trial's two sides always differ."""
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 4 or motion.shape[-1] != 3:
        raise ValueError(f"motion must have shape (M, T, V, 3), got {motion.shape}")
    if max_bytes is None:
        m, t, v, _ = motion.shape
        max_bytes = int(MAX_BYTES * max(1.0, m * t * v / (180 * 25)))
    flat = motion.reshape(-1, 3)
    low, high = flat.min(0), flat.max(0)
    shift, widen = _view_grid(view, side)
    for bits in (16, 14, 12, 10, 8):
        levels = 2 ** (bits - 1) - 1
        # A shifted grid keeps one level spare, so |q| stays within the int16 range.
        spare = 1 if view is not None else 0
        scale = np.maximum((high - low) / 2, 1e-9) / (levels - spare) * widen
        offset = (low + high) / 2 + shift * scale
        q = np.rint((motion - offset) / scale).astype(np.int16)
        delta = q.copy()
        delta[:, 1:] = q[:, 1:] - q[:, :-1]  # int16 arithmetic wraps: the decoder's running sum undoes it
        data = base64.b64encode(zlib.compress(delta.astype("<i2").tobytes(), 9)).decode("ascii")
        payload = {"format": FORMAT, "shape": list(motion.shape), "fps": float(fps),
                   "offset": offset.tolist(), "scale": scale.tolist(), "data": data}
        if len(data) + 300 <= max_bytes:
            return payload
    raise ValueError(f"motion of shape {motion.shape} does not fit in {max_bytes} bytes")


def _view_grid(view: str | None, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-axis offset shift in steps, per-axis step factor) of a view: deterministic
    (a hash of `view`), so a cached or re-encoded view is byte-identical to itself."""
    if view is None:
        return np.zeros(3), np.ones(3)
    digest = np.frombuffer(hashlib.sha256(view.encode()).digest()[:12], dtype="<u2") / 65536.0
    half = digest[:3] / 2  # [0, 1/2)
    shift = half - 0.5 if side == "left" else half
    return shift, 1 + 1e-3 * digest[3:6]


def broken_motion(motion: np.ndarray, seed: int) -> np.ndarray:
    """A grossly broken copy of a motion for catch trials, deterministic in `seed`: every
    joint shaken independently in every frame by a tenth of the motion's extent (some
    17 cm for a standing adult), so no one who watched can take it for the natural one.
    Same shape, persons and frame rate, so the player draws it like any motion."""
    motion = np.asarray(motion, dtype=np.float64)
    # The body's size (median over frames of its largest per-axis span), not the path walked.
    extent = float(np.median((motion.max(axis=2) - motion.min(axis=2)).max(axis=-1))) or 1.0
    rng = np.random.default_rng(seed)
    return (motion + rng.normal(0.0, 0.1 * extent, motion.shape)).astype(np.float32)


def decode_motion(payload: dict) -> np.ndarray:
    """Inverse of `encode_motion` (what the browser does), float32 (M, T, V, 3)."""
    if payload.get("format") != FORMAT:
        raise ValueError(f"unknown motion format {payload.get('format')!r}")
    shape = tuple(payload["shape"])
    delta = np.frombuffer(zlib.decompress(base64.b64decode(payload["data"])), dtype="<i2").reshape(shape)
    q = np.cumsum(delta, axis=1, dtype=np.int16)
    return (np.asarray(payload["offset"]) + q * np.asarray(payload["scale"])).astype(np.float32)


def shown_motion(handle) -> np.ndarray:
    """The motion a MotionHandle shows: its sample's original or attacked motion, or, for
    the handle in its study protocol's BROKEN_VIEW (variant, side), which that protocol's
    ordinary trials never use, the broken copy of the original that catch trials show
    (seeded by the sample, so every participant sees the same one)."""
    from studies.protocols import get_protocol
    broken = getattr(get_protocol(handle.study.kind), "BROKEN_VIEW", None)
    if broken == (handle.variant, handle.side):
        return broken_motion(handle.sample.original_motion(), seed=handle.sample_id)
    return handle.motion()


def encode_handle(handle) -> dict:
    """`encode_motion` of what a handle shows, on the handle's own grid (key and side)."""
    return encode_motion(shown_motion(handle), handle.sample.fps, view=handle.key, side=handle.side)
