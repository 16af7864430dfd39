import numpy as np
from django.core.management.base import BaseCommand, CommandError

from attacks.models import AdversarialSample

from attacks.management.commands._options import add_list_option, split_values


class Command(BaseCommand):
    help = ("Write adversarial samples to .npz: original, adversarial (N, M, T, V, 3), label, adversarial_label, "
            "success, method, strategy, recognizer, source, iterations.")

    def add_arguments(self, parser):
        parser.add_argument("out")
        # One value per flag (repeatable, or comma-separated): `--method smart --strategy ab OUT.npz`
        # must leave OUT.npz to the positional, which nargs="*" swallowed.
        add_list_option(parser, "--recognizer", help="Only samples made on these recognizers")
        add_list_option(parser, "--method", help="Only samples of these methods")
        add_list_option(parser, "--strategy", help="Only samples of these strategies (ab, abn, sa)")
        add_list_option(parser, "--run", type=int, help="Only samples of these generation runs (ids)")
        parser.add_argument("--successful", action="store_true", help="Only samples that fooled the recognizer")

    def handle(self, *args, **o):
        filters = [split_values(o[key], type, f"--{key}") or [] for key, type in
                   (("recognizer", str), ("method", str), ("strategy", str), ("run", int))]
        qs = AdversarialSample.objects.matching(*filters) \
            .select_related("recognizer", "clip").order_by("run_id", "clip__index")
        if o["successful"]:
            qs = qs.filter(success=True)
        samples = list(qs)
        if not samples:
            raise CommandError("no samples match these filters")
        m = max(s.num_persons for s in samples)
        t = max(s.num_frames for s in samples)
        v = samples[0].num_joints
        if any(s.num_joints != v for s in samples):
            raise CommandError("the samples come from skeletons with different joint counts; filter by recognizer")
        original = np.zeros((len(samples), m, t, v, 3), np.float32)
        adversarial = np.zeros_like(original)
        for i, s in enumerate(samples):
            original[i, : s.num_persons, : s.num_frames] = s.original_motion()
            adversarial[i, : s.num_persons, : s.num_frames] = s.adversarial_motion()
        np.savez_compressed(
            o["out"], original=original, adversarial=adversarial,
            lengths=np.array([s.num_frames for s in samples]), fps=np.array([s.fps for s in samples]),
            label=np.array([s.label for s in samples]), adversarial_label=np.array([s.label_after for s in samples]),
            success=np.array([s.success for s in samples]), method=np.array([s.method for s in samples]),
            strategy=np.array([s.strategy for s in samples]), recognizer=np.array([s.recognizer.name for s in samples]),
            source=np.array([s.clip.source for s in samples]), iterations=np.array([s.iterations for s in samples]))
        self.stdout.write(self.style.SUCCESS(f"wrote {len(samples)} samples to {o['out']}"))
