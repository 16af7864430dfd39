"""Procedural labelled motions on any skeleton, for the demo and fast tests.

Not a substitute for real data: it exists so that the whole pipeline (import, training,
attacks, studies) can run in seconds without a dataset, and so that tests can make
motions on a skeleton nobody captured (a user's JSON rig).

How a motion is made
--------------------
1. A rest pose is built from the skeleton as data. The tree is re-rooted at the pelvis
   (the trunk joint the legs hang from), so that "away from the pelvis" is "up" for every
   trunk bone whatever joint the rig calls its root. Limb bones get their direction from
   their place in the limb's main chain: arms = clavicle (sideways), upper arm, forearm,
   hand (down); legs = hip offsets (sideways, down), thigh, shin (down), foot (forward);
   side branches (thumbs, toes) point forward. Lengths give a person about 1.7 m tall
   facing +z with the left side at +x, and every performer scales them (height, arm,
   leg, trunk and width factors), so performers differ in proportions.
2. Each action class drives a few joint rotations over time (shoulders, elbows, hips,
   knees, torso), with per-clip style noise: amplitude, speed, phase, a static posture
   offset, facing and position on the floor.
3. Forward kinematics turns rotations into positions, so bone lengths are constant
   within a clip; the lowest joint is kept on the floor (y = 0), a jump adds flight
   height, and small Gaussian sensor noise is added last.

Everything is vectorised over clips and frames (the only loop is over joints in tree
order) and deterministic per seed: each class and each performer has its own random
stream, so one class's clips do not depend on how many classes were asked for.

Reader interface: the "path" is a spec such as ``classes=6,clips=20,frames=60,seed=0``
(empty or ``default`` for the defaults); `list_files` returns one pseudo-path per class
so an import's progress bar moves, and `read_file` makes that class's clips.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from attacks.core.data.readers.base import RawClip, ReaderError
from attacks.core.data.readers.kinematics import axis_rotation, forward_kinematics

DEFAULTS = {"classes": 6, "clips": 20, "frames": 60, "fps": 30.0, "seed": 0, "performers": 5, "noise": 0.003}
_INT_KEYS = ("classes", "clips", "frames", "seed", "performers")
_LIMBS = ("left_arm", "right_arm", "left_leg", "right_leg")

# Rest-pose lengths (metres) for a 1.7 m person; totals are split over the bones of a role.
_LENGTHS = {"torso": 0.50, "head": 0.25, "trunk_other": 0.08,
            "clavicle": 0.17, "upper_arm": 0.29, "forearm": 0.26, "hand": 0.10, "arm_branch": 0.05,
            "hip": 0.09, "thigh": 0.44, "shin": 0.42, "foot": 0.15, "leg_branch": 0.05}


# ---- reader interface ------------------------------------------------------------------

def list_files(path) -> list[Path]:
    """One pseudo-path per class: ``synthetic/<canonical spec>/class<k>``."""
    spec = parse_spec(path)
    canonical = _format_spec(spec)
    return [Path("synthetic") / canonical / f"class{k}" for k in range(spec["classes"])]


def read_file(path, skeleton, **options) -> list[RawClip]:
    """The clips of one pseudo-path (one class), or of a whole spec when no class is named."""
    path = Path(path)
    parts = path.parts
    class_ids = None
    if parts and parts[-1].startswith("class") and parts[-1][5:].isdigit():
        class_ids = [int(parts[-1][5:])]
        parts = parts[:-1]
    spec_text = parts[-1] if parts and parts[-1] != "synthetic" else ""
    spec = parse_spec(spec_text, source=path)
    for key in DEFAULTS:  # reader options may override the spec (import --reader-option)
        if key in options:
            spec[key] = _coerce(key, options[key], path)
    _validate(spec, path)
    if class_ids is None:
        class_ids = list(range(spec["classes"]))
    elif class_ids[0] >= spec["classes"]:
        raise ReaderError(path, f"class {class_ids[0]} is outside the {spec['classes']} classes of this spec")
    try:
        return [clip for k in class_ids for clip in _generate_class(
            skeleton, k, spec["clips"], spec["frames"], spec["fps"], spec["seed"], spec["performers"],
            spec["noise"], source=str(Path("synthetic") / _format_spec(spec) / f"class{k}"))]
    except ValueError as e:
        raise ReaderError(path, str(e)) from None


def parse_spec(text, source=None) -> dict:
    """``"classes=6,clips=20"`` -> a full spec dict with defaults; ``""``/``"default"`` -> defaults."""
    source = source if source is not None else text
    spec = dict(DEFAULTS)
    text = str(text).strip()
    if text.startswith("synthetic/"):
        text = text.split("/", 1)[1]
    if text in ("", "default", "synthetic"):
        return spec
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in DEFAULTS:
            raise ReaderError(source, f"bad synthetic spec item {item!r}: "
                                      f"use key=value with keys {', '.join(DEFAULTS)}")
        spec[key] = _coerce(key, value, source)
    _validate(spec, source)
    return spec


# ---- generator -------------------------------------------------------------------------

def generate(skeleton, num_classes=6, clips_per_class=20, num_frames=60, fps=30, seed=0,
             num_performers=5, noise=0.003) -> list[RawClip]:
    """``num_classes * clips_per_class`` labelled clips (M=1) in class order."""
    if not 1 <= num_classes <= len(ACTIONS):
        raise ValueError(f"num_classes must be 1..{len(ACTIONS)}, got {num_classes}")
    spec = {"classes": num_classes, "clips": clips_per_class, "frames": num_frames, "fps": float(fps),
            "seed": seed, "performers": num_performers, "noise": noise}
    _validate(spec, "generate")
    base = Path("synthetic") / _format_spec(spec)
    return [clip for k in range(num_classes) for clip in _generate_class(
        skeleton, k, clips_per_class, num_frames, float(fps), seed, num_performers, noise,
        source=str(base / f"class{k}"))]


def rest_pose(skeleton) -> np.ndarray:
    """(V, 3) rest positions of the average performer: standing, facing +z, feet on y = 0."""
    rig = _Rig(skeleton)
    pos = rig.forward(np.ones((1, skeleton.num_joints)), {}, np.zeros((1, 1)))[0, 0]
    pos[:, 1] -= pos[:, 1].min()
    return pos


def _generate_class(skeleton, class_id, clips, frames, fps, seed, performers, noise, source):
    rig = _Rig(skeleton)
    name, action = ACTIONS[class_id]
    rng = np.random.default_rng([seed, 1, class_id])
    performer = np.arange(clips) % performers
    scale = np.stack([_performer_scale(rig, seed, p) for p in range(performers)])[performer]  # (N, V)
    t = np.arange(frames) / fps
    style = {
        "amp": rng.uniform(0.8, 1.2, (clips, 1)),
        "speed": rng.uniform(0.8, 1.25, (clips, 1)),
        "phase": rng.uniform(0, 2 * np.pi, (clips, 1)),
    }
    # Phase of each clip's cycle over time, (N, T): the frequency is the action's own.
    style["clock"] = lambda hz: 2 * np.pi * hz * style["speed"] * t[None] + style["phase"]
    angles = action(style, clips, frames)
    rotations = _posture_noise(rig, rng, clips, frames)
    for (role, axis), value in angles.items():
        if role == "lift":
            continue
        rot = axis_rotation(value, axis)
        for joint in rig.role_joints.get(role, []):
            rotations[joint] = rotations[joint] @ rot if joint in rotations else rot
    yaw = rng.uniform(-np.pi / 6, np.pi / 6, (clips, 1)) * np.ones((1, frames))
    pos = rig.forward(scale, rotations, yaw)  # (N, T, V, 3)
    pos[..., 1] -= pos[..., 1].min(axis=2, keepdims=True)  # lowest joint on the floor
    lift = angles.get(("lift", None))
    if lift is not None:
        pos[..., 1] += lift[..., None]
    pos[..., 0] += rng.uniform(-0.5, 0.5, (clips, 1, 1))
    pos[..., 2] += rng.uniform(-0.5, 0.5, (clips, 1, 1))
    pos += rng.normal(0.0, noise, pos.shape)
    return [RawClip(motion=pos[i][None], fps=fps, label=name, source=f"{source}#clip{i}",
                    meta={"class_id": class_id, "performer": int(performer[i]), "clip": i, "seed": seed})
            for i in range(clips)]


def _performer_scale(rig, seed, performer):
    """(V,) bone-length factors of one performer: overall height times per-region factors."""
    rng = np.random.default_rng([seed, 2, performer])
    height = rng.uniform(0.88, 1.12)
    region = {r: np.clip(rng.normal(1.0, 0.06), 0.85, 1.15) for r in ("arm", "leg", "trunk", "width")}
    return height * np.array([region[rig.region[j]] for j in range(rig.num_joints)])


def _posture_noise(rig, rng, clips, frames):
    """Small static per-clip offsets at shoulders, elbows, hips and knees (style, not action)."""
    rotations = {}
    for role in ("upper_arm", "forearm", "thigh", "shin"):
        for joint in rig.role_joints.get(role, []):
            angle = rng.normal(0.0, np.radians(5.0), (clips, 1)) * np.ones((1, frames))
            rotations[joint] = axis_rotation(angle, "x")
    return rotations


# ---- action classes ------------------------------------------------------------------
# Each returns {(role, axis): angle (N, T) radians}; roles are prefixed l_/r_ for one side.
# Axes in the body frame: x lateral (+x = left), y up, z forward. Sign conventions:
# R_x(-a) swings a hanging limb forward; R_z(+a) swings a hanging limb towards +x (left);
# R_x(+a) tilts the torso forward; R_z(+a) tilts the torso towards -x (right).

def _smooth_bump(clock):
    """0..1..0 once per cycle."""
    return 0.5 * (1 - np.cos(clock))


def _wave(side):
    s = 1.0 if side == "l" else -1.0

    def action(st, n, t):
        c = st["clock"](1.2)
        return {(f"{side}_upper_arm", "z"): s * np.radians(110) * np.ones_like(c) + s * np.radians(8) * np.sin(c),
                (f"{side}_forearm", "z"): s * np.radians(60) * np.ones_like(c)
                + s * np.radians(35) * st["amp"] * np.sin(2 * c)}
    return action


def _squat(st, n, t):
    a = np.radians(75) * st["amp"] * _smooth_bump(st["clock"](0.6))
    return {("thigh", "x"): -a, ("shin", "x"): 1.6 * a, ("foot", "x"): -0.6 * a,
            ("torso", "x"): 0.5 * a, ("upper_arm", "x"): -1.1 * a}


def _jump(st, n, t):
    c = st["clock"](1.2)
    air = np.maximum(np.sin(c), 0.0)
    crouch = np.maximum(-np.sin(c), 0.0)
    k = np.radians(45) * st["amp"] * crouch
    return {("lift", None): 0.25 * st["amp"] * air ** 1.5,
            ("thigh", "x"): -k, ("shin", "x"): 2 * k, ("foot", "x"): -k, ("torso", "x"): 0.4 * k,
            ("upper_arm", "x"): -np.radians(150) * air * st["amp"] + np.radians(30) * crouch}


def _walk(st, n, t):
    c = st["clock"](1.0)
    left, right = np.maximum(np.sin(c), 0.0), np.maximum(-np.sin(c), 0.0)
    a = np.radians(45) * st["amp"]
    swing = np.radians(25) * st["amp"] * np.sin(c)
    return {("l_thigh", "x"): -a * left, ("l_shin", "x"): 1.8 * a * left,
            ("r_thigh", "x"): -a * right, ("r_shin", "x"): 1.8 * a * right,
            ("l_upper_arm", "x"): swing, ("r_upper_arm", "x"): -swing,
            ("forearm", "x"): -np.radians(20) * np.ones_like(c)}


def _raise_arms(st, n, t):
    a = np.radians(150) * st["amp"].clip(max=1.1) * _smooth_bump(st["clock"](0.5))
    return {("l_upper_arm", "z"): a, ("r_upper_arm", "z"): -a}


def _bow(st, n, t):
    a = np.radians(65) * st["amp"] * _smooth_bump(st["clock"](0.45))
    return {("torso", "x"): a, ("neck", "x"): 0.3 * a}


def _kick(st, n, t):
    c = st["clock"](0.8)
    lift = _smooth_bump(c) ** 2
    return {("r_thigh", "x"): -np.radians(75) * st["amp"] * lift,
            ("r_shin", "x"): np.radians(70) * (1 - lift) * _smooth_bump(c) * 2,
            ("l_upper_arm", "z"): np.radians(25) * lift, ("r_upper_arm", "z"): -np.radians(25) * lift}


def _punch(st, n, t):
    c = st["clock"](1.0)
    left, right = np.maximum(np.sin(c), 0.0), np.maximum(-np.sin(c), 0.0)
    guard = np.radians(110)
    return {("l_upper_arm", "x"): -np.radians(45) - np.radians(40) * left * st["amp"],
            ("l_forearm", "x"): -guard * (1 - left),
            ("r_upper_arm", "x"): -np.radians(45) - np.radians(40) * right * st["amp"],
            ("r_forearm", "x"): -guard * (1 - right)}


def _side_bend(st, n, t):
    a = np.radians(30) * st["amp"] * np.sin(st["clock"](0.5))
    return {("torso", "z"): a, ("l_upper_arm", "z"): np.radians(10) * np.ones_like(a),
            ("r_upper_arm", "z"): -np.radians(10) * np.ones_like(a)}


ACTIONS = [
    ("wave right arm", _wave("r")),
    ("wave left arm", _wave("l")),
    ("squat", _squat),
    ("jump", _jump),
    ("walk in place", _walk),
    ("raise both arms", _raise_arms),
    ("bow", _bow),
    ("kick right leg", _kick),
    ("punch", _punch),
    ("side bend", _side_bend),
]


# ---- the rig: rest offsets, roles, forward kinematics --------------------------------

class _Rig:
    """A skeleton re-rooted at the pelvis, with a rest offset and a role per joint.

    Joint ``j``'s rotation turns the bone from its (re-rooted) parent to ``j`` and every
    bone below it about the parent: ``G_j = G_parent @ R_j``, ``p_j = p_parent + G_j @ o_j``.
    """

    def __init__(self, skeleton):
        self.skeleton = skeleton
        self.num_joints = n = skeleton.num_joints
        missing = [p for p in _LIMBS if not skeleton.parts.get(p)]
        if missing:
            raise ValueError(f"synthetic motions need the skeleton's limb parts; {skeleton.name!r} lacks {missing}")
        neighbours = [[] for _ in range(n)]
        for c, p in skeleton.bones:
            neighbours[c].append(p)
            neighbours[p].append(c)
        self.limb_of = {j: part for part in _LIMBS for j in skeleton.parts[part]}
        self.pelvis = self._attachment(skeleton.parts["left_leg"], neighbours)
        chest = self._attachment(skeleton.parts["left_arm"], neighbours)
        # Re-root at the pelvis: parents found breadth-first.
        self.parent = np.full(n, -1)
        seen, queue = {self.pelvis}, deque([self.pelvis])
        while queue:
            j = queue.popleft()
            for k in sorted(neighbours[j]):
                if k not in seen:
                    seen.add(k)
                    self.parent[k] = j
                    queue.append(k)
        self.children = [[k for k in range(n) if self.parent[k] == j] for j in range(n)]
        self.offset = np.zeros((n, 3))
        self.region = ["trunk"] * n
        self.role_joints: dict[str, list[int]] = {}
        self._trunk(chest)
        for part in _LIMBS:
            self._limb(part)

    def _attachment(self, part_joints, neighbours):
        part = set(part_joints)
        outside = sorted({k for j in part for k in neighbours[j] if k not in part})
        if not outside:
            raise ValueError(f"skeleton {self.skeleton.name!r}: a limb part is not attached to the body")
        return outside[0]

    def _add_role(self, role, joint, side=None):
        self.role_joints.setdefault(role, []).append(joint)
        if side:
            self.role_joints.setdefault(f"{side}_{role}", []).append(joint)

    def _trunk(self, chest):
        up = np.array([0.0, 1.0, 0.0])
        path, j = [], chest  # pelvis -> chest, following re-rooted parents back from the chest
        while j != self.pelvis and j != -1:
            path.append(j)
            j = self.parent[j]
        path = path[::-1]
        trunk = [j for j in range(self.num_joints) if j not in self.limb_of and j != self.pelvis]
        head = [j for j in trunk if j not in path and self._below(j, chest)]
        head_depth = max((self._depth_below(j, chest) for j in head), default=1)
        for j in trunk:
            if j in path:
                length = _LENGTHS["torso"] / len(path)
            elif j in head:
                length = _LENGTHS["head"] / head_depth
            else:
                length = _LENGTHS["trunk_other"]
            self.offset[j] = up * length
        # The torso rotation turns every upper-body branch about the pelvis.
        for j in self.children[self.pelvis]:
            if j not in self.limb_of:
                self._add_role("torso", j)
        first_head = [j for j in self.children[chest] if j in head]
        for j in first_head:
            self._add_role("neck", j)

    def _below(self, j, ancestor):
        while j != -1:
            if j == ancestor:
                return True
            j = self.parent[j]
        return False

    def _depth_below(self, j, ancestor):
        d = 0
        while j != ancestor:
            d, j = d + 1, self.parent[j]
        return d

    def _limb(self, part):
        joints = set(self.skeleton.parts[part])
        side = "l" if part.startswith("left") else "r"
        s = 1.0 if side == "l" else -1.0
        arm = part.endswith("arm")
        starts = sorted(j for j in joints if self.parent[j] not in joints)
        chain = [starts[0]]
        while True:
            inside = [k for k in self.children[chain[-1]] if k in joints]
            if not inside:
                break
            chain.append(max(inside, key=lambda k: (self._height(k, joints), -k)))
        roles = _arm_roles(len(chain)) if arm else _leg_roles(len(chain))
        counts = {r: roles.count(r) for r in roles}
        directions = {
            "clavicle": (s, -0.1, 0.0), "upper_arm": (0.08 * s, -1.0, 0.0), "forearm": (0.0, -1.0, 0.05),
            "hand": (0.0, -1.0, 0.0), "hip": (s, -0.4, 0.0), "thigh": (0.0, -1.0, 0.0),
            "shin": (0.0, -1.0, 0.0), "foot": (0.0, -0.35, 1.0),
        }
        for j, role in zip(chain, roles):
            self.offset[j] = _unit(directions[role]) * _LENGTHS[role] / counts[role]
            self.region[j] = "width" if role in ("clavicle", "hip") else ("arm" if arm else "leg")
            self._add_role(role, j, side)
        for j in joints.difference(chain):
            branch = "arm_branch" if arm else "leg_branch"
            self.offset[j] = _unit((0.0, -0.6, 0.8) if arm else (0.0, -0.2, 1.0)) * _LENGTHS[branch]
            self.region[j] = "arm" if arm else "leg"

    def _height(self, j, joints):
        inside = [k for k in self.children[j] if k in joints]
        return 1 + max((self._height(k, joints) for k in inside), default=0)

    def forward(self, scale, rotations, yaw):
        """Positions (N, T, V, 3) from bone scales (N, V), rotations {joint: (N, T, 3, 3)}, yaw (N, T)."""
        n, t = yaw.shape[0], yaw.shape[1]
        for r in rotations.values():
            n, t = max(n, r.shape[0]), max(t, r.shape[1])
        local = np.broadcast_to(np.eye(3), (n, t, self.num_joints, 3, 3)).copy()
        for j, r in rotations.items():
            local[:, :, j] = r
        local[:, :, self.pelvis] = axis_rotation(np.broadcast_to(yaw, (n, t)), "y")
        bones = self.offset[None, None] * scale[:, None, :, None]  # (N, 1, V, 3)
        return forward_kinematics(self.parent, bones, local, turns_own_bone=True)


def _arm_roles(n):
    if n >= 3:
        return ["clavicle", "upper_arm", "forearm"] + ["hand"] * (n - 3)
    return ["upper_arm", "forearm"][:n]


def _leg_roles(n):
    if n >= 4:
        return ["hip"] * (n - 3) + ["thigh", "shin", "foot"]
    return (["hip", "thigh", "shin"] if n == 3 else ["thigh", "shin"])[-n:]


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


# ---- spec parsing --------------------------------------------------------------------

def _coerce(key, value, source):
    try:
        return int(value) if key in _INT_KEYS else float(value)
    except (TypeError, ValueError):
        raise ReaderError(source, f"synthetic spec: {key}={value!r} is not a number") from None


def _validate(spec, source):
    limits = {"classes": (1, len(ACTIONS)), "clips": (1, 100000), "frames": (2, 100000), "performers": (1, 100000)}
    for key, (low, high) in limits.items():
        if not low <= spec[key] <= high:
            raise ReaderError(source, f"synthetic spec: {key}={spec[key]} must be in {low}..{high}")
    if spec["fps"] <= 0 or spec["noise"] < 0:
        raise ReaderError(source, "synthetic spec: fps must be > 0 and noise >= 0")


def _format_spec(spec):
    return ",".join(f"{k}={spec[k]:g}" if isinstance(spec[k], float) else f"{k}={spec[k]}" for k in DEFAULTS)
