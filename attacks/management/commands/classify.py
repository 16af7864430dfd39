import json

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from attacks import preprocessing
from attacks.evaluation import predict, top_k
from attacks.models import Recognizer
from attacks.recognition import RecognitionError, load_model


class Command(BaseCommand):
    help = "Classify the clips of an .npz file in export_dataset's format with a trained recognizer."

    def add_arguments(self, parser):
        parser.add_argument("input", help=".npz with clips (N, M, T, V, 3) and optionally lengths")
        parser.add_argument("--recognizer", required=True)
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table")
        parser.add_argument("--top", type=int, default=5)

    def handle(self, *args, **o):
        try:
            record = Recognizer.objects.select_related("dataset").get(name=o["recognizer"])
            model = load_model(record)
        except Recognizer.DoesNotExist:
            raise CommandError(f"no recognizer named {o['recognizer']!r}") from None
        except RecognitionError as e:
            raise CommandError(str(e)) from e
        motions = self._read(o["input"], record.dataset.get_skeleton().num_joints)
        spec = record.input_spec
        skeleton = record.dataset.get_skeleton()
        if spec.get("normalise"):
            motions = [preprocessing.normalise_for_recognition(m, skeleton) for m in motions]
        X = preprocessing.to_fixed_length(motions, spec["num_frames"], spec["num_persons"])
        probs = predict(model, X)
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

    def _read(self, path, num_joints):
        try:
            z = np.load(path, allow_pickle=False)
            clips = np.asarray(z["clips"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as e:
            raise CommandError(f"{path}: cannot read clips ({e})") from None
        if clips.ndim != 5 or clips.shape[-1] != 3 or clips.shape[3] != num_joints:
            raise CommandError(f"{path}: 'clips' must be (N, M, T, {num_joints}, 3), got {clips.shape}")
        lengths = z["lengths"] if "lengths" in z.files else np.full(len(clips), clips.shape[2])
        return [c[:, : int(n)] for c, n in zip(clips, lengths)]
