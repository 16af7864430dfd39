"""Datasets larger than memory: the clip cache, and streamed training, classification and
generation giving exactly what the in-memory paths give."""
import json

import numpy as np
import pytest
import torch
from django.core.management import call_command

from attacks.services import clip_cache

from attacks.services import generation

from attacks.core.data import protocol_view
from attacks.core.training.evaluation import predict
from attacks.management.commands import classify
from attacks.models import AdversarialSample, Clip, Dataset, GenerationRun, Recognizer
from attacks.services.recognition import (get_or_create_split, load_model, model_inputs, recognizer_inputs, split_clips,
                                world_motion)
from attacks.core.recognizers import build_recognizer
from attacks.core.training.loop import train

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def _import(name, spec="classes=3,clips=7,frames=30,seed=3", protocol="raw", **options):
    call_command("import_dataset", "synthetic", spec, name=name, protocol=protocol, no_progress=True,
                 **({"protocol_option": [f"{k}={v}" for k, v in options.items()]} if options else {}))
    return Dataset.objects.get(name=name)


def test_the_cache_holds_every_clip_in_world_units_and_follows_the_dataset(data_dir):
    dataset = _import("cached", protocol="ntu", frames=40, persons=2)
    cache = clip_cache.clip_cache(dataset)
    clips = list(dataset.clips.order_by("index"))
    assert len(cache) == len(clips)
    for row in (0, 5, len(clips) - 1):
        np.testing.assert_array_equal(cache.motion(row), world_motion(clips[row]))
    assert cache.labels.tolist() == [c.label for c in clips]
    assert clip_cache.clip_cache(dataset).directory == cache.directory  # built once
    with pytest.raises(KeyError):
        cache.rows([len(clips) + 3])

    # Re-imported with other content: a new cache, the stale one removed.
    dataset = _import("cached", spec="classes=3,clips=5,frames=30,seed=4", protocol="ntu", frames=40, persons=2)
    fresh = clip_cache.clip_cache(dataset)
    assert fresh.directory != cache.directory and not cache.directory.exists()
    assert len(fresh) == dataset.clips.count() and not list(fresh.directory.parent.glob("*.tmp"))
    # A clip added to the dataset changes its key too.
    last = dataset.clips.order_by("index").last()
    Clip.objects.create(dataset=dataset, index=last.index + 1, label=0, source="x", num_persons=last.num_persons,
                        num_frames=last.num_frames, num_joints=last.num_joints, data=last.data, meta=last.meta)
    assert len(clip_cache.clip_cache(dataset)) == len(fresh) + 1


@pytest.mark.parametrize("protocol,options", [("raw", {}), ("smart", {"window": 20, "stride": 10}),
                                              ("ntu", {"frames": 40, "persons": 2})])
def test_streamed_batches_are_the_rows_of_the_whole_split(data_dir, protocol, options):
    dataset = _import(f"rows-{protocol}", protocol=protocol, **options)
    split = get_or_create_split(dataset)
    clips = split_clips(split, "train")
    spec = {"num_frames": 24, "num_persons": 2, "protocol": protocol}
    whole = model_inputs(clips, dataset.get_skeleton(), spec, dataset.fps, protocol)
    streamed = clip_cache.split_inputs(dataset, [c.index for c in clips], spec, protocol)
    assert streamed.shape == whole.X.shape and streamed.labels.tolist() == [c.label for c in clips]
    order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(0))
    for idx in torch.split(order, 5):  # what a training epoch reads
        np.testing.assert_array_equal(streamed[idx].numpy(), whole.X[idx.numpy()])
    part = streamed.model_inputs(np.arange(3, 9))
    for name in ("world", "X", "fps"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[3:9])


def test_streamed_training_gives_the_in_memory_weights(data_dir):
    """Same seed, same batches, same augmentation: identical weights after an epoch."""
    torch.set_num_threads(1)
    dataset = _import("train-stream", spec="classes=3,clips=9,frames=30,seed=5")
    split = get_or_create_split(dataset)
    spec = {"num_frames": 16, "num_persons": 1, "protocol": "raw"}
    skeleton = dataset.get_skeleton()
    data = {}
    for part in ("train", "val"):
        clips = split_clips(split, part)
        data[part] = (model_inputs(clips, skeleton, spec, dataset.fps, "raw").X, [c.label for c in clips])
    streamed = {part: clip_cache.split_inputs(dataset, sorted(split.indices(part)), spec, "raw")
                for part in ("train", "val")}
    assert len(streamed["train"]) % 6 == 1  # the last one-clip batch joins the one before

    def run(train_data, val_data):
        torch.manual_seed(0)  # the same initial weights
        model = build_recognizer("stgcn", skeleton, dataset.num_classes, num_persons=1, num_frames=16, width=4)
        return train(model, train_data, val_data, epochs=1, batch_size=6, lr=0.1, seed=3, progress=False).best_state

    in_memory = run(data["train"], data["val"])
    from_cache = run((streamed["train"], streamed["train"].labels), (streamed["val"], streamed["val"].labels))
    assert in_memory.keys() == from_cache.keys()
    assert all(torch.equal(in_memory[k], from_cache[k]) for k in in_memory)


