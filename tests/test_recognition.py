"""train_recognizer / classify: stored splits, validation-chosen checkpoints, resume, predictions."""
import json

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from attacks.services import recognition
from attacks.services.exporting import export_dataset
from attacks.models import Dataset, DatasetSplit, Recognizer

pytestmark = pytest.mark.django_db

TRAIN = dict(arch="stgcn", width=8, epochs=3, batch_size=16, frames=24, no_progress=True)


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def synthetic(data_dir):
    call_command("import_dataset", "synthetic", "classes=4,clips=12,frames=40,seed=1", name="syn", no_progress=True)
    return Dataset.objects.get(name="syn")


def test_training_records_a_ready_recognizer_with_figures(synthetic, data_dir):
    call_command("train_recognizer", dataset="syn", name="tiny", **TRAIN)
    r = Recognizer.objects.get(name="tiny")
    assert r.status == "ready" and r.epochs_trained == 3 and len(r.history) == 3
    assert 1 <= r.best_epoch <= 3
    # The kept epoch is the one with the best validation accuracy (the lower validation loss on ties).
    val = [h["val_acc"] for h in r.history]
    assert r.best_epoch == 1 + min(range(len(val)), key=lambda i: (-val[i], r.history[i]["val_loss"]))
    assert r.val_accuracy == pytest.approx(max(val))
    assert np.array(r.confusion).sum() == len(r.split.test)
    assert (data_dir / r.learning_curve).stat().st_size > 1000
    assert (data_dir / r.confusion_figure).stat().st_size > 1000
    assert r.input_spec == {"num_frames": 24, "num_persons": 1, "protocol": "raw"}
    with pytest.raises(CommandError, match="already exists"):
        call_command("train_recognizer", dataset="syn", name="tiny", **TRAIN)


def test_split_is_stored_disjoint_and_reused(synthetic):
    a = recognition.get_or_create_split(synthetic, seed=3)
    b = recognition.get_or_create_split(synthetic, seed=3)
    assert a.pk == b.pk and DatasetSplit.objects.count() == 1
    parts = [set(a.train), set(a.val), set(a.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(synthetic.clips.values_list("index", flat=True))
    c = recognition.get_or_create_split(synthetic, seed=4)
    assert c.pk != a.pk and c.test != a.test


def test_interrupted_training_resumes_to_the_same_weights(synthetic, monkeypatch, data_dir):
    real_train = recognition.train

    def crash_after_first_epoch(*args, on_epoch_end, **kwargs):
        def hook(record):
            on_epoch_end(record)
            if record["epoch"] == 1:
                raise KeyboardInterrupt
        return real_train(*args, on_epoch_end=hook, **kwargs)

    monkeypatch.setattr(recognition, "train", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        call_command("train_recognizer", dataset="syn", name="crashy", **TRAIN)
    assert Recognizer.objects.get(name="crashy").status == "training"
    assert Recognizer.objects.get(name="crashy").epochs_trained == 1
    monkeypatch.setattr(recognition, "train", real_train)
    call_command("train_recognizer", dataset="syn", name="crashy", **TRAIN)
    call_command("train_recognizer", dataset="syn", name="smooth", **TRAIN)
    a, b = (Recognizer.objects.get(name=n) for n in ("crashy", "smooth"))
    drop_time = lambda h: [{k: v for k, v in r.items() if k not in ("time_s", "cpu_s")} for r in h]  # noqa: E731
    assert a.status == "ready" and drop_time(a.history) == drop_time(b.history)
    wa, wb = (torch.load(data_dir / r.checkpoint, weights_only=True)["model"] for r in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_unknown_dataset_and_split():
    with pytest.raises(CommandError, match="no dataset named"):
        call_command("train_recognizer", dataset="nope", name="x", **TRAIN)


def test_ntu_split_on_a_dataset_without_performers(synthetic):
    for clip in synthetic.clips.all():
        clip.meta.pop("performer", None)
        clip.save(update_fields=["meta"])
    with pytest.raises(CommandError, match="ntu-xsub"):
        call_command("train_recognizer", dataset="syn", name="x", split="ntu-xsub", **TRAIN)


def test_classify_agrees_with_the_recorded_test_accuracy(synthetic, tmp_path, capsys):
    call_command("train_recognizer", dataset="syn", name="tiny", **TRAIN)
    r = Recognizer.objects.get(name="tiny")
    out = tmp_path / "all.npz"
    export_dataset(synthetic, out)
    capsys.readouterr()
    call_command("classify", str(out), recognizer="tiny", json=True)
    result = json.loads(capsys.readouterr().out)
    preds = result["predictions"]
    assert len(preds) == synthetic.clips.count()
    for p in preds:
        assert sum(p["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert p["label"] == p["top"][0]["label"] == int(np.argmax(p["probabilities"]))
        assert len(p["top"]) == 4  # top-5 capped at the number of classes
    labels = dict(synthetic.clips.values_list("index", "label"))
    test_correct = np.mean([preds[i]["label"] == labels[i] for i in r.split.test])
    assert test_correct == pytest.approx(r.test_accuracy)


def test_classify_rejects_a_wrong_shape(synthetic, tmp_path):
    call_command("train_recognizer", dataset="syn", name="tiny", **TRAIN)
    bad = tmp_path / "bad.npz"
    np.savez(bad, clips=np.zeros((2, 1, 10, 20, 3), np.float32))
    with pytest.raises(CommandError, match=r"\(N, M, T, 25, 3\)"):
        call_command("classify", str(bad), recognizer="tiny")


def test_ntu_imports_default_to_the_cross_subject_split(shared_datasets, synthetic):
    call_command("import_dataset", "ntu", str(shared_datasets / "samples" / "ntu60"), name="ntu", no_progress=True)
    ntu = Dataset.objects.get(name="ntu")
    assert recognition.default_split_method(ntu) == "ntu-xsub"
    assert recognition.default_split_method(synthetic) == "stratified"
    # Three takes, performers 1 and 8 train and 3 tests: nothing is left to validate on,
    # and the refusal leaves no half-made recognizer behind.
    with pytest.raises(CommandError, match="ntu-xsub-v0.1-s0 leaves no training or validation"):
        call_command("train_recognizer", dataset="ntu", name="ntu-tiny", **TRAIN)
    assert not Recognizer.objects.exists()
    split = DatasetSplit.objects.get(dataset=ntu)
    assert [ntu.clips.get(index=i).meta["performer"] for i in split.test] == [3]


def test_windows_of_one_take_never_straddle_train_and_test(data_dir):
    call_command("import_dataset", "synthetic", "classes=3,clips=10,frames=120,seed=1", name="windows",
                 protocol="smart", no_progress=True)
    ds = Dataset.objects.get(name="windows")
    assert ds.clips.count() == 3 * 10 * 3  # windows at frames 0, 30 and 60 of every take
    split = recognition.get_or_create_split(ds, seed=0)
    assert split.name.endswith("-by-source")
    source = dict(ds.clips.values_list("index", "source"))
    parts = [{source[i] for i in part} for part in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(split.test) == 3 * 2 * 3  # 20% of the takes of every class, with all their windows
