"""generate_samples / transfer / export: per-sample records, world units, resume without duplicates."""
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from attacks.services import generation

from attacks.core.data import preprocessing
from attacks.core.recognizers import compile_gain
from attacks.models import AdversarialSample, Dataset, GenerationRun, Recognizer, TransferResult

ATTACK = dict(recognizer="tiny", iterations=12, batch_size=4, no_progress=True)


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, tmp_path_factory):
    """One small synthetic dataset and two quickly trained recognizers, shared by this module."""
    from django.conf import settings

    old = settings.DATA_DIR
    settings.DATA_DIR = tmp_path_factory.mktemp("data")
    with django_db_blocker.unblock():
        call_command("import_dataset", "synthetic", "classes=3,clips=15,frames=30,seed=2", name="gen-syn",
                     no_progress=True)
        for name, seed in (("tiny", 0), ("other", 1)):
            call_command("train_recognizer", dataset="gen-syn", arch="stgcn", name=name, width=8, epochs=6,
                         frames=24, batch_size=8, lr=0.1, seed=0, no_progress=True)
        yield
        Dataset.objects.filter(name="gen-syn").delete() if not Recognizer.objects.exists() else None
        GenerationRun.objects.all().delete()
        Recognizer.objects.all().delete()
        Dataset.objects.filter(name="gen-syn").delete()
    settings.DATA_DIR = old


pytestmark = pytest.mark.django_db


def test_ab_samples_are_stored_per_clip_in_world_units(trained):
    call_command("generate_samples", method="smart", strategy="ab", lr=0.02, **ATTACK)
    run = GenerationRun.objects.get()
    rec = Recognizer.objects.get(name="tiny")
    assert run.total == len(rec.split.test) and run.status == "done"
    samples = list(run.samples.select_related("clip"))
    assert len(samples) == run.total - run.skipped > 0
    for s in samples:
        assert s.label_before == s.label == s.clip.label
        assert s.success == (s.label_after != s.label)
        assert s.success or s.iterations == 12
        assert sum(s.probs_after) == pytest.approx(1, abs=1e-4)
        # The stored original is the clip as the model saw it (resampled), back in world coordinates.
        expected = preprocessing.resample(s.clip.motion(), 24)
        np.testing.assert_allclose(s.original_motion(), expected, atol=1e-4)
        assert s.mean_displacement == pytest.approx(
            np.linalg.norm(s.adversarial_motion() - s.original_motion(), axis=-1).mean(), rel=1e-3, abs=1e-7)
        assert s.fps == pytest.approx(30 * 24 / s.clip.num_frames)


