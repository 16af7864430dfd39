"""Stored samples stay adversarial, and every recognizer sees world-unit motions by its own protocol.

What a user does: generate samples, export them, feed the export back to `classify`.
Each successful sample must get its stored after-attack label, for the raw, `smart` and
`ntu` import protocols, and a second recognizer must classify the transferred originals
as well as it classifies its own test clips.
"""
import json

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from attacks.core.data import preprocessing

from attacks.core.data import protocol_view
from attacks.core.methods import numerics
from attacks.core.methods.numerics import bf16_supported
from attacks.models import AdversarialSample, Dataset, GenerationRun, Recognizer, TransferResult
from attacks.core.data.readers.synthetic import generate
from attacks.core.skeletons import get_skeleton

PROTOCOLS = {
    "raw": ([], {"frames": 24}),
    "smart": (["window=24", "stride=12"], {}),
    "ntu": (["frames=32"], {}),
}

pytestmark = [pytest.mark.django_db, pytest.mark.database]


@pytest.fixture(scope="module")
def recognizers(django_db_setup, django_db_blocker, tmp_path_factory):
    """Per protocol, one synthetic dataset and two quickly trained recognizers."""
    from django.conf import settings

    old = settings.DATA_DIR
    settings.DATA_DIR = tmp_path_factory.mktemp("data")
    with django_db_blocker.unblock():
        for protocol, (options, train) in PROTOCOLS.items():
            call_command("import_dataset", "synthetic", "classes=3,clips=14,frames=30,seed=4",
                         name=f"st-{protocol}", protocol=protocol, protocol_option=options, no_progress=True)
            for name, seed in ((f"st-{protocol}-a", 0), (f"st-{protocol}-b", 1)):
                call_command("train_recognizer", dataset=f"st-{protocol}", arch="stgcn", name=name, width=8,
                             epochs=8, batch_size=8, lr=0.1, seed=seed, no_progress=True, **train)
        yield
        GenerationRun.objects.all().delete()
        Recognizer.objects.all().delete()
        Dataset.objects.filter(name__startswith="st-").delete()
    settings.DATA_DIR = old


def _classify(path, recognizer, capsys, key=None):
    capsys.readouterr()
    call_command("classify", str(path), recognizer=recognizer, json=True, **({"key": key} if key else {}))
    return [p["label"] for p in json.loads(capsys.readouterr().out)["predictions"]]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_exported_successful_samples_classify_as_stored(recognizers, protocol, tmp_path, capsys):
    name = f"st-{protocol}-a"
    call_command("generate_samples", recognizer=name, method="smart", strategy="ab", iterations=60, lr=0.02,
                 batch_size=4, no_progress=True)
    run = GenerationRun.objects.get(recognizer__name=name, method="smart")
    successful = list(run.samples.filter(success=True).order_by("clip__index"))
    assert len(successful) >= 3, f"{protocol}: too few successes to test ({len(successful)})"
    out = tmp_path / "samples.npz"
    call_command("export_samples", str(out), recognizer=[name], successful=True)
    labels = _classify(out, name, capsys)
    assert labels == [s.label_after for s in successful]
    assert all(a != s.label for a, s in zip(labels, successful))
    # The originals, exported the same way, are what the recognizer got right before the attack.
    assert _classify(out, name, capsys, key="original") == [s.label for s in successful]
    # The loop froze each sample only once its stored form fooled the model: both verdicts agree.
    assert all(s.attack_success for s in successful)


@pytest.mark.skipif(not bf16_supported("cpu"), reason="this CPU has no native bf16")
def test_the_recognizers_precision_is_part_of_the_run_and_its_samples_classify_as_stored(recognizers, tmp_path,
                                                                                        capsys, monkeypatch):
    """--precision bf16 and fp32 make two runs; the fast run's successes are float32 successes
    of the stored bytes, as `classify` (float32) reports them."""
    name = "st-ntu-a"
    common = dict(recognizer=name, method="l2-bone", strategy="ab", iterations=60, lr=0.02, batch_size=4,
                  no_progress=True)
    for precision in ("fp32", "bf16"):
        call_command("generate_samples", precision=precision, channels_last=precision == "bf16", **common)
    runs = {r.config.get("precision"): r for r in GenerationRun.objects.filter(recognizer__name=name, method="l2-bone")}
    assert set(runs) == {None, "bf16"}  # an fp32 run stores nothing: it is the run it always was
    exact, fast = runs[None], runs["bf16"]
    assert exact.samples.count() == fast.samples.count() > 0
    out = tmp_path / "fast.npz"
    call_command("export_samples", str(out), run=[fast.pk], successful=True)
    successful = list(fast.samples.filter(success=True).order_by("clip__index"))
    assert len(successful) >= 3
    assert _classify(out, name, capsys) == [s.label_after for s in successful]
    assert all(s.attack_success for s in successful)
    ok_exact, ok_fast = exact.samples.filter(success=True).count(), len(successful)
    assert abs(ok_exact - ok_fast) <= max(1, round(0.15 * exact.samples.count())), (ok_exact, ok_fast)
    # A bf16 run resumed where bf16 is not native stops with the reason, before attacking.
    from attacks.services.generation import attack_positions, prepare_run
    from attacks.services.recognition import RecognitionError

    scope, attackable, model, inputs = prepare_run(fast)
    monkeypatch.setattr(numerics, "bf16_supported", lambda device="cpu": False)
    with pytest.raises(RecognitionError, match=f"run {fast.pk}: precision bf16 is not supported natively"):
        attack_positions(scope, attackable, model=model, inputs=inputs)
    with pytest.raises(CommandError, match="bf16 is not supported natively"):
        call_command("generate_samples", precision="bf16", **common)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_transfer_targets_see_originals_by_their_own_protocol(recognizers, protocol):
    source, target = Recognizer.objects.get(name=f"st-{protocol}-a"), Recognizer.objects.get(name=f"st-{protocol}-b")
    call_command("generate_samples", recognizer=source.name, method="smart", strategy="ab", iterations=20,
                 lr=0.02, batch_size=8, no_progress=True, transfer_to=[target.name])
    results = list(TransferResult.objects.filter(recognizer=target).select_related("sample__clip"))
    assert results
    clean_accuracy = np.mean([r.label_clean == r.sample.label for r in results])
    # Test clips, so as good as the target's own test accuracy (the bug gave 0% on `smart`).
    assert clean_accuracy >= min(target.test_accuracy, 1.0) - 0.2, (protocol, clean_accuracy, target.test_accuracy)
    # b was split with another seed: some of a's test clips are b's training clips, and are flagged.
    seen = set(target.split.train) | set(target.split.val)
    assert [r.in_target_training for r in results] == [r.sample.clip.index in seen for r in results]


