"""What the BVH and ASF/AMC readers share: rotations, forward kinematics, joint names, units.

The rotation builder (`axis_rotation`) and the forward kinematics are also the synthetic
reader's (it poses a rig too) and `preprocessing`'s (it turns bodies about the vertical):
one definition of each, so a sign convention cannot drift between copies.

Both formats store joint *angles* on a rig; the project works on joint *positions* in
metres, y up, on a target skeleton (usually `cmu25`). The path is the same for both:
Euler angles -> local rotation matrices -> forward kinematics on the file's full rig ->
pick the target's joints by name (through the alias table below) -> scale to metres.

Joint names. CMU's BVH exports and HDM05's BVH/ASF files describe the same 31-joint rig
with two vocabularies. A BVH joint sits at the *start* of the ASF bone of the same name
(the BVH offset of `lfemur` is the vector of the ASF bone `lhipjoint`), so the
correspondence is one to one:

    CMU BVH           ASF / HDM05          CMU BVH            ASF / HDM05
    Hips              hip, root            LeftShoulder       lclavicle
    LHipJoint         lhipjoint            LeftArm            lhumerus
    LeftUpLeg         lfemur               LeftForeArm        lradius
    LeftLeg           ltibia               LeftHand           lwrist
    LeftFoot          lfoot                LeftFingerBase     lhand
    LeftToeBase       ltoes                LeftHandIndex1     lfingers
    LowerBack         lowerback            LThumb             lthumb
    Spine             upperback            (and Right*/R*/r* likewise)
    Spine1            thorax
    Neck              lowerneck
    Neck1             upperneck
    Head              head

Note the trap: ASF `lhand` is the CMU `LeftFingerBase`, and CMU `LeftHand` is ASF
`lwrist`. `cmu25` keeps 25 of the 31 joints; it drops LowerBack (it coincides with Hips),
LeftShoulder/RightShoulder (they coincide with Spine1/Neck), LeftFingerBase/
RightFingerBase (they coincide with the hands) and Head. Positions are computed on the
full rig first, so dropping joints never changes where the kept ones are.

Units. BVH declares none. Rigs derived from ASF/AMC (CMU, HDM05) are in ASF length units:
an ASF header `length 0.45` means one unit is 1/0.45 inch. Other BVH files are most often
in centimetres. The readers detect the rig, accept an explicit `units=` option, and check
the result against a plausible human height.

HDM05 file names (`HDM_<actor>_<class>_<take>_<fps>` for cut clips,
`HDM_<actor>_<scene>_<take>_<fps>` for uncut scenes) are parsed here too, because HDM05
ships the same takes as BVH and as ASF/AMC.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attacks.core.data.readers.base import ReaderError

INCH = 0.0254
ASF_LENGTH_CMU = 0.45  # the `length` of the CMU and HDM05 ASF headers
UNIT_NAMES = {"asf": INCH / ASF_LENGTH_CMU, "cm": 0.01, "mm": 0.001, "m": 1.0, "inch": INCH}
HEIGHT_RANGE_M = (1.0, 2.3)  # a standing adult's rig, rest pose, any plausible unit choice

# Canonical (CMU BVH) name -> other spellings of the same joint. Matching is case-insensitive.
JOINT_ALIASES: dict[str, tuple[str, ...]] = {
    "Hips": ("hip", "root"),
    "LowerBack": ("lowerback",),
    "Spine": ("upperback",),
    "Spine1": ("thorax",),
    "Neck": ("lowerneck",),
    "Neck1": ("upperneck",),
    "Head": ("head",),
}
for _side, _s in (("Left", "l"), ("Right", "r")):
    JOINT_ALIASES.update({
        f"{_s.upper()}HipJoint": (f"{_s}hipjoint",),
        f"{_side}UpLeg": (f"{_s}femur",),
        f"{_side}Leg": (f"{_s}tibia",),
        f"{_side}Foot": (f"{_s}foot",),
        f"{_side}ToeBase": (f"{_s}toes",),
        f"{_side}Shoulder": (f"{_s}clavicle",),
        f"{_side}Arm": (f"{_s}humerus",),
        f"{_side}ForeArm": (f"{_s}radius",),
        f"{_side}Hand": (f"{_s}wrist",),
        f"{_side}FingerBase": (f"{_s}hand",),
        f"{_side}HandIndex1": (f"{_s}fingers",),
        f"{_s.upper()}Thumb": (f"{_s}thumb",),
    })
# lower-case spelling -> canonical name
_CANONICAL = {alias.lower(): canon for canon, aliases in JOINT_ALIASES.items() for alias in (canon, *aliases)}

END_SITE_SUFFIX = "_end"  # end sites are named "<parent>_end" by both readers


# ---- rig ------------------------------------------------------------------------------
@dataclass
class Rig:
    """A joint hierarchy as read from a file (lengths in file units)."""

    names: list[str]
    parents: np.ndarray  # (J,), -1 for the root; every parent precedes its children
    offsets: np.ndarray  # (J, 3): joint position relative to its parent in the rest pose
    end_site: np.ndarray  # (J,) bool: end sites carry no rotation and map to no alias
    line: int | None = None  # where the hierarchy starts in the file, for error messages

    @property
    def num_joints(self) -> int:
        return len(self.names)


# ---- rotations -----------------------------------------------------------------------------
def euler_to_matrix(angles, axes: str, degrees: bool = True, intrinsic: bool = True) -> np.ndarray:
    """Rotation matrices from Euler angles in any axis order, vectorised over leading dimensions.

    angles: (..., k) with k = len(axes); axes: letters from "xyz" (any case, repeats
    allowed), angle i belonging to axis i.
    intrinsic=True: R = R_{axes[0]}(a_0) @ R_{axes[1]}(a_1) @ ..., the BVH convention
    (channels `Zrotation Yrotation Xrotation` mean Rz @ Ry @ Rx).
    intrinsic=False: the rotations are applied in the listed order about fixed axes,
    R = ... @ R_{axes[1]}(a_1) @ R_{axes[0]}(a_0), the Acclaim convention (dof `rx ry rz`
    and axis order `XYZ` mean Rz @ Ry @ Rx).
    Returns (..., 3, 3) float64.
    """
    if not intrinsic:
        return euler_to_matrix(np.asarray(angles)[..., ::-1], axes[::-1], degrees=degrees, intrinsic=True)
    angles = np.asarray(angles, dtype=np.float64)
    axes = axes.lower()
    if angles.shape[-1] != len(axes):
        raise ValueError(f"{angles.shape[-1]} angles for axis order {axes!r}")
    if degrees:
        angles = np.deg2rad(angles)
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(axes):
        out = out @ axis_rotation(angles[..., k], axis)
    return out


def axis_rotation(angle, axis: str) -> np.ndarray:
    """Right-handed rotations by `angle` radians about the x, y or z axis: (...) -> (..., 3, 3) float64."""
    theta = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(theta), np.sin(theta)
    one, zero = np.ones_like(theta), np.zeros_like(theta)
    if axis == "x":
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == "y":
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    elif axis == "z":
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    else:
        raise ValueError(f"unknown rotation axis {axis!r}")
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


# ---- forward kinematics -----------------------------------------------------------------
def forward_kinematics(parents, offsets, rotations, root_translation=None, turns_own_bone: bool = False) -> np.ndarray:
    """World positions of every joint of a hierarchy, for all frames (and clips) at once.

    parents: (J,) parent index per joint, -1 for a root. rotations: (..., J, 3, 3) local
    rotations, the leading dimensions being frames (T) or clips and frames (N, T).
    offsets: broadcastable to (..., J, 3), each joint's position relative to its parent in
    the parent's frame (for a root: its rest position). root_translation: (..., 3) added
    to every root's offset, or None.
    Which bones a rotation turns: BVH and ASF attach a joint's rotation to the joint, so
    it turns its *children's* offsets (`turns_own_bone=False`); the synthetic rig attaches
    it to the bone *ending* at the joint, so it turns the joint's own offset and
    everything below (`turns_own_bone=True`; a root's rotation then orients the body).
    Returns (..., J, 3). Loops over joints (in an order where parents come first), never
    over frames or clips.
    """
    parents = np.asarray(parents, dtype=np.int64)
    rotations = np.asarray(rotations, dtype=np.float64)
    lead, num_joints = rotations.shape[:-3], rotations.shape[-3]
    if parents.shape != (num_joints,):
        raise ValueError(f"{parents.shape[0]} parents for {num_joints} joints")
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), lead + (num_joints, 3))
    world_rot = np.empty_like(rotations)
    pos = np.empty(lead + (num_joints, 3))
    for j in topological_order(parents):
        p = parents[j]
        if p < 0:
            world_rot[..., j, :, :] = rotations[..., j, :, :]
            pos[..., j, :] = offsets[..., j, :] if root_translation is None else offsets[..., j, :] + root_translation
        else:
            world_rot[..., j, :, :] = world_rot[..., p, :, :] @ rotations[..., j, :, :]
            turn = world_rot[..., j, :, :] if turns_own_bone else world_rot[..., p, :, :]
            pos[..., j, :] = pos[..., p, :] + np.einsum("...ab,...b->...a", turn, offsets[..., j, :])
    return pos


def topological_order(parents) -> list[int]:
    """Joint indices such that every parent comes before its children."""
    parents = [int(p) for p in parents]
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)
    order, stack = [], list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    if len(order) != len(parents):
        raise ValueError("joint hierarchy has a cycle or a parent outside the rig")
    return order


def rest_positions(rig: Rig) -> np.ndarray:
    """(J, 3) positions with every rotation at zero: the cumulative offsets."""
    eye = np.broadcast_to(np.eye(3), (1, rig.num_joints, 3, 3))
    return forward_kinematics(rig.parents, rig.offsets, eye)[0]


# ---- numbers in a text format ------------------------------------------------------------
def parse_numbers(path, tokens, count: int, what: str, lineno: int) -> list[float]:
    """`count` finite floats from a line's tokens, or a ReaderError naming the file, the line and `what`."""
    if len(tokens) != count:
        raise ReaderError(path, f"{what} needs {count} number{'s' if count != 1 else ''}, found {len(tokens)}",
                          line=lineno)
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise ReaderError(path, f"{what} holds a value that is not a number: {' '.join(tokens)!r}",
                          line=lineno) from None
    if not np.all(np.isfinite(values)):
        raise ReaderError(path, f"{what} holds a non-finite value", line=lineno)
    return values


# ---- joint names -------------------------------------------------------------------------
def canonical_joint_name(name: str) -> str | None:
    """The CMU BVH name of a joint spelt in any known vocabulary, or None if unknown."""
    return _CANONICAL.get(name.lower())


def match_joints(rig: Rig, skeleton, path) -> list[int]:
    """Index into the rig of every joint of the target skeleton, by exact name or alias.

    Exact (case-sensitive) names win, then case-insensitive ones, then aliases. A target
    joint with no counterpart raises ReaderError naming the file, the hierarchy's line and
    the joint.
    """
    exact = {n: i for i, n in enumerate(rig.names)}
    folded = {}
    by_canonical = {}
    for i, n in enumerate(rig.names):
        folded.setdefault(n.lower(), i)
        canon = canonical_joint_name(n)
        if canon is not None and not rig.end_site[i]:
            by_canonical.setdefault(canon, i)
    indices = []
    for target in skeleton.joints:
        if target in exact:
            indices.append(exact[target])
        elif target.lower() in folded:
            indices.append(folded[target.lower()])
        elif canonical_joint_name(target) in by_canonical:
            indices.append(by_canonical[canonical_joint_name(target)])
        else:
            known = [canonical_joint_name(target) or target, *JOINT_ALIASES.get(canonical_joint_name(target), ())]
            raise ReaderError(
                path,
                f"skeleton {skeleton.name!r} needs joint {target!r} (also known as {', '.join(sorted(set(known)))}), "
                f"which this rig does not have; its joints are {', '.join(n for n, e in zip(rig.names, rig.end_site) if not e)}",
                line=rig.line,
            )
    return indices


def is_mocap_rig(rig: Rig) -> bool:
    """True when most joint names are CMU BVH or ASF names, i.e. the rig came from ASF/AMC."""
    names = [n for n, e in zip(rig.names, rig.end_site) if not e]
    known = sum(canonical_joint_name(n) is not None for n in names)
    return bool(names) and known >= 0.5 * len(names)


# ---- units and axes ----------------------------------------------------------------------
def metres_per_unit(units, path, default: float) -> float:
    """Resolve a `units=` option ('asf', 'cm', 'mm', 'm', 'inch' or metres per unit)."""
    if units is None:
        return float(default)
    if isinstance(units, str) and units.strip().lower() in UNIT_NAMES:
        return UNIT_NAMES[units.strip().lower()]
    try:
        scale = float(units)
    except (TypeError, ValueError):
        raise ReaderError(path, f"units={units!r}: use one of {', '.join(UNIT_NAMES)} or a number of metres per unit") from None
    if not np.isfinite(scale) or scale <= 0:
        raise ReaderError(path, f"units={units!r}: metres per unit must be a positive number")
    return scale


def vertical_axis(rest: np.ndarray) -> str:
    """'y' or 'z': the up axis of a rig, judged by its rest pose's extent.

    A standing rig (T-pose or A-pose) is tallest along its up axis; arm span can rival
    height, so only y and z compete, and z must win clearly.
    """
    extent = rest.max(axis=0) - rest.min(axis=0)
    return "z" if extent[2] > 1.5 * extent[1] else "y"


def z_up_to_y_up(positions: np.ndarray) -> np.ndarray:
    """Rotate about x by -90 degrees: (x, y, z) -> (x, z, -y), keeping handedness."""
    return np.stack([positions[..., 0], positions[..., 2], -positions[..., 1]], axis=-1)


def check_body_height(height_m: float, path, line=None, units_note: str = "") -> None:
    """Refuse a rig whose standing height is not a person's: the unit guess was wrong."""
    lo, hi = HEIGHT_RANGE_M
    if not (lo <= height_m <= hi):
        raise ReaderError(
            path,
            f"rest-pose body height is {height_m:.3g} m{units_note}, outside the plausible {lo}-{hi} m; "
            f"the length unit is probably wrong: pass --units (asf, cm, mm, m, inch or metres per unit)",
            line=line,
        )


# ---- HDM05 names ---------------------------------------------------------------------------
_HDM05_SCENE = re.compile(r"^HDM_(?P<actor>[A-Za-z]+)_(?P<scene>\d{2}-\d{2})_(?P<take>\d+)_(?P<fps>\d+)$")
_HDM05_CUT = re.compile(r"^HDM_(?P<actor>[A-Za-z]+)_(?P<cls>[A-Za-z][A-Za-z0-9]*)_(?P<take>\d+)_(?P<fps>\d+)$")


def hdm05_name_fields(stem: str) -> dict | None:
    """Label, actor, take and fps from an HDM05 file stem; None if it is not one.

    `HDM_bd_cartwheelLHandStart1Reps_001_120` is a cut clip of class
    `cartwheelLHandStart1Reps`; `HDM_dg_06-03_03_120` is the uncut scene `06-03`.
    """
    m = _HDM05_SCENE.match(stem)
    if m:
        return {"label": m["scene"], "actor": m["actor"], "scene": m["scene"], "take": int(m["take"]),
                "fps": float(m["fps"])}
    m = _HDM05_CUT.match(stem)
    if m:
        return {"label": m["cls"], "actor": m["actor"], "take": int(m["take"]), "fps": float(m["fps"])}
    return None


def read_class_groups(path) -> dict[str, str]:
    """HDM05 class -> group table: a tab-separated file with a header line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ReaderError(path, f"cannot read the class-group table ({e.strerror})") from None
    groups = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise ReaderError(path, "expected 'class<TAB>group'", line=lineno)
        groups[fields[0].strip()] = fields[1].strip()
    return groups


def clip_naming(path: Path, label=None, class_groups=None) -> tuple[str, dict, float | None]:
    """(label, meta, fps from the name) for a mocap file, from options or HDM05 naming."""
    fields = hdm05_name_fields(path.stem)
    meta: dict = {}
    name_fps = None
    if fields is not None:
        name_fps = fields.pop("fps")
        name_label = fields.pop("label")
        meta.update(fields)
    else:
        name_label = path.stem
    label = str(label) if label is not None else name_label
    if class_groups is not None:
        group = read_class_groups(class_groups).get(label)
        if group is not None:
            meta["group"] = group
    return label, meta, name_fps