def test_crashed_run_resumes_to_the_same_samples(trained, monkeypatch):
    single = {**ATTACK, "batch_size": 1}  # one clip per batch: a crash after the first leaves the rest undone
    call_command("generate_samples", method="l2", strategy="ab", **single)
    reference = {s.clip_id: bytes(s.adversarial) for s in AdversarialSample.objects.all()}
    GenerationRun.objects.all().delete()

    real = generation.attack_in_batches

    def crash_after_first_batch(*args, on_batch, **kwargs):
        def store_then_crash(b, idx, result):
            on_batch(b, idx, result)
            raise RuntimeError("simulated crash")
        return real(*args, on_batch=store_then_crash, **kwargs)

    monkeypatch.setattr(generation, "attack_in_batches", crash_after_first_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        call_command("generate_samples", method="l2", strategy="ab", **single)
    partial = AdversarialSample.objects.count()
    assert len(reference) >= 2 and partial == 1
    assert GenerationRun.objects.get().status == "running"
    monkeypatch.setattr(generation, "attack_in_batches", real)
    call_command("generate_samples", method="l2", strategy="ab", **single)
    assert GenerationRun.objects.count() == 1
    resumed = {s.clip_id: bytes(s.adversarial) for s in AdversarialSample.objects.all()}
    assert resumed.keys() == reference.keys()
    assert resumed == reference


def test_sa_never_targets_the_true_label(trained):
    call_command("generate_samples", method="smart", strategy="sa", **ATTACK)
    samples = AdversarialSample.objects.filter(strategy="sa")
    assert samples.exists()
    for s in samples:
        assert s.target is not None and s.target != s.label
        assert s.success == (s.label_after == s.target)


def test_sa_with_a_fixed_target_skips_that_class(trained):
    call_command("generate_samples", method="smart", strategy="sa", target="1", **ATTACK)
    run = GenerationRun.objects.get()
    rec = Recognizer.objects.get(name="tiny")
    test_labels = [c.label for c in rec.split.dataset.clips.filter(index__in=rec.split.test)]
    assert run.total == len(test_labels)
    assert run.skipped >= test_labels.count(1)  # clips of the target class are never attacked
    assert run.samples.count() == run.total - run.skipped
    assert not run.samples.filter(label=1).exists()
    assert set(run.samples.values_list("target", flat=True)) <= {1}


def test_abn_success_means_label_outside_top_n(trained):
    call_command("generate_samples", method="smart", strategy="abn", top_n=2, **ATTACK)
    for s in AdversarialSample.objects.filter(strategy="abn"):
        top2 = np.argsort(-np.array(s.probs_after), kind="stable")[:2]
        assert s.success == (s.label not in top2)


def test_transfer_and_export(trained, tmp_path):
    call_command("generate_samples", method="iaa", strategy="ab", transfer_to=["other"],
                 option=["epsilon=0.05", "step_size=0.01"], **ATTACK)
    samples = AdversarialSample.objects.all()
    assert TransferResult.objects.count() == samples.count()
    for t in TransferResult.objects.select_related("sample"):
        assert t.success == (t.label_after != t.sample.label)
    assert AdversarialSample.objects.matching(["tiny"], ["iaa"], ["ab"]).count() == samples.count()
    assert not AdversarialSample.objects.matching(["other"]).exists()
    assert not AdversarialSample.objects.matching(methods=["smart"]).exists()
    call_command("transfer_samples", to=["other"])  # judged already: nothing new
    assert TransferResult.objects.count() == samples.count()
    out = tmp_path / "samples.npz"
    call_command("export_samples", str(out), method=["iaa"])
    z = np.load(out)
    n = samples.count()
    assert z["original"].shape == z["adversarial"].shape == (n, 1, 24, 25, 3)
    assert list(z["method"]) == ["iaa"] * n and z["success"].dtype == bool
    # IAA keeps every joint inside its L-infinity budget (rigid transforms preserve the max-norm
    # only per axis up to rotation, so compare in the norm that rotation preserves: ||d||2 <= sqrt(3) eps).
    d = np.linalg.norm(z["adversarial"] - z["original"], axis=-1)
    assert d.max() <= np.sqrt(3) * 0.05 + 1e-4


def test_bad_arguments_are_refused(trained):
    with pytest.raises(CommandError, match="invalid option for smart"):
        call_command("generate_samples", method="smart", option=["nonsense=1"], **ATTACK)
    with pytest.raises(CommandError, match="only applies to strategy sa"):
        call_command("generate_samples", method="smart", strategy="ab", target="1", **ATTACK)
    with pytest.raises(CommandError, match="no recognizer named"):
        call_command("generate_samples", method="smart", **{**ATTACK, "recognizer": "nope"})
    with pytest.raises(CommandError, match="no samples match"):
        call_command("export_samples", "/tmp/none.npz", method=["ciasa"])


def test_engine_version_is_part_of_a_runs_identity(trained, monkeypatch):
    """After a change of defaults (a new ENGINE_VERSION) the same command starts a new run
    rather than completing an old one with samples of another definition."""
    recognizer = Recognizer.objects.get(name="tiny")
    config = generation.generation_config("smart", "ab", iterations=2, limit=1)
    assert config["engine"] == generation.ENGINE_VERSION
    first = generation.open_run(recognizer, config)
    assert generation.open_run(recognizer, generation.generation_config("smart", "ab", iterations=2, limit=1)) == first
    monkeypatch.setattr(generation, "ENGINE_VERSION", generation.ENGINE_VERSION + 1)
    upgraded = generation.generation_config("smart", "ab", iterations=2, limit=1)
    assert GenerationRun.hash_config(upgraded) != first.config_hash
    assert generation.open_run(recognizer, upgraded) != first


def test_the_preset_and_its_version_are_part_of_the_run(trained):
    from attacks.core.methods.smart import DEFAULT_PRESET, PRESET_VERSIONS

    call_command("generate_samples", method="smart", strategy="ab", **{**ATTACK, "iterations": 3})
    call_command("generate_samples", method="smart", strategy="ab", preset="balanced", **{**ATTACK, "iterations": 3})
    default, other = (GenerationRun.objects.get(config__preset__name=name) for name in (DEFAULT_PRESET, "balanced"))
    assert DEFAULT_PRESET != "balanced" and default.pk != other.pk
    assert other.config["preset"] == {"name": "balanced", "version": PRESET_VERSIONS["balanced"]}
    assert "preset" not in other.config["options"]
    with pytest.raises(CommandError, match="preset"):
        call_command("generate_samples", method="iaa", strategy="ab", preset="authors", **ATTACK)


def test_the_prepare_hook_runs_once_per_run_in_process_and_queued(trained, monkeypatch, settings):
    """The method's prepare hook (CIASA: angle box and discriminator) runs once per run,
    in `prepare_run`, whether the run is attacked in-process or queued as shards; the
    shards load its stored state and store the in-process samples."""
    from attacks import tasks
    from attacks.core.methods import REGISTRY

    calls = []
    real = REGISTRY["ciasa"].prepare

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(REGISTRY["ciasa"], "prepare", counting)
    ciasa = {**ATTACK, "method": "ciasa", "iterations": 4, "batch_size": 2,
             "option": ["gan_weight=0.5", "discriminator_steps=4", "discriminator_rounds=2",
                        "discriminator_attack_steps=2", "epsilon=0.02", "step_size=0.005"]}
    call_command("generate_samples", **ciasa)
    assert len(calls) == 1
    run = GenerationRun.objects.get()
    reference = {s.clip_id: (bytes(s.adversarial), s.iterations) for s in run.samples.all()}
    assert len(reference) >= 3  # more than one batch
    run.delete()

    calls.clear()
    sent = []
    monkeypatch.setattr(tasks.attack_shard, "apply_async", lambda args, queue=None: sent.append(args))
    settings.GENERATION_DEVICE = "cpu"
    call_command("generate_samples", queue=True, shard_size=2, **ciasa)
    assert len(calls) == 1 and len(sent) >= 2
    for args in sent:  # each shard as a worker runs it, here in this process
        assert tasks.attack_shard(*args).startswith("stored")
    assert len(calls) == 1
    run = GenerationRun.objects.get()
    assert run.status == "done"
    assert {s.clip_id: (bytes(s.adversarial), s.iterations) for s in run.samples.all()} == reference


def test_a_run_decides_compilation_from_its_recognizers_measured_gain(trained, monkeypatch, settings):
    """generate_samples hands the recognizer's measured compile gain and the run's remaining
    clips to the numerics rule, so a long bf16 run compiles an ST-GCN and would not compile
    an unmeasured architecture; a Celery shard decides on the run's remaining clips (its
    worker keeps the compiled recognizer from shard to shard), not on its own few."""
    from attacks import tasks
    from attacks.core.methods import numerics
    from attacks.services import generation
    asked = []
    real = numerics.Numerics.for_run.__func__

    def spy(cls, precision, **kwargs):
        asked.append(kwargs)
        return real(cls, precision, **{**kwargs, "clips": 0} if "clips" in kwargs else kwargs)  # never compile here

    monkeypatch.setattr(generation.Numerics, "for_run", classmethod(spy))
    call_command("generate_samples", method="smart", strategy="ab", lr=0.02, **ATTACK)
    attacked = [a for a in asked if "clips" in a]  # the command's own call only checks the options
    assert attacked and all(a["compile_gain"] == compile_gain("stgcn") for a in attacked)
    assert real(numerics.Numerics, "bf16", clips=10**6, compile_gain=attacked[0]["compile_gain"]).compile
    run = GenerationRun.objects.get()
    assert attacked[0]["clips"] == run.total - run.skipped
    run.delete()

    asked.clear()
    sent = []
    monkeypatch.setattr(tasks.attack_shard, "apply_async", lambda args, queue=None: sent.append(args))
    settings.GENERATION_DEVICE = "cpu"
    call_command("generate_samples", method="smart", strategy="ab", lr=0.02, queue=True, shard_size=1,
                 **{**ATTACK, "batch_size": 1})  # one clip per shard
    run = GenerationRun.objects.get()
    assert len(sent) >= 2
    for args in sent:  # each shard as a worker runs it, here in this process
        tasks.attack_shard(*args)
    shards = [a["clips"] for a in asked if "clips" in a]
    assert len(shards) == len(sent) and shards[0] == run.total - run.skipped  # not the shard's one clip
    assert shards == sorted(shards, reverse=True)  # what is left of the run, shard after shard
