"""Acclaim ASF/AMC motion capture (CMU, HDM05) as joint positions on a skeleton.

The ASF file describes the skeleton (bone directions and lengths in the global rest
frame, each bone's local axes, its degrees of freedom); an AMC file holds per-frame
values for those degrees of freedom. The Acclaim convention, in column-vector form:

    C_b = rotation from the bone's `axis` angles (listed order applied first: XYZ -> Rz Ry Rx)
    M_b = rotation from the frame's dof values (same rule: rx ry rz -> Rz Ry Rx)
    W_b = W_parent @ C_b @ M_b @ C_b^-1            (the root: C_root @ M_root @ C_root^-1)
    end_b = start_b + W_b @ (direction_b * length_b),  start_b = end_parent

Positions are reported per bone *start*, under the bone's name, which is where the BVH
joint of the same name sits; `root` is the root position and leaf bones add `<bone>_end`.
The alias table in `kinematics` then maps these names onto `cmu25` (lfemur -> LeftUpLeg).
Lengths are in ASF units (`:units length L` means one unit is 1/L inch) unless `units=`
says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attacks.core.skeletons import get_skeleton
from attacks.core.data.readers.base import RawClip, ReaderError, files_with_suffix
from attacks.core.data.readers.kinematics import (
    END_SITE_SUFFIX, INCH, Rig, check_body_height, clip_naming, euler_to_matrix, forward_kinematics,
    match_joints, metres_per_unit, parse_numbers, rest_positions, vertical_axis, z_up_to_y_up,
)

DEFAULT_FPS = 120.0  # the Acclaim/Vicon rate of CMU and HDM05 when the file name does not say


def list_files(path) -> list[Path]:
    """An .amc file, or every .amc file below a folder (recursive, sorted)."""
    return files_with_suffix(path, ".amc")


def read_file(path, skeleton="cmu25", asf=None, units=None, label=None, class_groups=None, fps=None,
              up=None, **options) -> list[RawClip]:
    """One clip: motion (1, T, V, 3) float32 in metres, y up, on `skeleton`.

    asf: the skeleton file (default: the .asf next to the AMC whose name is a prefix of
    the AMC's, e.g. HDM_dg.asf for HDM_dg_06-03_03_120.amc). units: overrides the ASF
    header ('asf', 'cm', 'mm', 'm', 'inch' or metres per unit). label: overrides the label
    from the HDM05 name (scene id for uncut scenes, class for cut clips, else the stem).
    class_groups: HDM05 class -> group table. fps: overrides the rate in the name (`_120`).
    up: 'y' or 'z' (default: judged from the rest pose).
    """
    path = Path(path)
    skeleton = get_skeleton(skeleton)
    asf_path = Path(asf) if asf is not None else find_asf(path)
    acclaim = parse_asf(asf_path)
    indices = match_joints(acclaim.rig, skeleton, asf_path)
    frames, first_frame, degrees = parse_amc(path, acclaim)

    scale = metres_per_unit(units, path, default=INCH / acclaim.length_unit)
    rest = rest_positions(acclaim.rig)
    up_axis = (up or vertical_axis(rest)).lower()
    if up_axis not in ("y", "z"):
        raise ReaderError(path, f"up={up!r}: use 'y' or 'z'")
    check_body_height(float(np.ptp(rest[:, "xyz".index(up_axis)])) * scale, asf_path, line=acclaim.rig.line,
                      units_note=f" at {scale:g} m per file unit")

    rotations, translation = local_transforms(acclaim, frames, degrees)
    positions = forward_kinematics(acclaim.rig.parents, acclaim.rig.offsets, rotations, translation) * scale
    positions = positions[:, indices]
    if up_axis == "z":
        positions = z_up_to_y_up(positions)

    clip_label, meta, name_fps = clip_naming(path, label=label, class_groups=class_groups)
    meta.update({"asf": asf_path.name, "metres_per_unit": scale})
    num_frames = positions.shape[0]
    return [RawClip(
        motion=positions[None].astype(np.float32),
        fps=float(fps) if fps is not None else (name_fps or DEFAULT_FPS),
        label=clip_label,
        source=path.name,
        frame_range=(first_frame - 1, first_frame - 1 + num_frames),
        meta=meta,
    )]


def find_asf(amc_path) -> Path:
    """The ASF beside an AMC: the longest `<stem>.asf` with `<stem>_` starting the AMC's name,
    else the only .asf in the folder."""
    amc_path = Path(amc_path)
    candidates = sorted(f for f in amc_path.parent.iterdir() if f.suffix.lower() == ".asf")
    prefixed = [f for f in candidates if amc_path.stem.lower().startswith(f.stem.lower() + "_")]
    if prefixed:
        return max(prefixed, key=lambda f: len(f.stem))
    if len(candidates) == 1:
        return candidates[0]
    found = f"found {', '.join(f.name for f in candidates)}" if candidates else "there is none"
    raise ReaderError(amc_path, f"cannot tell which .asf skeleton belongs to this file ({found}); pass asf=<path>")


# ---- ASF ---------------------------------------------------------------------------------------
@dataclass
class Bone:
    name: str
    direction: np.ndarray  # (3,) unit vector, global rest frame
    length: float
    axis_angles: np.ndarray  # (3,)
    axis_order: str  # e.g. "xyz": applied first to last
    dofs: tuple[str, ...]  # e.g. ("rx", "ry", "rz")
    line: int


@dataclass
class AcclaimSkeleton:
    rig: Rig  # joints: root, one per bone (its start), one per leaf bone end
    bones: dict[str, Bone]
    root_order: tuple[str, ...]  # e.g. ("tx", "ty", "tz", "rx", "ry", "rz")
    root_axis: str
    root_orientation: np.ndarray
    length_unit: float  # the `:units length` value
    degrees: bool


def parse_asf(path) -> AcclaimSkeleton:
    """Parse an ASF file strictly; every problem is a ReaderError with its line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ReaderError(path, f"cannot read the ASF skeleton ({e.strerror})") from None
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    section_line: dict[str, int] = {}
    current = None
    for lineno, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith(":"):
            key, *rest = text.split()
            current = key[1:].lower()
            section_line.setdefault(current, lineno)
            sections.setdefault(current, [])
            if rest:
                sections[current].append((lineno, rest))
            continue
        if current is None:
            raise ReaderError(path, f"expected an ASF ':keyword', found {text[:40]!r} (not an ASF file?)", line=lineno)
        sections[current].append((lineno, text.split()))
    for required in ("root", "bonedata", "hierarchy"):
        if required not in sections:
            raise ReaderError(path, f"no ':{required}' section (not an ASF file, or truncated)")

    length_unit, degrees = 1.0, True
    for lineno, tokens in sections.get("units", []):
        if tokens[0].lower() == "length":
            length_unit = parse_numbers(path, tokens[1:], 1, "'length'", lineno)[0]
            if length_unit <= 0:
                raise ReaderError(path, "':units length' must be positive", line=lineno)
        elif tokens[0].lower() == "angle":
            unit = tokens[1].lower() if len(tokens) > 1 else ""
            if unit not in ("deg", "rad"):
                raise ReaderError(path, f"':units angle' must be deg or rad, found {unit!r}", line=lineno)
            degrees = unit == "deg"

    root_order, root_axis, position, orientation = ("tx", "ty", "tz", "rx", "ry", "rz"), "xyz", np.zeros(3), np.zeros(3)
    for lineno, tokens in sections["root"]:
        key = tokens[0].lower()
        if key == "order":
            root_order = tuple(t.lower() for t in tokens[1:])
            bad = [t for t in root_order if t not in ("tx", "ty", "tz", "rx", "ry", "rz")]
            if bad or len(set(root_order)) != len(root_order):
                raise ReaderError(path, f"root order {' '.join(tokens[1:])!r} is not a set of TX TY TZ RX RY RZ", line=lineno)
        elif key == "axis":
            root_axis = _axis_order(path, tokens[1] if len(tokens) > 1 else "", lineno)
        elif key == "position":
            position = np.asarray(parse_numbers(path, tokens[1:], 3, "'position'", lineno))
        elif key == "orientation":
            orientation = np.asarray(parse_numbers(path, tokens[1:], 3, "'orientation'", lineno))

    bones = _parse_bonedata(path, sections["bonedata"], section_line["bonedata"])
    children = _parse_hierarchy(path, sections["hierarchy"], bones)
    rig = _build_rig(path, bones, children, position, section_line["hierarchy"])
    return AcclaimSkeleton(rig=rig, bones=bones, root_order=root_order, root_axis=root_axis,
                           root_orientation=orientation, length_unit=length_unit, degrees=degrees)


def _parse_bonedata(path, entries, section_lineno) -> dict[str, Bone]:
    bones: dict[str, Bone] = {}
    block = None
    for lineno, tokens in entries:
        key = tokens[0].lower()
        if key == "begin":
            if block is not None:
                raise ReaderError(path, "'begin' inside a bone block (missing 'end'?)", line=lineno)
            block = {"line": lineno}
        elif key == "end":
            if block is None:
                raise ReaderError(path, "'end' without 'begin'", line=lineno)
            missing = [k for k in ("name", "direction", "length", "axis") if k not in block]
            if missing:
                raise ReaderError(path, f"bone block lacks {', '.join(missing)}", line=block["line"])
            if block["name"] in bones or block["name"] == "root":
                raise ReaderError(path, f"bone name {block['name']!r} appears twice", line=block["line"])
            direction = np.asarray(block["direction"])
            norm = np.linalg.norm(direction)
            if block["length"] > 0 and norm == 0:
                raise ReaderError(path, f"bone {block['name']!r} has a zero direction", line=block["line"])
            bones[block["name"]] = Bone(
                name=block["name"], direction=direction / norm if norm > 0 else direction,
                length=block["length"], axis_angles=np.asarray(block["axis"][0]), axis_order=block["axis"][1],
                dofs=block.get("dof", ()), line=block["line"],
            )
            block = None
        elif block is None:
            raise ReaderError(path, f"{tokens[0]!r} outside a bone's begin/end block", line=lineno)
        elif key == "name":
            if len(tokens) != 2:
                raise ReaderError(path, "bone 'name' needs one word", line=lineno)
            block["name"] = tokens[1]
        elif key == "direction":
            block["direction"] = parse_numbers(path, tokens[1:], 3, "'direction'", lineno)
        elif key == "length":
            block["length"] = parse_numbers(path, tokens[1:], 1, "'length'", lineno)[0]
        elif key == "axis":
            if len(tokens) != 5:
                raise ReaderError(path, "bone 'axis' needs three angles and an order such as XYZ", line=lineno)
            block["axis"] = (parse_numbers(path, tokens[1:4], 3, "'axis'", lineno),
                             _axis_order(path, tokens[4], lineno))
        elif key == "dof":
            dofs = tuple(t.lower() for t in tokens[1:])
            bad = [d for d in dofs if d not in ("rx", "ry", "rz")]
            if bad:
                raise ReaderError(path, f"unsupported dof {bad[0]!r} (only rx, ry, rz are read)", line=lineno)
            block["dof"] = dofs
        # id, limits (and their continuation lines), bodymass, cofmass: not needed for positions
    if block is not None:
        raise ReaderError(path, "bone block without 'end' (truncated?)", line=block["line"])
    if not bones:
        raise ReaderError(path, "':bonedata' holds no bones", line=section_lineno)
    return bones


def _parse_hierarchy(path, entries, bones) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    parent_of: dict[str, str] = {}
    for lineno, tokens in entries:
        if tokens[0].lower() in ("begin", "end"):
            continue
        parent, kids = tokens[0], tokens[1:]
        for name in (parent, *kids):
            if name != "root" and name not in bones:
                raise ReaderError(path, f"hierarchy names bone {name!r}, which ':bonedata' does not define", line=lineno)
        for kid in kids:
            if kid in parent_of or kid == "root":
                raise ReaderError(path, f"bone {kid!r} has two parents", line=lineno)
            parent_of[kid] = parent
        children.setdefault(parent, []).extend(kids)
    orphans = [b for b in bones if b not in parent_of]
    if orphans:
        raise ReaderError(path, f"bone {orphans[0]!r} is not attached to the hierarchy", line=bones[orphans[0]].line)
    return children


def _build_rig(path, bones, children, root_position, line) -> Rig:
    names, parents, offsets, end_site = ["root"], [-1], [root_position], [False]
    queue = [("root", 0)]
    while queue:
        name, index = queue.pop(0)
        vector = bones[name].direction * bones[name].length if name != "root" else np.zeros(3)
        kids = children.get(name, [])
        for kid in kids:
            names.append(kid)
            parents.append(index)
            offsets.append(vector)
            end_site.append(False)
            queue.append((kid, len(names) - 1))
        if not kids and name != "root":
            names.append(f"{name}{END_SITE_SUFFIX}")
            parents.append(index)
            offsets.append(vector)
            end_site.append(True)
    unreachable = sorted(set(bones) - set(names))
    if unreachable:
        raise ReaderError(path, f"bone {unreachable[0]!r} is not connected to the root (a cycle in the hierarchy?)",
                          line=line)
    return Rig(names=names, parents=np.asarray(parents), offsets=np.asarray(offsets, dtype=np.float64),
               end_site=np.asarray(end_site), line=line)


def _axis_order(path, text, lineno) -> str:
    order = text.lower()
    if len(order) != 3 or set(order) != set("xyz"):
        raise ReaderError(path, f"axis order {text!r} is not a permutation of XYZ", line=lineno)
    return order


# ---- AMC -----------------------------------------------------------------------------------------
def parse_amc(path, acclaim: AcclaimSkeleton):
    """Per-bone (T, dof) value arrays, the first frame number and whether angles are degrees.

    Every frame must list every bone that has degrees of freedom, exactly once, with as
    many values as the ASF declares; anything else is a ReaderError at its line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()  # comments may be Latin-1
    except OSError as e:
        raise ReaderError(path, f"cannot read ({e.strerror})") from None
    expected = {"root": len(acclaim.root_order)}
    expected.update({name: len(b.dofs) for name, b in acclaim.bones.items()})
    required = {name for name, n in expected.items() if n > 0}
    rows: dict[str, list[list[str]]] = {name: [] for name in expected}
    degrees = acclaim.degrees
    frame_numbers: list[int] = []
    frame_line = None
    seen: set[str] = set()

    def close_frame():
        missing = required - seen
        if missing:
            raise ReaderError(path, f"frame {frame_numbers[-1]} lacks bone(s) {', '.join(sorted(missing))} "
                                    f"(truncated?)", line=frame_line)

    for lineno, raw in enumerate(lines, start=1):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if tokens[0].startswith(":"):
            if frame_numbers:
                raise ReaderError(path, f"header {tokens[0]!r} after the first frame", line=lineno)
            if tokens[0].upper() == ":RADIANS":
                degrees = False
            elif tokens[0].upper() == ":DEGREES":
                degrees = True
            continue
        if len(tokens) == 1 and tokens[0].isdigit():
            if frame_numbers:
                close_frame()
                if int(tokens[0]) != frame_numbers[-1] + 1:
                    raise ReaderError(path, f"frame {tokens[0]} follows frame {frame_numbers[-1]}", line=lineno)
            frame_numbers.append(int(tokens[0]))
            frame_line, seen = lineno, set()
            continue
        name, values = tokens[0], tokens[1:]
        if not frame_numbers:
            raise ReaderError(path, f"expected a frame number, found {raw.strip()[:40]!r} (not an AMC file?)",
                              line=lineno)
        if name not in expected:
            raise ReaderError(path, f"bone {name!r} is not in the ASF skeleton", line=lineno)
        if name in seen:
            raise ReaderError(path, f"bone {name!r} appears twice in frame {frame_numbers[-1]}", line=lineno)
        if len(values) != expected[name]:
            raise ReaderError(path, f"bone {name!r} has {len(values)} values, the ASF declares {expected[name]} dof",
                              line=lineno)
        seen.add(name)
        rows[name].append((lineno, values))
    if not frame_numbers:
        raise ReaderError(path, "no frames (empty or not an AMC file)")
    close_frame()

    frames = {}
    for name in required:
        try:
            frames[name] = np.array([v for _, v in rows[name]], dtype=np.float64)
        except ValueError:
            for lineno, v in rows[name]:
                try:
                    np.array(v, dtype=np.float64)
                except ValueError:
                    raise ReaderError(path, f"bone {name!r} holds a value that is not a number", line=lineno) from None
            raise  # pragma: no cover
        bad = ~np.isfinite(frames[name])
        if bad.any():
            raise ReaderError(path, f"bone {name!r} holds a non-finite value",
                              line=rows[name][int(np.argwhere(bad)[0, 0])][0])
    return frames, frame_numbers[0], degrees


def local_transforms(acclaim: AcclaimSkeleton, frames, degrees):
    """Local rotations (T, J, 3, 3) as C M C^-1 per joint, and the root translation (T, 3)."""
    rig = acclaim.rig
    num_frames = frames["root"].shape[0] if "root" in frames else next(iter(frames.values())).shape[0]
    rotations = np.broadcast_to(np.eye(3), (num_frames, rig.num_joints, 3, 3)).copy()
    translation = np.zeros((num_frames, 3))

    root_values = frames.get("root", np.zeros((num_frames, 0)))
    rot_cols = [k for k, d in enumerate(acclaim.root_order) if d.startswith("r")]
    for k, d in enumerate(acclaim.root_order):
        if d.startswith("t"):
            translation[:, "xyz".index(d[1])] = root_values[:, k]
    root_axes = "".join(acclaim.root_order[k][1] for k in rot_cols)
    c_root = euler_to_matrix(acclaim.root_orientation, acclaim.root_axis, degrees=acclaim.degrees, intrinsic=False)
    m_root = euler_to_matrix(root_values[:, rot_cols], root_axes, degrees=degrees, intrinsic=False)
    rotations[:, 0] = c_root @ m_root @ c_root.T

    for j, name in enumerate(rig.names):
        bone = acclaim.bones.get(name)
        if bone is None or rig.end_site[j] or not bone.dofs:
            continue
        c = euler_to_matrix(bone.axis_angles, bone.axis_order, degrees=acclaim.degrees, intrinsic=False)
        m = euler_to_matrix(frames[name], "".join(d[1] for d in bone.dofs), degrees=degrees, intrinsic=False)
        rotations[:, j] = c @ m @ c.T
    return rotations, translation
