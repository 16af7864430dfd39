"""Peak memory of import, one training epoch and one generation pass, at two dataset sizes.

Synthetic clips of NTU RGB+D's size at the `ntu` protocol (300 frames, 2 persons, 25
joints; the synthetic reader makes one performer, the protocol pads the second person
with zeros, as for most NTU clips) are imported into a fresh SQLite database at each size.
Every step runs in a fresh subprocess, which reports its own peak resident memory
(`resource.getrusage(...).ru_maxrss`) beside a bare process that has only loaded Django and
torch (the `baseline` row), so the difference is what the step itself needed:

- `import`: `import_dataset synthetic ... --protocol ntu` (clips/s; the import holds one
  file's clips at a time, and the synthetic reader makes one file per class, so at a
  fixed number of classes this step grows with the dataset: NTU's reader has a file per clip);
- `cache`: the first read of the dataset, which writes its clip cache (`attacks.services.clip_cache`);
- `train epoch`: `train_recognizer --epochs 1` (ST-GCN at a reduced width: streamed
  batches, validation, then train/validation/test accuracy);
- `generation`: `generate_samples` over the training split (the largest; SMART, a few
  iterations: the clips the one-epoch recognizer gets right are attacked);
- `... in memory`: the same epoch and pass with the whole split stacked in memory (what
  training and generation did before the cache), at the small size (`--in-memory both`:
  at both).

    python benchmarks/dataset_memory.py                   # two sizes, a few minutes on 2 cores
    python benchmarks/dataset_memory.py --clips 5000 50000
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def child(step: str, args) -> dict:
    """One step in this (fresh) process; returns what it measured."""
    os.environ["DATA_DIR"] = args.data_dir
    os.environ["DATABASE_URL"] = f"sqlite:///{args.data_dir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")
    sys.path.insert(0, str(ROOT))
    import django
    import torch

    torch.set_num_threads(args.threads)
    django.setup()
    from django.core.management import call_command

    name, out = f"syn{args.n}", {}
    start = time.perf_counter()
    if step == "import":
        call_command("migrate", verbosity=0)
        per_class = -(-args.n // args.classes)
        call_command("import_dataset", "synthetic", f"classes={args.classes},clips={per_class},frames={args.frames},"
                     "seed=0", name=name, protocol="ntu", protocol_option=[f"frames={args.frames}", "persons=2"],
                     no_progress=True,
                     stdout=open(os.devnull, "w"))
        from attacks.models import Dataset
        out["clips"] = Dataset.objects.get(name=name).clips.count()
    elif step == "cache":
        from attacks.services import clip_cache
        from attacks.models import Dataset
        out["clips"] = len(clip_cache.clip_cache(Dataset.objects.get(name=name)))
    elif step == "train":
        call_command("train_recognizer", dataset=name, arch="stgcn", name=f"{name}-stgcn", epochs=1,
                     width=args.width, batch_size=16, no_progress=True, stdout=open(os.devnull, "w"))
        from attacks.models import Recognizer
        out["clips"] = len(Recognizer.objects.get(name=f"{name}-stgcn").split.train)
    elif step == "generate":
        call_command("generate_samples", recognizer=f"{name}-stgcn", method="smart", strategy="ab",
                     iterations=args.iterations, batch_size=16, split="train", no_progress=True,
                     stdout=open(os.devnull, "w"))
        from attacks.models import GenerationRun
        run = GenerationRun.objects.get(recognizer__name=f"{name}-stgcn")
        out["clips"], out["attacked"] = run.total, run.samples.count()
    elif step in ("train-memory", "generate-memory"):
        out.update(_in_memory(step, name, args))
    elif step != "baseline":
        raise SystemExit(f"unknown step {step}")
    out["seconds"] = time.perf_counter() - start
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _in_memory(step, name, args) -> dict:
    """The paths before the cache: every clip of the split part as Clip rows, then one stacked array."""
    import numpy as np

    from attacks.core.data import protocol_view
    from attacks.core.training.evaluation import predict
    from attacks.core.methods import attack_in_batches
    from attacks.models import Recognizer
    from attacks.services.recognition import load_model, model_inputs, split_clips
    from attacks.core.recognizers import build_recognizer
    from attacks.core.training.loop import train

    record = Recognizer.objects.get(name=f"{name}-stgcn")
    dataset, spec, skeleton = record.dataset, record.input_spec, record.dataset.get_skeleton()
    parts = ("train", "val", "test") if step == "train-memory" else ("train",)
    data = {}
    for part in parts:
        clips = split_clips(record.split, part)
        data[part] = (model_inputs(clips, skeleton, spec, dataset.fps, dataset.protocol),
                      np.array([c.label for c in clips]))
    if step == "train-memory":
        model = build_recognizer("stgcn", skeleton, dataset.num_classes, num_persons=spec["num_persons"],
                                 num_frames=spec["num_frames"], width=args.width)
        train(model, (data["train"][0].X, data["train"][1]), (data["val"][0].X, data["val"][1]), epochs=1,
              batch_size=16, progress=False, **{k: v for k, v in record.hyperparameters.items()
                                                  if k in ("lr", "optimizer", "weight_decay", "seed")})
        for part in parts:
            predict(model, data[part][0].X)
        return {"clips": len(data["train"][1])}
    inputs, labels = data["train"]
    model = load_model(record)
    keep = np.flatnonzero(predict(model, inputs.X).argmax(1) == labels)
    if len(keep):
        attack_in_batches(model, inputs.world[keep], labels[keep], skeleton, batch_size=16, fps=inputs.fps[keep],
                          show_progress=False, iterations=args.iterations, method="smart", strategy="ab",
                          preprocess=lambda x: protocol_view.normalise(x, dataset.protocol, skeleton))
    return {"clips": len(labels), "attacked": len(keep)}


def measure(step, n, data_dir, args) -> dict:
    command = [sys.executable, __file__, "--child", step, "--n", str(n), "--data-dir", str(data_dir),
               "--width", str(args.width), "--iterations", str(args.iterations), "--threads", str(args.threads),
               "--frames", str(args.frames), "--classes", str(args.classes)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{step} at {n} clips failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs=2, default=[200, 800], metavar=("SMALL", "LARGE"),
                        help="dataset sizes (rounded up to whole classes)")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (NTU's protocol: 300)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--width", type=int, default=4, help="ST-GCN base width of the training epoch")
    parser.add_argument("--iterations", type=int, default=2, help="SMART iterations of the generation pass")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--in-memory", choices=["small", "both", "none"], default="small",
                        help="at which sizes to measure the in-memory paths too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return

    rows = []
    for size, n in zip(("small", "large"), args.clips):
        with tempfile.TemporaryDirectory(prefix="dataset-memory-") as tmp:
            steps = ["baseline", "import", "cache", "train", "generate"]
            if args.in_memory == "both" or args.in_memory == size:
                steps += ["train-memory", "generate-memory"]
            for step in steps:
                rows.append((n, step, measure(step, n, tmp, args)))
                print(f"  {n} clips: {step} done in {rows[-1][2]['seconds']:.1f} s", file=sys.stderr, flush=True)

    print(f"synthetic clips of {args.frames} frames x 2 persons x 25 joints (float32), SQLite; ST-GCN width "
          f"{args.width} (reduced) for the epoch; SMART AB, {args.iterations} iterations, for generation; "
          f"{args.threads} threads")
    labels = {"baseline": "baseline (django + torch)", "import": "import", "cache": "cache (first read)",
              "train": "train epoch (streamed)", "generate": "generation (streamed)",
              "train-memory": "train epoch (in memory)", "generate-memory": "generation (in memory)"}
    print(f"{'dataset':>8s}  {'step':26s} {'clips':>7s} {'seconds':>8s} {'clips/s':>8s} {'peak MiB':>9s} "
          f"{'over baseline':>13s}")
    baseline = {}
    for n, step, m in rows:
        if step == "baseline":
            baseline[n] = m["peak_mib"]
        clips = m.get("clips", n if step == "baseline" else 0)
        rate = f"{clips / m['seconds']:8.1f}" if step == "import" else f"{'':8s}"
        extra = f" ({m['attacked']} attacked)" if "attacked" in m else ""
        print(f"{n:8d}  {labels[step]:26s} {clips:7d} {m['seconds']:8.1f} {rate} {m['peak_mib']:9.0f} "
              f"{m['peak_mib'] - baseline[n]:13.0f}{extra}")


if __name__ == "__main__":
    main()
