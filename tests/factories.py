"""Database fixtures for the studies tests: datasets, clips, recognizers, generation runs
and adversarial samples built directly (no training, no attack), plus studies.

Motions come from the synthetic generator when it is importable, otherwise from a
seeded random walk; attacked motions are the original plus a small seeded perturbation.
"""
from __future__ import annotations

import numpy as np

from attacks.models import AdversarialSample, Clip, Dataset, DatasetSplit, GenerationRun, Recognizer
from attacks.core.skeletons import get_skeleton

ALL_METHODS = ("smart", "l2", "l2-acc", "l2-bone", "iaa", "ciasa")


def motions(num_clips: int, num_frames: int, num_classes: int, seed: int, skeleton) -> tuple[list, list[int], list[str]]:
    """(motions (1, T, V, 3) float32, labels, class names)."""
    try:
        from attacks.core.data.readers.synthetic import ACTIONS, generate
        per_class = -(-num_clips // num_classes)
        clips = generate(skeleton, num_classes=num_classes, clips_per_class=per_class, num_frames=num_frames,
                         seed=seed)[:num_clips]
        names = [a[0] if isinstance(a, (tuple, list)) else getattr(a, "name", str(a)) for a in ACTIONS[:num_classes]]
        labels = [names.index(c.label) if isinstance(c.label, str) else int(c.label) for c in clips]
        return [c.motion.astype(np.float32) for c in clips], labels, names
    except ImportError:  # pragma: no cover - the generator is part of the project
        rng = np.random.default_rng(seed)
        v = len(skeleton.joints)
        base = rng.normal(0, 0.3, (num_clips, 1, 1, v, 3))
        walk = np.cumsum(rng.normal(0, 0.005, (num_clips, 1, num_frames, v, 3)), axis=2)
        names = [f"action {k}" for k in range(num_classes)]
        return list((base + walk).astype(np.float32)), [i % num_classes for i in range(num_clips)], names


def make_samples(dataset_name: str = "synth", num_clips: int = 6, methods=ALL_METHODS, num_frames: int = 30,
                 num_classes: int = 3, seed: int = 0, strategy: str = "ab", success: bool = True) -> Dataset:
    """A dataset with `num_clips` clips, one recognizer and one sample per clip and method."""
    skeleton = get_skeleton("ntu25")
    moves, labels, names = motions(num_clips, num_frames, num_classes, seed, skeleton)
    dataset = Dataset.objects.create(name=dataset_name, format="synthetic", source_path="tests", fps=30.0,
                                     skeleton=skeleton.to_dict(), class_names=names)
    clips = []
    for i, (m, y) in enumerate(zip(moves, labels)):
        clip = Clip(dataset=dataset, index=i, label=y, source=f"synthetic/{i}", num_persons=1,
                    num_frames=num_frames, num_joints=m.shape[2])
        clip.set_motion(m)
        clip.save()
        clips.append(clip)
    split = DatasetSplit.objects.create(dataset=dataset, name="all", method="fixture", train=[], val=[],
                                        test=list(range(num_clips)))
    recognizer = Recognizer.objects.create(name=f"{dataset_name}-stgcn", arch="stgcn", dataset=dataset, split=split,
                                           status="ready")
    rng = np.random.default_rng(seed + 1)
    for method in methods:
        config = {"method": method, "seed": seed}
        run = GenerationRun.objects.create(recognizer=recognizer, method=method, strategy=strategy, config=config,
                                           config_hash=GenerationRun.hash_config(config), status="done",
                                           total=num_clips)
        rows = []
        for clip, m, y in zip(clips, moves, labels):
            adv = (m + rng.normal(0, 0.004, m.shape)).astype(np.float32)
            after = (y + 1) % num_classes
            rows.append(AdversarialSample(
                run=run, clip=clip, recognizer=recognizer, method=method, strategy=strategy, fps=30.0,
                num_persons=1, num_frames=num_frames, num_joints=m.shape[2], original=m.tobytes(),
                adversarial=adv.tobytes(), label=y, label_before=y, label_after=after,
                probs_before=[1.0 if k == y else 0.0 for k in range(num_classes)],
                probs_after=[1.0 if k == after else 0.0 for k in range(num_classes)], success=success,
                iterations=10, mean_displacement=0.004, max_displacement=0.01, bone_length_error=0.001,
                velocity_deviation=0.0, acceleration_deviation=0.0, jerk_deviation=0.0))
        AdversarialSample.objects.bulk_create(rows)
    return dataset


def make_study(kind: str, slug: str | None = None, status: str = "open", **config):
    from studies.models import Study
    study = Study.objects.create(name=f"{kind} test", slug=slug or kind, kind=kind, configuration=config)
    if status == "open":
        from studies.assignment import open_study
        open_study(study)
    return study
