"""NTU RGB+D .skeleton reader: real samples, synthetic edge cases cut from them, and failures."""
from pathlib import Path

import numpy as np
import pytest

from attacks.core.data.readers import ReaderError, get_reader
from attacks.core.data.readers import ntu
from attacks.core.skeletons import Skeleton, get_skeleton

ONE_BODY = "S001C001P001R001A011.skeleton"
TWO_BODIES = "S001C003P008R002A058.skeleton"
BRUSHING = "S002C001P003R001A003.skeleton"
LINES_PER_ONE_BODY_FRAME = 1 + 1 + 1 + 25  # body count, body line, joint count, joints


@pytest.fixture
def ntu_dir(shared_datasets) -> Path:
    return shared_datasets / "samples" / "ntu60"


@pytest.fixture
def ntu25():
    return get_skeleton("ntu25")


def read_one(path, skeleton, **options):
    clips = ntu.read_file(path, skeleton, **options)
    assert len(clips) == 1
    return clips[0]


def raw_lines(path) -> list[str]:
    return Path(path).read_text().splitlines()


def xyz_of(line: str) -> np.ndarray:
    return np.array([float(v) for v in line.split()[:3]], dtype=np.float32)


def activity(body: np.ndarray) -> float:
    """2s-AGCN's measure, written independently: per-axis std over present frames, summed."""
    present = body.reshape(body.shape[0], -1).any(axis=1)
    return float(sum(body[present][..., c].std() for c in range(3)))


def write_sample(tmp_path, lines, name=ONE_BODY) -> Path:
    out = tmp_path / name
    out.write_text("\n".join(lines) + "\n")
    return out


def split_frames(lines):
    """Cut a raw file into per-frame line blocks (walking the counts, as the format defines)."""
    frames, i = [], 1
    for _ in range(int(lines[0])):
        start, bodies = i, int(lines[i])
        i += 1
        for _ in range(bodies):
            i += 2 + int(lines[i + 1])
        frames.append(lines[start:i])
    return frames


# ---- real samples ----------------------------------------------------------------

@pytest.mark.parametrize("name, frames, persons", [(ONE_BODY, 82, 1), (BRUSHING, 100, 1), (TWO_BODIES, 70, 2)])
def test_real_samples_frame_and_person_counts(ntu_dir, ntu25, name, frames, persons):
    clip = read_one(ntu_dir / name, ntu25)
    assert int(raw_lines(ntu_dir / name)[0]) == frames
    assert clip.motion.shape == (persons, frames, 25, 3)
    assert clip.motion.dtype == np.float32
    assert clip.fps == 30.0
    assert clip.frame_range == (0, frames)
    assert sorted(clip.person_indices) == list(range(persons))
    assert not (clip.motion == 0).all(axis=(2, 3)).any(), "every frame of these samples has its bodies"


def test_coordinates_are_the_file_values_unchanged(ntu_dir, ntu25):
    path = ntu_dir / ONE_BODY
    lines = raw_lines(path)
    clip = read_one(path, ntu25)
    # Line 5 is the first joint of the first frame; x y z are kept as metres, y up.
    np.testing.assert_array_equal(clip.motion[0, 0, 0], xyz_of(lines[4]))
    t, j = clip.num_frames - 1, 7
    np.testing.assert_array_equal(clip.motion[0, t, j], xyz_of(lines[4 + t * LINES_PER_ONE_BODY_FRAME + j]))


def test_second_body_is_tracked_by_its_id(ntu_dir, ntu25):
    path = ntu_dir / TWO_BODIES
    lines = raw_lines(path)
    clip = read_one(path, ntu25)
    second_id = lines[2 + 27].split()[0]  # body line of the second body in frame 1
    assert second_id in clip.meta["tracking_ids"]
    row = clip.person_indices.index(1)
    assert clip.meta["tracking_ids"][row] == second_id
    np.testing.assert_array_equal(clip.motion[row, 0, 0], xyz_of(lines[31]))


def test_kept_bodies_are_the_most_active_first(ntu_dir, ntu25):
    both = read_one(ntu_dir / TWO_BODIES, ntu25)
    energies = [activity(body) for body in both.motion]
    assert energies[0] >= energies[1]
    only = read_one(ntu_dir / TWO_BODIES, ntu25, max_persons=1)
    assert only.num_persons == 1
    assert only.person_indices == both.person_indices[:1]
    np.testing.assert_array_equal(only.motion[0], both.motion[0])


