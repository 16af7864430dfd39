"""The layout conversion from stored motions to recognizer inputs.

Stored motions are (M, T, V, 3) per clip, batches (N, M, T, V, 3); recognizers take
(N, 3, T, V, M) as in the ST-GCN family. `to_model_input` is the only place the axes
are shuffled, on numpy arrays and torch tensors alike; nothing converts back, because
attacks perturb the stored layout and only feed the recognizer through this function.
"""
import numpy as np


def to_model_input(motions):
    """(N, M, T, V, 3) -> (N, 3, T, V, M)."""
    if isinstance(motions, np.ndarray):
        return np.ascontiguousarray(motions.transpose(0, 4, 2, 3, 1))
    return motions.permute(0, 4, 2, 3, 1).contiguous()

