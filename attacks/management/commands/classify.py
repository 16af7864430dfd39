import json

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from attacks.evaluation import predict, top_k
from attacks.models import Recognizer
from attacks.recognition import RecognitionError, load_model, recognizer_inputs


class Command(BaseCommand):
    help = ("Classify the clips of an .npz file (export_dataset's or export_samples' format: 'clips', or "
            "'adversarial'/'original' with --key) with a trained recognizer, through its own preprocessing.")

    def add_arguments(self, parser):
        parser.add_argument("input", help=".npz with clips (N, M, T, V, 3) and optionally lengths")
        parser.add_argument("--recognizer", required=True)
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table")
        parser.add_argument("--top", type=int, default=5)
        parser.add_argument("--key", help="Array to classify (default: 'clips', else 'adversarial' as export_samples "
                                          "writes it; 'original' for the unattacked motions)")

    def handle(self, *args, **o):
        try:
            record = Recognizer.objects.select_related("dataset").get(name=o["recognizer"])
            model = load_model(record)
        except Recognizer.DoesNotExist:
            raise CommandError(f"no recognizer named {o['recognizer']!r}") from None
        except RecognitionError as e:
            raise CommandError(str(e)) from e
        motions = self._read(o["input"], record.dataset.get_skeleton().num_joints, o["key"])
        # World units (or already normalised) in; the recognizer's own protocol view out.
        probs = predict(model, recognizer_inputs(record, motions))
        names = record.dataset.class_names
        best = top_k(probs, o["top"])
        rows = [{"clip": i, "label": int(best[i, 0]), "class": names[best[i, 0]],
                 "top": [{"label": int(k), "class": names[k], "probability": float(probs[i, k])} for k in best[i]],
                 "probabilities": [float(p) for p in probs[i]]} for i in range(len(probs))]
        if o["json"]:
            self.stdout.write(json.dumps({"recognizer": record.name, "predictions": rows}, indent=1))
            return
        for r in rows:
            alts = ", ".join(f"{t['class']} {t['probability']:.2f}" for t in r["top"][1:])
            self.stdout.write(f"{r['clip']:5d}  {r['class']} ({r['top'][0]['probability']:.2f})  | {alts}")

    def _read(self, path, num_joints, key=None):
        try:
            z = np.load(path, allow_pickle=False)
            key = key or ("clips" if "clips" in z.files or "adversarial" not in z.files else "adversarial")
            if key not in z.files:
                raise CommandError(f"{path}: no array {key!r} (it holds {', '.join(z.files)})")
            clips = np.asarray(z[key], dtype=np.float32)
        except (OSError, ValueError) as e:
            raise CommandError(f"{path}: cannot read {key or 'clips'} ({e})") from None
        if clips.ndim != 5 or clips.shape[-1] != 3 or clips.shape[3] != num_joints:
            raise CommandError(f"{path}: {key!r} must be (N, M, T, {num_joints}, 3), got {clips.shape}")
        lengths = z["lengths"] if "lengths" in z.files else np.full(len(clips), clips.shape[2])
        return [c[:, : int(n)] for c, n in zip(clips, lengths)]
