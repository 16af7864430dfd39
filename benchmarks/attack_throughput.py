"""How much batching buys: SMART sample-iterations per second, batched vs one sample at a time.

For every architecture in `attacks.recognizers.ARCHITECTURES` that imports and builds
(the others are listed as skipped, with the reason), a randomly initialised recognizer of
reduced width is attacked with SMART (AB, early stopping off so every sample runs the full
budget) on a batch of random motions, once as one batch and once as a Python loop over
single samples. Throughput is sample-iterations per second; the ratio is batched / loop.

    python benchmarks/attack_throughput.py [--archs stgcn hrnn] [--iterations 5] [--device cpu]

The default run (2 iterations, width 6, 20 frames, a 3-sample loop) is sized to stay
within a few minutes on a 2-core CPU; CUDA is measured too when available unless
--device is given.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attacks.methods import attack  # noqa: E402
from attacks.recognizers import ARCHITECTURES, build_recognizer  # noqa: E402
from attacks.skeletons import get_skeleton  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), help="architectures to measure")
    parser.add_argument("--iterations", type=int, default=2, help="attack iterations per run")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the batched run")
    parser.add_argument("--loop-samples", type=int, default=3, help="samples attacked one at a time")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--width", type=int, default=6, help="recognizer base width")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cpu, and cuda if present")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    skeleton = get_skeleton("ntu25")
    rows, skipped = [], []
    for device in devices:
        for arch in args.archs:
            try:
                model = build_recognizer(arch, skeleton, args.classes, num_persons=2, num_frames=args.frames,
                                         width=args.width).to(device)
            except Exception as e:  # an architecture that is missing or will not build is reported, not fatal
                skipped.append((arch, device, f"{type(e).__name__}: {e}"))
                continue
            rows.append((arch, device, *measure(model, skeleton, args, device)))
            print(f"{arch:>8} {device:>5}: batched {rows[-1][2]:8.1f}  loop {rows[-1][3]:8.1f} sample-it/s",
                  flush=True)

    print()
    print(f"SMART throughput (sample-iterations/s), {args.iterations} iterations, batch {args.batch}, "
          f"loop over {args.loop_samples} samples, width {args.width}, {args.frames} frames, "
          f"{args.threads} CPU threads")
    print(f"{'arch':>8} {'device':>6} {'batched':>10} {'loop':>10} {'ratio':>7}")
    for arch, device, batched, loop in rows:
        print(f"{arch:>8} {device:>6} {batched:10.1f} {loop:10.1f} {batched / loop:7.1f}")
    for arch, device, reason in skipped:
        print(f"skipped {arch} on {device}: {reason}")


def measure(model, skeleton, args, device):
    """(batched, loop) sample-iterations per second for one recognizer."""
    g = torch.Generator().manual_seed(args.seed)
    motions = (torch.randn(args.batch, 2, args.frames, skeleton.num_joints, 3, generator=g) * 0.3).to(device)
    with torch.no_grad():
        model.eval()
        labels = model(motions.permute(0, 4, 2, 3, 1)).argmax(1)
    options = dict(method="smart", strategy="ab", early_stop=False, fps=30.0)
    attack(model, motions[:2], labels[:2], skeleton, iterations=1, **options)  # warm-up

    start = _now(device)
    attack(model, motions, labels, skeleton, iterations=args.iterations, **options)
    batched = args.batch * args.iterations / (_now(device) - start)

    n = min(args.loop_samples, args.batch)
    start = _now(device)
    for i in range(n):
        attack(model, motions[i:i + 1], labels[i:i + 1], skeleton, iterations=args.iterations, **options)
    loop = n * args.iterations / (_now(device) - start)
    return batched, loop


def _now(device):
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


if __name__ == "__main__":
    main()
