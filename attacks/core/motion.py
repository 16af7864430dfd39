"""Layout conversions between stored motions and recognizer inputs.

Stored motions are (M, T, V, 3) per clip, batches (N, M, T, V, 3); recognizers take
(N, 3, T, V, M) as in the ST-GCN family. These two functions are the only place the
axes are shuffled, and both work on numpy arrays and torch tensors.
"""
import numpy as np


def to_model_input(motions):
    """(N, M, T, V, 3) -> (N, 3, T, V, M)."""
    if isinstance(motions, np.ndarray):
        return np.ascontiguousarray(motions.transpose(0, 4, 2, 3, 1))
    return motions.permute(0, 4, 2, 3, 1).contiguous()


def from_model_input(x):
    """(N, 3, T, V, M) -> (N, M, T, V, 3)."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x.transpose(0, 4, 2, 3, 1))
    return x.permute(0, 4, 2, 3, 1).contiguous()
