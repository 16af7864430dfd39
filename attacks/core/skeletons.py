"""Skeletons as data.

Every loss, recognizer graph, preprocessing step and renderer takes a `Skeleton`
instead of assuming 25 joints or a joint order. Bones, bone lengths and graph edges
are all derived from the parent list, so a new rig is one JSON file away.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attacks.core.errors import InputError

PART_NAMES = ("trunk", "left_arm", "right_arm", "left_leg", "right_leg")


class SkeletonError(InputError):
    """A skeleton definition is inconsistent; the message names the offending field."""


@dataclass(frozen=True)
class Skeleton:
    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    spine: tuple[int, ...]
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    left_right: tuple[tuple[int, int], ...] = ()
    hips: tuple[int, int] | None = None  # (left, right): lateral axis for facing normalisation
    shoulders: tuple[int, int] | None = None
    center: int | None = None  # joint used for root-centring; defaults to the root
    # Which of "hips"/"shoulders" `from_dict` inferred (the definition did not give them).
    inferred: tuple[str, ...] = ()

    def __post_init__(self):
        n = len(self.joints)
        if n == 0:
            raise SkeletonError(f"skeleton {self.name!r}: 'joints' is empty")
        if len(set(self.joints)) != n:
            raise SkeletonError(f"skeleton {self.name!r}: 'joints' has duplicate names")
        if len(self.parents) != n:
            raise SkeletonError(
                f"skeleton {self.name!r}: 'parents' has {len(self.parents)} entries for {n} joints"
            )
        roots = [j for j, p in enumerate(self.parents) if p == -1]
        if len(roots) != 1:
            raise SkeletonError(f"skeleton {self.name!r}: 'parents' must have exactly one root (-1), found {len(roots)}")
        for j, p in enumerate(self.parents):
            if p != -1 and not 0 <= p < n:
                raise SkeletonError(f"skeleton {self.name!r}: parents[{j}] = {p} is not a joint index")
        # Every joint must reach the root: no cycles.
        for j in range(n):
            seen, k = set(), j
            while k != -1:
                if k in seen:
                    raise SkeletonError(f"skeleton {self.name!r}: 'parents' has a cycle through joint {j}")
                seen.add(k)
                k = self.parents[k]
        for key, indices in [("spine", self.spine), *[(f"parts.{k}", v) for k, v in self.parts.items()]]:
            bad = [i for i in indices if not 0 <= i < n]
            if bad:
                raise SkeletonError(f"skeleton {self.name!r}: '{key}' refers to missing joints {bad}")
        for key in ("hips", "shoulders"):
            pair = getattr(self, key)
            if pair is not None and not all(0 <= i < n for i in pair):
                raise SkeletonError(f"skeleton {self.name!r}: '{key}' refers to missing joints {pair}")

    # ---- derived structure -------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    @property
    def center_joint(self) -> int:
        return self.root if self.center is None else self.center

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(child, parent) pairs, one per non-root joint, in joint order."""
        return [(j, p) for j, p in enumerate(self.parents) if p != -1]

    @property
    def num_bones(self) -> int:
        return self.num_joints - 1

    def edges(self, self_loops: bool = False) -> list[tuple[int, int]]:
        """Undirected graph edges for GCNs: exactly the bones (plus optional self loops)."""
        edges = list(self.bones)
        if self_loops:
            edges += [(j, j) for j in range(self.num_joints)]
        return edges

    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 adjacency of the bone graph, without self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for c, p in self.bones:
            a[c, p] = a[p, c] = 1.0
        return a

    def depth(self) -> np.ndarray:
        """Hop distance of every joint from the root (for centripetal/centrifugal partitions)."""
        d = np.zeros(self.num_joints, dtype=np.int64)
        for j in range(self.num_joints):
            k = j
            while self.parents[k] != -1:
                d[j] += 1
                k = self.parents[k]
        return d

    def joint_weights(self, spine: float = 0.04, other: float = 0.02) -> np.ndarray:
        """Per-joint weights γ of the SMART perceptual loss (spinal joints count more)."""
        w = np.full(self.num_joints, other, dtype=np.float32)
        w[list(self.spine)] = spine
        return w

    def index(self, name: str) -> int:
        try:
            return self.joints.index(name)
        except ValueError:
            raise SkeletonError(f"skeleton {self.name!r} has no joint named {name!r}") from None

    # ---- geometry on motions (numpy or torch, any leading shape) ------------------
    def bone_vectors(self, positions):
        """Child minus parent for every bone; positions (..., V, 3) -> (..., B, 3)."""
        child = [c for c, _ in self.bones]
        parent = [p for _, p in self.bones]
        return positions[..., child, :] - positions[..., parent, :]

    def bone_lengths(self, positions):
        """Bone lengths; positions (..., V, 3) -> (..., B). Works on numpy arrays and torch tensors."""
        v = self.bone_vectors(positions)
        if isinstance(v, np.ndarray):
            return np.linalg.norm(v, axis=-1)
        return v.norm(dim=-1)

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "joints": list(self.joints),
            "parents": list(self.parents),
            "spine": list(self.spine),
            "parts": {k: list(v) for k, v in self.parts.items()},
            "left_right": [list(p) for p in self.left_right],
        }
        for key in ("hips", "shoulders"):
            if getattr(self, key) is not None and key not in self.inferred:
                d[key] = list(getattr(self, key))
        if self.center is not None:
            d["center"] = self.center
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "Skeleton":
        """A skeleton from its definition (the JSON rig format).

        Where the definition gives no ``hips`` (or no ``shoulders``), the pair is inferred
        (see `infer_lateral_pairs`): from left/right leg (arm) ``parts``, else from joint
        names. Inferred pairs are listed in ``inferred`` and left out by `to_dict`, so
        ``to_dict`` gives back what the definition said and ``from_dict(s.to_dict()) == s``;
        explicit pairs are always kept as given.
        """
        missing = [k for k in ("name", "joints", "parents") if k not in d]
        if missing:
            raise SkeletonError(f"{source}: skeleton definition lacks field(s) {missing}")
        try:
            fields = dict(
                name=str(d["name"]),
                joints=tuple(str(j) for j in d["joints"]),
                parents=tuple(int(p) for p in d["parents"]),
                spine=tuple(int(i) for i in d.get("spine", [])),
                parts={str(k): tuple(int(i) for i in v) for k, v in d.get("parts", {}).items()},
                left_right=tuple((int(a), int(b)) for a, b in d.get("left_right", [])),
                hips=_pair(d["hips"], "hips") if d.get("hips") is not None else None,
                shoulders=_pair(d["shoulders"], "shoulders") if d.get("shoulders") is not None else None,
                center=int(d["center"]) if d.get("center") is not None else None,
            )
            skeleton = cls(**fields)  # validates parents and parts before inference walks them
            if skeleton.hips is not None and skeleton.shoulders is not None:
                return skeleton
            guessed = infer_lateral_pairs(skeleton.joints, skeleton.parents, skeleton.parts)
            inferred = tuple(k for k in ("hips", "shoulders") if fields[k] is None and guessed[k] is not None)
            if not inferred:
                return skeleton
            return cls(**{**fields, **{k: guessed[k] for k in inferred}, "inferred": inferred})
        except SkeletonError as e:
            raise SkeletonError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise SkeletonError(f"{source}: malformed skeleton definition ({e})") from None

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "Skeleton":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SkeletonError(f"{source}: line {e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(d, dict):
            raise SkeletonError(f"{source}: a skeleton file must hold a JSON object")
        return cls.from_dict(d, source=source)


def _pair(value, key) -> tuple[int, int]:
    pair = tuple(int(i) for i in value)
    if len(pair) != 2:
        raise SkeletonError(f"'{key}' must be a (left, right) pair of joint indices, got {list(value)}")
    return pair


# ---- inferring the lateral axis (hips / shoulders) from parts or joint names ----------------

_SIDES = (("left", "left"), ("right", "right"), ("l", "left"), ("r", "right"))
_LIMB_WORDS = {"leg": ("leg", "legs", "lowerlimb"), "arm": ("arm", "arms", "upperlimb")}
# Joint-name stems (side removed), best first. "HipJoint" (CMU/ASF) sits at the root and
# "LeftShoulder" of BVH/Mixamo rigs is the clavicle, so the upper-leg / upper-arm names
# (where the limb really attaches) win over them when a rig has both.
_JOINT_STEMS = {
    "hips": ("hip", "upleg", "upperleg", "thigh", "femur"),
    "shoulders": ("upperarm", "arm", "humerus", "shoulder"),
}
_PAIR_LIMB = {"hips": "leg", "shoulders": "arm"}


def _side_and_stem(name: str) -> tuple[str | None, str]:
    """``"LeftUpLeg"`` -> ("left", "upleg"); ``"hip_R"`` -> ("right", "hip"); ``"spine"`` -> (None, "spine").

    Case-insensitive; the side may be a prefix or suffix (``left``/``right``/``l``/``r``),
    written together (``lhip``, ``leftarm``) or apart (``l_hip``, ``Hip.L``, ``ShoulderLeft``).
    """
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    flat = "".join(words).lower()
    first, last = (words[0].lower(), words[-1].lower()) if words else ("", "")
    for token, side in _SIDES:  # a separate word first: "l_arm", "Arm.L", "lower_back" stays sideless
        if len(words) > 1 and first == token:
            return side, flat[len(token):]
        if len(words) > 1 and last == token:
            return side, flat[: -len(token)]
    for token, side in _SIDES:  # then run together: "lhip", "leftarm", "hipl"
        if flat.startswith(token) and len(flat) > len(token):
            return side, flat[len(token):]
        if flat.endswith(token) and len(flat) > len(token):
            return side, flat[: -len(token)]
    return None, flat


def _sided(name: str, stems) -> str | None:
    """The side of `name` when its stem (side removed) is one of `stems`, else None."""
    side, stem = _side_and_stem(name)
    if side is not None and stem in stems:
        return side
    flat = re.sub(r"[^a-z0-9]", "", name.lower())  # the other reading of e.g. "LArm" / "l_arm"
    for token, side in _SIDES:
        if any(flat in (token + stem, stem + token) for stem in stems):
            return side
    return None


def _depths(parents) -> list[int]:
    depth = []
    for j in range(len(parents)):
        d, k = 0, j
        while parents[k] != -1:
            d, k = d + 1, parents[k]
        depth.append(d)
    return depth


def infer_lateral_pairs(joints, parents, parts) -> dict[str, tuple[int, int] | None]:
    """Guess ``{"hips": (left, right) | None, "shoulders": ...}`` for a rig that does not say.

    1. From ``parts``: a part whose name says left or right and leg (arm) -- ``left_leg``,
       ``l_leg``, ``LeftLeg``, ``leg_r``, ``rightArm``, ... (case-insensitive; several
       parts of one side are pooled). Each side's joint is the part's joint named like a
       hip (shoulder) if it has one (``LeftUpLeg``, ``lhumerus``, ...), else the part's
       joint closest to the root (smallest depth; ties: the lowest index).
    2. Else from joint names alone: ``LeftUpLeg``/``RightUpLeg``, ``lhip``/``rhip``,
       ``left_hip``, ``HipLeft``, ``lfemur``, ``LeftArm``, ``lshoulder``, ``lhumerus``, ...
       (for each side the best stem of ``_JOINT_STEMS``; among equals the joint closest to
       the root).

    A pair is only returned when both sides are found and differ.
    """
    depth = _depths(parents)

    def closest(candidates):
        return min(candidates, key=lambda j: (depth[j], j))

    def named(candidates, stems):
        """side -> best joint among `candidates` named like one of `stems` (best stem, then closest)."""
        found = {}
        for j in candidates:
            for rank, stem in enumerate(stems):
                side = _sided(joints[j], (stem,))
                if side is not None:
                    found[side] = min(found.get(side, (rank, depth[j], j)), (rank, depth[j], j))
                    break
        return {side: best[2] for side, best in found.items()}

    out: dict[str, tuple[int, int] | None] = {}
    for key, limb in _PAIR_LIMB.items():
        pair = None
        limb_parts = {"left": [], "right": []}
        for part_name, indices in parts.items():
            side = _sided(part_name, _LIMB_WORDS[limb])
            if side is not None and indices:
                limb_parts[side].extend(indices)
        if limb_parts["left"] and limb_parts["right"]:
            chosen = {}
            for side, indices in limb_parts.items():
                by_name = named(sorted(set(indices)), _JOINT_STEMS[key])
                chosen[side] = by_name.get(side, closest(indices))
            pair = (chosen["left"], chosen["right"])
        else:
            by_name = named(range(len(joints)), _JOINT_STEMS[key])
            if "left" in by_name and "right" in by_name:
                pair = (by_name["left"], by_name["right"])
        out[key] = pair if pair is not None and pair[0] != pair[1] else None
    return out


def _ntu25() -> Skeleton:
    joints = (
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    )
    # The NTU literature's 1-based (child, parent) bone list; spine shoulder (21) is the root.
    bones_1based = [
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
        (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
    ]
    parents = [-1] * 25
    for c, p in bones_1based:
        parents[c - 1] = p - 1
    return Skeleton(
        name="ntu25",
        joints=joints,
        parents=tuple(parents),
        spine=(0, 1, 2, 3, 20),
        parts={
            "trunk": (0, 1, 2, 3, 20),
            "left_arm": (4, 5, 6, 7, 21, 22),
            "right_arm": (8, 9, 10, 11, 23, 24),
            "left_leg": (12, 13, 14, 15),
            "right_leg": (16, 17, 18, 19),
        },
        left_right=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23), (22, 24)),
        hips=(12, 16),
        shoulders=(4, 8),
        center=1,  # 2s-AGCN centres NTU skeletons on the spine (mid) joint
    )


