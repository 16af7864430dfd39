"""How many samples per second each recognizer trains (and is attacked) at, per device.

Forward + backward (gradients to the parameters *and* to the input, as both training and
the attacks need) at the published width and at the reduced CPU width of each
recognizer's `CPU_PRESET` (`training.loop.CPU_PRESETS`), for batch 1 and a large batch in
the same run: the ratio column says how much batching buys, which decides how the attack
runner groups samples.

    python benchmarks/recognizer_throughput.py                       # CPU, every architecture
    python benchmarks/recognizer_throughput.py --device cuda --repeats 20
    python benchmarks/recognizer_throughput.py --archs stgcn sgn --widths reduced
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from attacks.core.recognizers import ARCHITECTURES, build_recognizer  # noqa: E402
from attacks.core.skeletons import get_skeleton  # noqa: E402
from attacks.core.training.loop import CPU_PRESETS, split_preset  # noqa: E402


def measure(arch: str, width, batch_size: int, *, device, skeleton, num_classes: int, num_frames: int,
            num_persons: int, repeats: int, max_seconds: float, extra_model_kwargs=None) -> dict:
    """Median seconds per forward+backward over up to `repeats` timed steps (after one warm-up)."""
    torch.manual_seed(0)
    model = build_recognizer(arch, skeleton, num_classes, num_persons=num_persons, num_frames=num_frames,
                             width=width, **(extra_model_kwargs or {})).to(device)
    model.train()
    x = torch.randn(batch_size, 3, num_frames, skeleton.num_joints, num_persons, device=device, requires_grad=True)
    y = torch.randint(0, num_classes, (batch_size,), device=device)

    def step():
        model.zero_grad(set_to_none=True)
        x.grad = None
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: allocator, cuDNN algorithm choice, lazy buffers
    times, started = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - started > max_seconds:
            break
    seconds = statistics.median(times)
    return {"arch": arch, "width": width, "params": sum(p.numel() for p in model.parameters()),
            "batch_size": batch_size, "seconds_per_step": seconds, "samples_per_s": batch_size / seconds,
            "timed_steps": len(times)}


def main(argv=None) -> int:
    args = _parse(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    elif device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    skeleton = get_skeleton(args.skeleton)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                f" ({torch.get_num_threads()} threads)")
          + f"; input (N, 3, {args.frames}, {skeleton.num_joints}, {args.persons}); forward+backward")
    print(f"\n| arch | width | params | batch 1 samples/s | batch {args.batch} samples/s | ratio |")
    print("|---|---|---|---|---|---|")
    rows = []
    for arch in args.archs:
        model_kwargs = split_preset(CPU_PRESETS.get(arch, {}))[0]
        reduced = model_kwargs.pop("width", None)
        model_kwargs.pop("num_frames", None)
        for label in args.widths:
            width = None if label == "full" else reduced
            kwargs = {} if label == "full" else model_kwargs
            try:
                small, large = (measure(arch, width, b, device=device, skeleton=skeleton, num_classes=args.classes,
                                        num_frames=args.frames, num_persons=args.persons, repeats=args.repeats,
                                        max_seconds=args.max_seconds, extra_model_kwargs=kwargs)
                                for b in (1, args.batch))
            except (ImportError, AttributeError) as exc:
                print(f"| {arch} | {label} | not available: {exc} | | | |")
                break
            ratio = large["samples_per_s"] / small["samples_per_s"]
            rows.append({"width_label": label, "batch1": small, "batchN": large, "ratio": ratio,
                         "device": str(device)})
            shown = "published" if width is None else str(width)
            print(f"| {arch} | {shown} | {small['params']:,} | {small['samples_per_s']:.1f} | "
                  f"{large['samples_per_s']:.1f} | {ratio:.1f}x |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=sorted(ARCHITECTURES))
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per measurement (median reported)")
    p.add_argument("--max-seconds", type=float, default=3.0, help="stop repeating a measurement after this long")
    p.add_argument("--widths", nargs="+", default=["full", "reduced"], choices=["full", "reduced"])
    p.add_argument("--batch", type=int, default=64, help="the large batch compared with batch 1")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--classes", type=int, default=60)
    p.add_argument("--skeleton", default="ntu25")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
