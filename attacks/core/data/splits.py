"""Train / validation / test splits that a recognizer's reported accuracy can be trusted on.

Two kinds of dataset need two kinds of split. Datasets without subject ids (GTU3DActions,
HDM05 windows) get a seeded random split stratified by class, so a 14-class set with
36 clips per class does not lose a whole class from the test set by chance. NTU RGB+D
has published protocols (cross-subject, cross-view) fixed by performer and camera ids;
there the test set is the protocol's, and validation is carved out of the protocol's
training set only, so model selection never sees a test clip.

Windows cut from one take (the `smart` protocol: 60 frames every 30, so neighbours share
half their frames) must land in the same part, or the test set holds frames the model was
trained on. Both splits therefore take optional `groups` (the clip's source file): a
group is split as one unit, stratified by its class.

Every function returns a dict {"train", "val", "test"} of sorted int64 index arrays
that together cover each index exactly once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Cross-subject training performers of NTU RGB+D 60 (Shahroudy et al., 2016); every other
# performer is a test performer.
NTU_XSUB_TRAIN_PERFORMERS = frozenset(
    {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
)
# Cross-view: cameras 2 and 3 train, camera 1 tests.
NTU_XVIEW_TRAIN_CAMERAS = frozenset({2, 3})

PROTOCOLS = ("ntu-xsub", "ntu-xview")


def stratified_split(labels, val_fraction: float = 0.1, test_fraction: float = 0.2,
                     seed: int = 0, groups=None) -> dict[str, np.ndarray]:
    """Split indices 0..N-1 by class so every class is represented in proportion.

    Per class, the validation and test counts are the class size times the fraction,
    rounded down or up (never further off than one clip); the round-ups are handed out
    by largest remainder so the split totals match the fractions of N as closely as
    possible. A class always keeps at least one training clip. Deterministic for a seed.
    With `groups` (one key per index), whole groups are split this way instead of clips.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    _check_fractions(val_fraction, test_fraction)
    if groups is not None:
        return _grouped(stratified_split, labels, groups, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed)
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    sizes = np.array([len(m) for m in members])

    n_test = _allocate(sizes, test_fraction, rng)
    n_val = _allocate(sizes, val_fraction, rng)
    # Keep one training clip per class: take it back from validation first, then test.
    over = np.maximum(n_test + n_val - (sizes - 1), 0)
    from_val = np.minimum(over, n_val)
    n_val -= from_val
    n_test -= over - from_val
    n_test = np.maximum(n_test, 0)

    parts = {"train": [], "val": [], "test": []}
    for idx, nt, nv in zip(members, n_test, n_val):
        shuffled = rng.permutation(idx)
        parts["test"].append(shuffled[:nt])
        parts["val"].append(shuffled[nt:nt + nv])
        parts["train"].append(shuffled[nt + nv:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64)
            for k, v in parts.items()}


def protocol_split(meta_list: Sequence[Mapping], protocol: str = "ntu-xsub",
                   val_fraction: float = 0.1, seed: int = 0, labels=None, groups=None) -> dict[str, np.ndarray]:
    """NTU RGB+D cross-subject or cross-view split, with validation taken from train.

    `meta_list[i]` is clip i's metadata as the NTU reader stores it: `performer`
    (or `subject`) and `camera` ids, and the class as `class_id` (or `label`) unless
    `labels` is given. Validation is a stratified `val_fraction` of the protocol's
    training clips (of whole `groups` when given); the test set is exactly the
    protocol's test clips.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    _check_fractions(val_fraction, 0.0)
    n = len(meta_list)
    if protocol == "ntu-xsub":
        key_values = np.array([_field(m, i, ("performer", "subject")) for i, m in enumerate(meta_list)])
        in_train = np.isin(key_values, list(NTU_XSUB_TRAIN_PERFORMERS))
    else:
        key_values = np.array([_field(m, i, ("camera",)) for i, m in enumerate(meta_list)])
        in_train = np.isin(key_values, list(NTU_XVIEW_TRAIN_CAMERAS))
    if labels is None:
        labels = [_field(m, i, ("class_id", "label")) for i, m in enumerate(meta_list)]
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} clips")

    train_pool = np.flatnonzero(in_train)
    inner = stratified_split(labels[train_pool], val_fraction=val_fraction, test_fraction=0.0, seed=seed,
                             groups=None if groups is None else np.asarray(groups)[train_pool])
    return {
        "train": np.sort(train_pool[inner["train"]]).astype(np.int64),
        "val": np.sort(train_pool[inner["val"]]).astype(np.int64),
        "test": np.flatnonzero(~in_train).astype(np.int64),
    }


def _grouped(split, labels, groups, **kwargs) -> dict[str, np.ndarray]:
    """Run `split` on one representative per group, then give every member its group's part."""
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"{len(groups)} groups for {len(labels)} labels")
    keys, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    mixed = np.flatnonzero(labels != labels[first][inverse])
    if len(mixed):
        raise ValueError(f"group {groups[mixed[0]]!r} holds clips of more than one class")
    parts = split(labels[first], **kwargs)
    return {k: np.flatnonzero(np.isin(inverse, v)).astype(np.int64) for k, v in parts.items()}


def _allocate(sizes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts floor(size*f) or one more, the extras going to the largest remainders."""
    exact = sizes * fraction
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = exact - counts
    extra = int(round(sizes.sum() * fraction)) - int(counts.sum())
    if extra > 0:
        # Random tie-break among equal remainders, so no class is always favoured.
        order = np.lexsort((rng.random(len(sizes)), -remainder))
        eligible = order[remainder[order] > 1e-9][:extra]
        counts[eligible] += 1
    return counts


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"fractions must be in [0, 1) and sum below 1: val={val_fraction}, test={test_fraction}")


def _field(meta: Mapping, index: int, keys: tuple[str, ...]):
    for key in keys:
        if key in meta:
            return meta[key]
    raise KeyError(f"clip {index}: metadata has none of {', '.join(keys)} (keys: {', '.join(map(str, meta))})")
