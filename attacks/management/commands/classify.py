import json
import zipfile

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from attacks.core.training.evaluation import predict, top_k
from attacks.models import Recognizer
from attacks.core.errors import AttacksError
from attacks.services.recognition import load_model, recognizer_inputs


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
        except AttacksError as e:
            raise CommandError(str(e)) from e
        # World units (or already normalised) in; the recognizer's own protocol view out. Read and
        # classified CHUNK clips at a time (whole batches of `predict`: the same batches as at once).
        probs = np.concatenate([predict(model, recognizer_inputs(record, motions), batch_size=BATCH)
                                for motions in self._read(o["input"], record.dataset.get_skeleton().num_joints,
                                                          o["key"])])
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
        """Lists of motions, CHUNK clips at a time, cut to their lengths."""
        try:
            z = np.load(path, allow_pickle=False)
            key = key or ("clips" if "clips" in z.files or "adversarial" not in z.files else "adversarial")
            if key not in z.files:
                raise CommandError(f"{path}: no array {key!r} (it holds {', '.join(z.files)})")
            shape, chunks = npz_rows(path, key, CHUNK)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise CommandError(f"{path}: cannot read {key or 'clips'} ({e})") from None
        if len(shape) != 5 or shape[-1] != 3 or shape[3] != num_joints:
            raise CommandError(f"{path}: {key!r} must be (N, M, T, {num_joints}, 3), got {shape}")
        if not shape[0]:
            raise CommandError(f"{path}: {key!r} holds no clips")
        lengths = z["lengths"] if "lengths" in z.files else np.full(shape[0], shape[2])
        start = 0
        for clips in chunks:
            yield [c[:, : int(n)] for c, n in zip(clips, lengths[start:start + len(clips)])]
            start += len(clips)


BATCH = 64
CHUNK = 16 * BATCH  # clips in memory at once


def npz_rows(path, key, rows):
    """(shape, iterator of float32 arrays of up to `rows` leading rows) of array `key` in an .npz,
    read from the archive piece by piece (compressed or not), never the whole array at once."""
    archive = zipfile.ZipFile(path)
    member = archive.open(f"{key}.npy")
    version = np.lib.format.read_magic(member)
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                             else np.lib.format.read_array_header_2_0)(member)
    if fortran or dtype.hasobject:
        raise ValueError(f"array {key!r} is not a C-ordered numeric array")
    row_items = int(np.prod(shape[1:], dtype=np.int64))

    def chunks():
        with archive, member:
            for start in range(0, shape[0], rows):
                n = min(rows, shape[0] - start)
                data = member.read(n * row_items * dtype.itemsize)
                if len(data) != n * row_items * dtype.itemsize:
                    raise CommandError(f"{path}: array {key!r} is truncated")
                yield np.frombuffer(data, dtype=dtype).reshape(n, *shape[1:]).astype(np.float32)

    return shape, chunks()