def _cmu25() -> Skeleton:
    joints = (
        "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
        "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
        "Hips", "Spine", "Spine1", "Neck", "Neck1",
        "LeftArm", "LeftForeArm", "LeftHand", "LeftHandIndex1", "LThumb",
        "RightArm", "RightForeArm", "RightHand", "RightHandIndex1", "RThumb",
    )
    parents = (10, 0, 1, 2, 3, 10, 5, 6, 7, 8, -1, 10, 11, 12, 13, 13, 15, 16, 17, 17, 13, 20, 21, 22, 22)
    return Skeleton(
        name="cmu25",
        joints=joints,
        parents=parents,
        spine=(10, 11, 12, 13, 14),
        parts={
            "trunk": (10, 11, 12, 13, 14),
            "left_arm": (15, 16, 17, 18, 19),
            "right_arm": (20, 21, 22, 23, 24),
            "left_leg": (0, 1, 2, 3, 4),
            "right_leg": (5, 6, 7, 8, 9),
        },
        left_right=((0, 5), (1, 6), (2, 7), (3, 8), (4, 9), (15, 20), (16, 21), (17, 22), (18, 23), (19, 24)),
        hips=(1, 6),  # LeftUpLeg/RightUpLeg: the hip joints proper sit at the root in CMU rigs
        shoulders=(15, 20),
    )


BUILTIN = {"ntu25": _ntu25(), "cmu25": _cmu25()}


def get_skeleton(spec) -> Skeleton:
    """A built-in name (`ntu25`, `cmu25`), a path to a JSON file, a dict, or a Skeleton."""
    if isinstance(spec, Skeleton):
        return spec
    if isinstance(spec, dict):
        return Skeleton.from_dict(spec)
    spec = str(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.exists():
            raise SkeletonError(f"{path}: skeleton file not found")
        return Skeleton.from_json(path.read_text(encoding="utf-8"), source=str(path))
    raise SkeletonError(f"unknown skeleton {spec!r}: use one of {sorted(BUILTIN)} or a path to a JSON file")