def test_label_and_meta_come_from_the_name(ntu_dir, ntu25):
    clip = read_one(ntu_dir / TWO_BODIES, ntu25)
    assert clip.label == "A058"
    assert clip.source == TWO_BODIES
    meta = clip.meta
    assert (meta["setup"], meta["camera"], meta["performer"], meta["replication"]) == (1, 3, 8, 2)
    assert meta["class_id"] == 57
    assert meta["num_bodies"] == 2


def test_registry_serves_this_module():
    assert get_reader("ntu") is ntu


# ---- synthetic edge cases built from a real file -------------------------------------

def test_frame_with_no_body_is_kept_as_zeros(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    frames = split_frames(lines)
    frames[3] = ["0"]
    path = write_sample(tmp_path, [lines[0]] + [l for f in frames for l in f])
    clip = read_one(path, ntu25)
    original = read_one(ntu_dir / ONE_BODY, ntu25)
    assert clip.motion.shape == original.motion.shape
    assert (clip.motion[0, 3] == 0).all()
    keep = np.arange(clip.num_frames) != 3
    np.testing.assert_array_equal(clip.motion[0, keep], original.motion[0, keep])
    assert clip.meta["frames_without_body"] == 1


def test_take_without_any_body_is_one_zero_person(tmp_path, ntu25):
    path = write_sample(tmp_path, ["3", "0", "0", "0"])
    clip = read_one(path, ntu25)
    assert clip.motion.shape == (1, 3, 25, 3)
    assert (clip.motion == 0).all()
    assert clip.person_indices == ()


def test_bodies_swapping_slots_are_followed_by_tracking_id(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / TWO_BODIES)
    frames = split_frames(lines)
    for t in range(1, len(frames), 2):  # swap the two body blocks in every other frame
        count, first, second = frames[t][0], frames[t][1:28], frames[t][28:]
        frames[t] = [count] + second + first
    path = write_sample(tmp_path, [lines[0]] + [l for f in frames for l in f], name=TWO_BODIES)
    np.testing.assert_array_equal(read_one(path, ntu25).motion, read_one(ntu_dir / TWO_BODIES, ntu25).motion)


def test_short_lived_spurious_body_is_dropped_for_the_actor(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    frames = split_frames(lines)
    ghost_body = ["99 0 0 0 0 0 0 0 0 2", "25"] + ["1.0 0.5 3.0 0 0 0 0 1 0 0 0 2"] * 25
    for t in (10, 11, 12):
        frames[t] = ["2"] + frames[t][1:] + ghost_body
    path = write_sample(tmp_path, [lines[0]] + [l for f in frames for l in f])
    one = read_one(path, ntu25, max_persons=1)
    np.testing.assert_array_equal(one.motion, read_one(ntu_dir / ONE_BODY, ntu25).motion)
    two = read_one(path, ntu25)
    assert two.person_indices == (0, 1)
    assert two.meta["tracking_ids"][1] == "99"
    present = two.motion[1].any(axis=(1, 2))
    assert present.nonzero()[0].tolist() == [10, 11, 12]
    np.testing.assert_array_equal(two.motion[1, 10], np.tile([1.0, 0.5, 3.0], (25, 1)).astype(np.float32))


# ---- failures name the file and the line ------------------------------------------------

def test_file_cut_mid_line_names_that_line(tmp_path, ntu_dir, ntu25):
    text = (ntu_dir / ONE_BODY).read_text()
    lines = text.splitlines()
    cut_line = len(lines) // 2
    if len(lines[cut_line - 1].split()) != 12:  # land on a joint line, whatever the layout
        cut_line += 2
    assert len(lines[cut_line - 1].split()) == 12
    offset = sum(len(l) + 1 for l in lines[: cut_line - 1]) + len(lines[cut_line - 1]) // 2
    path = tmp_path / ONE_BODY
    path.write_text(text[:offset])
    with pytest.raises(ReaderError) as err:
        ntu.read_file(path, ntu25)
    assert err.value.line == cut_line
    assert ONE_BODY in str(err.value) and f"line {cut_line}" in str(err.value)


def test_file_cut_between_lines_names_its_last_line(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    path = write_sample(tmp_path, lines[:1000])
    with pytest.raises(ReaderError, match="truncated") as err:
        ntu.read_file(path, ntu25)
    assert err.value.line == 1000


def test_garbage_file_fails_on_line_one(tmp_path, ntu25):
    path = tmp_path / ONE_BODY
    path.write_text("this is not a skeleton file\n1 2 3\n")
    with pytest.raises(ReaderError) as err:
        ntu.read_file(path, ntu25)
    assert err.value.line == 1


def test_binary_file_fails(tmp_path, ntu25):
    path = tmp_path / ONE_BODY
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ReaderError, match="not a text file"):
        ntu.read_file(path, ntu25)


def test_non_numeric_joint_field_names_its_line(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    target = 4 + 5 * LINES_PER_ONE_BODY_FRAME + 11  # a joint line in frame 6
    fields = lines[target].split()
    fields[1] = "1.2.3"
    lines[target] = " ".join(fields)
    with pytest.raises(ReaderError, match="not a number") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    assert err.value.line == target + 1


def test_non_finite_joint_value_names_its_line(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    target = 4 + 2 * LINES_PER_ONE_BODY_FRAME
    lines[target] = "nan " + " ".join(lines[target].split()[1:])
    with pytest.raises(ReaderError, match="non-finite") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    assert err.value.line == target + 1


def test_body_declaring_24_joints_names_its_line(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    count_line = 3 + 4 * LINES_PER_ONE_BODY_FRAME  # joint-count line of frame 5 (0-based index)
    assert lines[count_line] == "25"
    lines[count_line] = "24"
    del lines[count_line + 1]
    with pytest.raises(ReaderError, match="24 joints") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    assert err.value.line == count_line + 1


def test_missing_joint_line_is_caught(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    first_joint = 4 + 7 * LINES_PER_ONE_BODY_FRAME
    del lines[first_joint + 3]  # one joint fewer, count still says 25
    with pytest.raises(ReaderError, match="joint line") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    # The 25th "joint" is now the next frame's body count line.
    assert err.value.line == first_joint + 25


def test_short_body_line_names_its_line(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    lines[2] = " ".join(lines[2].split()[:6])
    with pytest.raises(ReaderError, match="body line") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    assert err.value.line == 3


def test_content_after_last_frame_is_an_error(tmp_path, ntu_dir, ntu25):
    lines = raw_lines(ntu_dir / ONE_BODY)
    lines[0] = str(int(lines[0]) - 1)
    with pytest.raises(ReaderError, match="after the last") as err:
        ntu.read_file(write_sample(tmp_path, lines), ntu25)
    assert err.value.line == 2 + (int(lines[0])) * LINES_PER_ONE_BODY_FRAME


def test_skeleton_without_25_joints_is_refused(ntu_dir):
    tiny = Skeleton(name="tiny", joints=("a", "b", "c"), parents=(-1, 0, 1), spine=(0,))
    with pytest.raises(ReaderError, match="25"):
        ntu.read_file(ntu_dir / ONE_BODY, tiny)


@pytest.mark.parametrize("bad_name", ["reading.skeleton", "S001C001P001R001A000.skeleton", "S1C1P1R1A1.skeleton"])
def test_bad_file_name_is_refused(tmp_path, ntu_dir, ntu25, bad_name):
    path = tmp_path / bad_name
    path.write_text((ntu_dir / ONE_BODY).read_text())
    with pytest.raises(ReaderError) as err:
        ntu.read_file(path, ntu25)
    assert bad_name in str(err.value)


def test_max_persons_must_be_positive(ntu_dir, ntu25):
    with pytest.raises(ReaderError, match="max_persons"):
        ntu.read_file(ntu_dir / ONE_BODY, ntu25, max_persons=0)


# ---- list_files ------------------------------------------------------------------------

def test_list_files_folder_single_file_and_list(tmp_path, ntu_dir):
    folder = ntu.list_files(ntu_dir)
    assert [f.name for f in folder] == sorted(p.name for p in ntu_dir.glob("*.skeleton"))
    assert ntu.list_files(ntu_dir / ONE_BODY) == [ntu_dir / ONE_BODY]

    (tmp_path / "data").mkdir()
    local = tmp_path / "data" / ONE_BODY
    local.write_text((ntu_dir / ONE_BODY).read_text())
    listing = tmp_path / "takes.txt"
    listing.write_text(f"# takes to import\ndata/{ONE_BODY}\n\n{ntu_dir / TWO_BODIES}\n")
    assert ntu.list_files(listing) == [tmp_path / "data" / ONE_BODY, ntu_dir / TWO_BODIES]


def test_list_files_names_a_missing_entry_by_line(tmp_path):
    listing = tmp_path / "takes.txt"
    listing.write_text("# header\nS001C001P001R001A001.skeleton\n")
    with pytest.raises(ReaderError) as err:
        ntu.list_files(listing)
    assert err.value.line == 2


def test_list_files_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(ReaderError, match="no \\*.skeleton"):
        ntu.list_files(tmp_path)
    with pytest.raises(ReaderError):
        ntu.list_files(tmp_path / "nowhere")
