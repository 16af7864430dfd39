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
"""
from __future__ import annotations

import base64
import zlib

import numpy as np

FORMAT = "int16-tdelta-deflate-base64"
MAX_BYTES = 30_000


def encode_motion(motion: np.ndarray, fps: float, max_bytes: int | None = None) -> dict:
    """JSON-ready dict for a (M, T, V, 3) float motion; raises if it cannot fit `max_bytes`
    (default: `MAX_BYTES` per person-6-seconds of 25 joints at 30 fps, never less than
    `MAX_BYTES`)."""
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 4 or motion.shape[-1] != 3:
        raise ValueError(f"motion must have shape (M, T, V, 3), got {motion.shape}")
    if max_bytes is None:
        m, t, v, _ = motion.shape
        max_bytes = int(MAX_BYTES * max(1.0, m * t * v / (180 * 25)))
    flat = motion.reshape(-1, 3)
    low, high = flat.min(0), flat.max(0)
    offset = (low + high) / 2
    for bits in (16, 14, 12, 10, 8):
        levels = 2 ** (bits - 1) - 1
        scale = np.maximum((high - low) / 2, 1e-9) / levels
        q = np.rint((motion - offset) / scale).astype(np.int16)
        delta = q.copy()
        delta[:, 1:] = q[:, 1:] - q[:, :-1]  # int16 arithmetic wraps: the decoder's running sum undoes it
        data = base64.b64encode(zlib.compress(delta.astype("<i2").tobytes(), 9)).decode("ascii")
        payload = {"format": FORMAT, "shape": list(motion.shape), "fps": float(fps),
                   "offset": offset.tolist(), "scale": scale.tolist(), "data": data}
        if len(data) + 300 <= max_bytes:
            return payload
    raise ValueError(f"motion of shape {motion.shape} does not fit in {max_bytes} bytes")


def decode_motion(payload: dict) -> np.ndarray:
    """Inverse of `encode_motion` (what the browser does), float32 (M, T, V, 3)."""
    if payload.get("format") != FORMAT:
        raise ValueError(f"unknown motion format {payload.get('format')!r}")
    shape = tuple(payload["shape"])
    delta = np.frombuffer(zlib.decompress(base64.b64decode(payload["data"])), dtype="<i2").reshape(shape)
    q = np.cumsum(delta, axis=1, dtype=np.int16)
    return (np.asarray(payload["offset"]) + q * np.asarray(payload["scale"])).astype(np.float32)
