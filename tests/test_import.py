"""The import and export commands against real files: one transaction, no duplicates, exact values."""
import json
import logging
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from attacks.models import Clip, Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def gtu(shared_datasets):
    return shared_datasets / "gtu3dactions"


@pytest.fixture
def gtu_subset(gtu, tmp_path):
    """Three classes, four takes each: a real but small GTU folder we may damage."""
    root = tmp_path / "gtu"
    for cls in ("1", "4", "10"):
        (root / cls).mkdir(parents=True)
        for f in sorted((gtu / cls).iterdir())[:4]:
            shutil.copy(f, root / cls / f.name)
    return root


def test_gtu_full_import_has_508_clips_in_14_classes(gtu):
    call_command("import_dataset", "gtu", str(gtu), name="gtu", no_progress=True)
    ds = Dataset.objects.get(name="gtu")
    assert ds.clips.count() == 508
    assert len(ds.class_names) == 14 and ds.class_names[0] == "opening and closing the arms"
    counts = ds.class_counts()
    for class_id in range(1, 15):
        on_disk = len(list((gtu / str(class_id)).glob("movement*.txt")))
        assert counts[ds.class_names[class_id - 1]] == on_disk
    assert ds.fps == 30 and ds.skeleton["name"] == "ntu25"


def test_raw_export_equals_the_file_coordinates(gtu_subset, tmp_path):
    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    out = tmp_path / "small.npz"
    call_command("export_dataset", "small", str(out))
    z = np.load(out)
    assert set(z.files) == {"clips", "lengths", "labels", "class_names", "sources", "fps", "skeleton"}
    assert z["clips"].dtype == np.float32 and z["clips"].shape[0] == 12 and z["clips"].shape[1:] [2:] == (25, 3)
    sources = list(z["sources"])
    i = sources.index(f"4/{sorted((gtu_subset / '4').iterdir())[0].name}")
    lines = (gtu_subset / sources[i]).read_text().split("\n")
    expected = np.array([[float(v) for v in ln.split()] for ln in lines if ln.strip()], dtype=np.float32).reshape(-1, 25, 3)
    assert z["lengths"][i] == len(expected)
    np.testing.assert_array_equal(z["clips"][i, 0, : len(expected)], expected)
    assert np.all(z["clips"][i, 0, len(expected):] == 0)
    assert json.loads(str(z["skeleton"]))["name"] == "ntu25"
    assert str(z["class_names"][z["labels"][i]]) == "walking"


def test_reimport_does_not_duplicate(gtu_subset, capsys):
    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    ids = list(Clip.objects.values_list("id", flat=True))
    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    assert "nothing changed" in capsys.readouterr().out
    assert list(Clip.objects.values_list("id", flat=True)) == ids
    assert Dataset.objects.count() == 1


def test_reimport_of_changed_files_replaces_and_is_refused_once_a_recognizer_uses_it(gtu_subset):
    from attacks.models import DatasetSplit, Recognizer

    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    sorted((gtu_subset / "4").iterdir())[0].unlink()
    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    ds = Dataset.objects.get()
    assert ds.clips.count() == Clip.objects.count() == 11
    assert sorted(ds.clips.values_list("index", flat=True)) == list(range(11))
    split = DatasetSplit.objects.create(dataset=ds, name="s", method="fixture", train=[0], val=[1], test=[2])
    Recognizer.objects.create(name="r", arch="stgcn", dataset=ds, split=split, status="ready")
    sorted((gtu_subset / "4").iterdir())[0].unlink()
    with pytest.raises(CommandError, match="recognizers were trained on it"):
        call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    assert Clip.objects.count() == 11


def test_truncated_file_stops_the_import_and_writes_nothing(gtu_subset):
    call_command("import_dataset", "gtu", str(gtu_subset), name="before", no_progress=True)
    before = list(Clip.objects.order_by("id").values_list("id", "data"))
    victim = sorted((gtu_subset / "10").iterdir())[1]
    lines = victim.read_text().splitlines()
    victim.write_text("\n".join(lines[:-3]) + "\n")
    for name in ("before", "fresh"):
        with pytest.raises(CommandError, match=rf"{victim.name}, line {len(lines) - 3}.*truncated"):
            call_command("import_dataset", "gtu", str(gtu_subset), name=name, no_progress=True)
    assert list(Dataset.objects.values_list("name", flat=True)) == ["before"]
    assert list(Clip.objects.order_by("id").values_list("id", "data")) == before


def test_garbage_line_is_reported_with_its_number(gtu_subset):
    victim = sorted((gtu_subset / "1").iterdir())[0]
    lines = victim.read_text().splitlines()
    lines[6] = "0.1 zero 0.3"
    victim.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match=rf"{victim.name}, line 7: not a number"):
        call_command("import_dataset", "gtu", str(gtu_subset), name="x", no_progress=True)
    assert not Dataset.objects.exists()


def test_wrong_format_is_refused(gtu_subset):
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_dataset", "ntu", str(gtu_subset), name="x", no_progress=True)
    assert not Dataset.objects.exists()


def test_wrong_joint_count_is_refused(gtu_subset, tmp_path):
    from tests.test_skeletons import twenty_joint_definition

    skel = tmp_path / "k20.json"
    skel.write_text(json.dumps(twenty_joint_definition()))
    with pytest.raises(CommandError, match="25 Kinect v2 joints"):
        call_command("import_dataset", "gtu", str(gtu_subset), name="x", skeleton=str(skel), no_progress=True)
    assert not Dataset.objects.exists()