def test_clips_in_the_target_training_split_are_flagged(recognizers):
    source = Recognizer.objects.get(name="st-raw-a")
    call_command("generate_samples", recognizer=source.name, method="l2", strategy="ab", iterations=2,
                 split="train", limit=4, batch_size=4, no_progress=True, transfer_to=["st-raw-b"])
    results = list(TransferResult.objects.filter(sample__run__split="train", recognizer__name="st-raw-b")
                   .select_related("sample__clip", "recognizer__split"))
    seen = set(results[0].recognizer.split.train) | set(results[0].recognizer.split.val)
    assert [r.in_target_training for r in results] == [r.sample.clip.index in seen for r in results]
    assert any(r.in_target_training for r in results)


def test_a_margin_demands_confidence_and_is_part_of_the_run(recognizers):
    name = "st-raw-a"
    for margin in (0.0, 2.0):
        call_command("generate_samples", recognizer=name, method="smart", strategy="ab", iterations=60, lr=0.02,
                     batch_size=8, no_progress=True, margin=margin)
    plain, confident = (GenerationRun.objects.get(recognizer__name=name, method="smart", config__margin=m)
                        for m in (0.0, 2.0))
    assert plain.pk != confident.pk
    for s in confident.samples.filter(success=True):
        logp = np.log(np.asarray(s.probs_after))
        others = np.delete(logp, s.label)
        assert others.max() - logp[s.label] >= 2.0 - 1e-4
    by_clip = {s.clip_id: s.iterations for s in plain.samples.filter(success=True)}
    slower = [s.iterations >= by_clip[s.clip_id] for s in confident.samples.filter(success=True)
              if s.clip_id in by_clip]
    assert slower and all(slower)


# ---- the view itself (no database) ----------------------------------------------------

def _world_clips(protocol_options, protocol):
    skeleton = get_skeleton("ntu25")
    raw = generate(skeleton, num_classes=2, clips_per_class=3, num_frames=30, seed=5)
    clips, _ = preprocessing.apply_protocol(raw, protocol, skeleton, **protocol_options)
    return skeleton, clips


@pytest.mark.parametrize("protocol,options", [("smart", {"window": 24, "stride": 12}), ("ntu", {"frames": 40})])
def test_the_view_of_a_world_motion_is_the_imported_clip(protocol, options):
    skeleton, clips = _world_clips(options, protocol)
    for clip in clips:
        world = preprocessing.to_world(clip.motion, clip.meta["world"], crop=False)
        seen = protocol_view.recognizer_inputs([world], protocol, skeleton, clip.num_frames, clip.num_persons)[0]
        np.testing.assert_allclose(seen, clip.motion, atol=2e-5)
        again = protocol_view.recognizer_inputs([clip.motion], protocol, skeleton, clip.num_frames,
                                                clip.num_persons)[0]
        np.testing.assert_allclose(again, clip.motion, atol=2e-5)  # idempotent: normalised exports work too


def test_the_view_is_differentiable_and_moves_with_the_perturbed_joints():
    skeleton, clips = _world_clips({"window": 24, "stride": 12}, "smart")
    world = preprocessing.to_world(clips[0].motion, clips[0].meta["world"], crop=False)
    x = torch.from_numpy(world[None]).double().requires_grad_(True)
    seen = protocol_view.normalise(x, "smart", skeleton)
    seen[0, 0, 5].sum().backward()
    # Frame 5 depends on frame 0 through the centre and the facing angle, not only on itself.
    assert x.grad[0, 0, 0].abs().sum() > 0 and x.grad[0, 0, 5].abs().sum() > 0
    assert x.grad[0, 0, 1:5].abs().sum() == 0