@pytest.fixture
def recognizer(data_dir):
    _import("stream-gen", spec="classes=3,clips=8,frames=30,seed=6")
    call_command("train_recognizer", dataset="stream-gen", arch="stgcn", name="stream", width=4, epochs=2,
                 frames=16, batch_size=8, lr=0.1, seed=0, no_progress=True)
    return Recognizer.objects.get(name="stream")


def test_classify_streams_the_file_and_predicts_what_the_whole_array_does(recognizer, tmp_path, monkeypatch,
                                                                         capsys):
    out = tmp_path / "clips.npz"
    call_command("export_dataset", "stream-gen", str(out))
    with np.load(out) as z:
        clips, lengths = z["clips"], z["lengths"]
    motions = [c[:, :n] for c, n in zip(clips, lengths)]
    expected = predict(load_model(recognizer), recognizer_inputs(recognizer, motions), batch_size=4)
    shape, chunks = classify.npz_rows(out, "clips", 5)
    assert shape == clips.shape
    np.testing.assert_array_equal(np.concatenate(list(chunks)), clips)
    monkeypatch.setattr(classify, "BATCH", 4)
    monkeypatch.setattr(classify, "CHUNK", 8)  # three chunks of whole batches
    capsys.readouterr()
    call_command("classify", str(out), recognizer="stream", json=True)
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert len(rows) == len(clips)
    np.testing.assert_array_equal(np.array([r["probabilities"] for r in rows]), expected)


def test_generation_in_chunks_stores_the_samples_of_one_pass(recognizer, monkeypatch):
    attack = dict(recognizer="stream", method="smart", strategy="ab", iterations=3, batch_size=2, split="train",
                  no_progress=True)
    call_command("generate_samples", **attack)
    one_pass = {s.clip_id: (bytes(s.adversarial), s.iterations, s.success) for s in AdversarialSample.objects.all()}
    assert len(one_pass) > 2
    GenerationRun.objects.all().delete()
    monkeypatch.setattr(generation, "STREAM_CHUNK", 2)  # one batch of motions in memory at a time
    call_command("generate_samples", **attack)
    chunked = {s.clip_id: (bytes(s.adversarial), s.iterations, s.success) for s in AdversarialSample.objects.all()}
    assert chunked == one_pass


def test_a_clips_view_does_not_depend_on_what_it_is_batched_with():
    from attacks.core.skeletons import BUILTIN
    skeleton = BUILTIN["ntu25"]
    rng = np.random.default_rng(0)
    motions = [rng.normal(0, 1, (2, int(rng.integers(20, 90)), 25, 3)).astype(np.float32) for _ in range(53)]
    for protocol in ("raw", "ntu"):
        whole = protocol_view.recognizer_inputs(motions, protocol, skeleton, 64, 2)
        for size in (1, 7, 16):
            parts = [protocol_view.recognizer_inputs(motions[i:i + size], protocol, skeleton, 64, 2)
                     for i in range(0, len(motions), size)]
            np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_import_spools_file_by_file_and_stores_what_one_pass_would(data_dir):
    from attacks.core.data import preprocessing
    from attacks.services.importing import _jsonable
    from attacks.core.data.readers import get_reader
    from attacks.core.skeletons import get_skeleton

    spec = "classes=3,clips=4,frames=50,seed=7"
    dataset = _import("spooled", spec=spec, protocol="smart", window=20, stride=10)
    reader, skeleton = get_reader("synthetic"), get_skeleton("ntu25")
    raw = [c for f in reader.list_files(spec) for c in reader.read_file(f, skeleton)]
    clips, stats = preprocessing.apply_protocol(raw, "smart", skeleton, window=20, stride=10)
    assert {k: v for k, v in dataset.stats.items() if k not in ("digest", "num_clips")} == _jsonable(stats)
    stored = list(dataset.clips.order_by("index"))
    assert [s.source for s in stored] == [c.source for c in clips] and len(stored) > 3 * 4
    for row, clip in zip(stored, clips):
        np.testing.assert_array_equal(row.motion(), clip.motion)
        assert row.meta == json.loads(json.dumps(_jsonable(clip.meta)))
        assert (row.frame_start, row.frame_stop) == tuple(clip.frame_range)
    assert not list((data_dir / "tmp").iterdir())  # the spool is gone