def test_export_reimports_through_the_npz_reader(gtu_subset, tmp_path):
    call_command("import_dataset", "gtu", str(gtu_subset), name="small", no_progress=True)
    out = tmp_path / "small.npz"
    call_command("export_dataset", "small", str(out))
    call_command("import_dataset", "npz", str(out), name="again", skeleton="ntu25", no_progress=True)
    a, b = Dataset.objects.get(name="small"), Dataset.objects.get(name="again")
    assert a.class_names == b.class_names
    for ca, cb in zip(a.clips.order_by("index"), b.clips.order_by("index")):
        assert ca.label == cb.label
        np.testing.assert_array_equal(ca.motion(), cb.motion())


def test_unknown_dataset_export(tmp_path):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("export_dataset", "nope", str(tmp_path / "x.npz"))


# ---- NTU RGB+D and user-defined skeletons through the commands -------------------------------

@pytest.fixture
def ntu_copy(shared_datasets, tmp_path):
    """The three real NTU samples in a folder we may damage."""
    root = tmp_path / "ntu"
    shutil.copytree(shared_datasets / "samples" / "ntu60", root)
    return root


def test_ntu_folder_and_file_list_import_with_two_persons_and_export(ntu_copy, tmp_path):
    call_command("import_dataset", "ntu", str(ntu_copy), name="ntu", no_progress=True)
    ds = Dataset.objects.get(name="ntu")
    assert ds.class_names == ["A003", "A011", "A058"] and ds.skeleton["name"] == "ntu25" and ds.fps == 30
    clips = {c.source: c for c in ds.clips.all()}
    handshake = clips["S001C003P008R002A058.skeleton"]
    assert handshake.num_persons == 2 and len(handshake.person_indices) == 2
    assert (handshake.meta["performer"], handshake.meta["camera"], handshake.meta["setup"]) == (8, 3, 1)
    assert [clips[s].num_persons for s in sorted(clips)] == [1, 2, 1]
    out = tmp_path / "ntu.npz"
    call_command("export_dataset", "ntu", str(out))
    z = np.load(out)
    assert z["clips"].shape == (3, 2, 100, 25, 3)
    i = list(z["sources"]).index("S001C001P001R001A011.skeleton")
    assert z["lengths"][i] == 82 and str(z["class_names"][z["labels"][i]]) == "A011"
    assert np.all(z["clips"][i, 1] == 0) and np.all(z["clips"][i, 0, 82:] == 0)

    listing = tmp_path / "two.txt"
    listing.write_text(f"# two takes\n{ntu_copy / 'S001C001P001R001A011.skeleton'}\n"
                       f"{ntu_copy / 'S001C003P008R002A058.skeleton'}\n")
    call_command("import_dataset", "ntu", str(listing), name="listed", no_progress=True)
    assert Dataset.objects.get(name="listed").clips.count() == 2


def test_truncated_ntu_file_stops_the_import_and_writes_nothing(ntu_copy):
    victim = ntu_copy / "S002C001P003R001A003.skeleton"
    lines = victim.read_text().splitlines()
    victim.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with pytest.raises(CommandError, match=rf"nothing was written.*{victim.name}, line \d+.*truncated"):
        call_command("import_dataset", "ntu", str(ntu_copy), name="ntu", no_progress=True)
    assert not Dataset.objects.exists() and not Clip.objects.exists()


def test_a_20_joint_json_skeleton_imports_exports_and_reimports(tmp_path):
    from attacks.core.skeletons import get_skeleton
    from tests.test_skeletons import twenty_joint_definition

    rig = tmp_path / "k20.json"
    rig.write_text(json.dumps(twenty_joint_definition()))
    call_command("import_dataset", "synthetic", "classes=3,clips=2,frames=70,seed=4", name="k20",
                 skeleton=str(rig), protocol="smart", no_progress=True)
    ds = Dataset.objects.get(name="k20")
    assert ds.get_skeleton() == get_skeleton(str(rig))
    assert {c.num_joints for c in ds.clips.all()} == {20} and {c.num_frames for c in ds.clips.all()} == {60}
    # Provenance and the transform back to world units are stored with every window.
    assert all((c.frame_start, c.frame_stop) == (0, 60) and c.meta["world"]["protocol"] == "smart"
               for c in ds.clips.all())
    out = tmp_path / "k20.npz"
    call_command("export_dataset", "k20", str(out))
    z = np.load(out)
    assert z["clips"].shape[1:] == (1, 60, 20, 3)
    assert json.loads(str(z["skeleton"])) == get_skeleton(str(rig)).to_dict()
    call_command("import_dataset", "npz", str(out), name="k20-again", skeleton=str(rig), no_progress=True)
    again = Dataset.objects.get(name="k20-again")
    for a, b in zip(ds.clips.order_by("index"), again.clips.order_by("index")):
        np.testing.assert_array_equal(a.motion(), b.motion())


def test_import_shows_its_progress(gtu_subset, capsys, caplog):
    """Off a terminal (pytest captures stderr) the import's progress is a log line, not a
    bar's redraws (`attacks.core.progress`; tests/test_progress.py covers the bar)."""
    caplog.set_level(logging.INFO, logger="attacks.progress")
    call_command("import_dataset", "gtu", str(gtu_subset), name="bar")
    lines = [r.getMessage() for r in caplog.records if r.name == "attacks.progress"]
    assert any("reading gtu" in line and "12/12" in line for line in lines), lines
    assert "\r" not in capsys.readouterr().err
