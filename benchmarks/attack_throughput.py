"""Attack engine speed at the published widths: SMART per sample-iteration, each option side by side.

For each architecture (default ST-GCN, 2s-AGCN and MS-G3D at their published width, a
batch of 16 clips of 60 frames × 25 joints × 2 persons, 60 classes, random weights), one
process measures, in the same run:

- `reference loop`: what the public SMART ports do: the recognizer's weights left
  trainable, ``loss.backward()`` on the batch's summed loss (w·Lc + (1 − w)·Lp with the
  authors' perceptual loss), ``torch.optim.Adam`` on the motion;
- `floor (fwd+bwd)`: a bare loop of forward, cross-entropy and backward of the frozen
  recognizer to its input, float32 eager, with no perceptual loss and no update (meant as
  the floor; it measures slower than the engine's exact path, see README);
- `engine <options>`: `attacks.core.methods.attack` (SMART AB, the default preset) under each
  `Numerics` option (bf16 autocast, torch.compile, channels-last, and their combinations;
  CUDA graphs on CUDA).

Times are steady state: each configuration runs once for warm-up (compilation included;
its seconds are printed), then a run of `--iterations` more than a short run, and the
difference is divided by the extra sample-iterations, so fixed costs (the final float32
re-judging, set-up) cancel; the median of `--repeats` such estimates is printed. The ratio column is the reference loop's time over the row's.

`--end-to-end ARCH` also trains that architecture's CPU preset on GTU3DActions
(the `CPU_PRESET` its recognizer class declares, collected in
`attacks.core.training.loop.CPU_PRESETS`: the recognizers the README's experiments use), then
attacks its correctly classified test clips to success (budget 300) with the reference
loop (each batch until all of its samples succeed) and with the engine (exact, bf16,
bf16 compiled), and prints clips per second beside what each found: clips fooled,
sample-iterations, and the mean joint displacement and bone-length error of the fooled
samples.

    python benchmarks/attack_throughput.py                          # ST-GCN, 2s-AGCN, MS-G3D
    python benchmarks/attack_throughput.py --archs stgcn --variants exact bf16+compile
    python benchmarks/attack_throughput.py --end-to-end stgcn --archs
    python benchmarks/attack_throughput.py --device cuda
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attacks.core.methods.losses import perceptual_loss  # noqa: E402
from attacks.core.methods import attack, method_config  # noqa: E402
from attacks.core.methods.numerics import Numerics, bf16_supported  # noqa: E402
from attacks.core.motion import to_model_input  # noqa: E402
from attacks.core.recognizers import build_recognizer  # noqa: E402
from attacks.core.skeletons import get_skeleton  # noqa: E402

VARIANTS = {
    "exact": Numerics(),
    "bf16": Numerics(precision="bf16"),
    "compile": Numerics(compile=True),
    "channels-last": Numerics(channels_last=True),
    "bf16+channels-last": Numerics(precision="bf16", channels_last=True),
    "bf16+compile": Numerics(precision="bf16", compile=True),
    "bf16+compile+channels-last": Numerics(precision="bf16", compile=True, channels_last=True),
    "bf16+compile+cuda-graphs": Numerics(precision="bf16", compile=True, cuda_graphs=True),
}
FPS = 30.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["stgcn", "agcn", "msg3d"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="engine options to measure (default: every one the device supports)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--width", type=int, default=None, help="base width (default: published, 64)")
    parser.add_argument("--iterations", type=int, default=4, help="extra iterations of the long run")
    parser.add_argument("--repeats", type=int, default=3, help="estimates per row; the median is printed")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--end-to-end", nargs="*", default=[], metavar="ARCH",
                        help="also train these GTU3DActions CPU presets and attack their test clips to success")
    parser.add_argument("--gtu", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/gtu3dactions"))
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--train-epochs", type=int, help="--end-to-end: epochs instead of the preset's")
    parser.add_argument("--max-clips", type=int, help="--end-to-end: attack at most this many test clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    torch.set_num_threads(args.threads)
    variants = args.variants or [v for v in VARIANTS if supported(VARIANTS[v], args.device)]
    skeleton = get_skeleton("ntu25")

    rows = []
    for arch in args.archs:
        rows += measure_architecture(arch, skeleton, variants, args)
    if rows:
        print_iteration_table(rows, args)
    for arch in args.end_to_end:
        print_end_to_end(arch, end_to_end(arch, args), args)


def supported(numerics: Numerics, device: str) -> bool:
    if numerics.cuda_graphs and device != "cuda":
        return False
    return numerics.precision != "bf16" or bf16_supported(device)


# ---- per sample-iteration -------------------------------------------------------------------
def measure_architecture(arch, skeleton, variants, args) -> list[dict]:
    torch.manual_seed(args.seed)
    model = build_recognizer(arch, skeleton, args.classes, num_persons=2, num_frames=args.frames,
                             width=args.width).to(args.device).eval()
    g = torch.Generator().manual_seed(args.seed)
    motions = (torch.randn(args.batch, 2, args.frames, skeleton.num_joints, 3, generator=g) * 0.3).to(args.device)
    with torch.no_grad():
        labels = model(to_model_input(motions)).argmax(1)
    out = []

    def row(name, run):
        warm = timed(lambda: run(1), args.device)
        estimates = []
        for _ in range(args.repeats):
            short = timed(lambda: run(2), args.device)
            long = timed(lambda: run(2 + args.iterations), args.device)
            estimates.append((long - short) / (args.iterations * args.batch) * 1000)
        ms = float(np.median(estimates))
        out.append(dict(arch=arch, name=name, ms=ms, warm=warm))
        print(f"{arch:>6} {name:<28} {ms:8.1f} ms/sample-iteration (first call {warm:.1f} s)", flush=True)

    row("reference loop", lambda n: reference_loop(model, motions, labels, skeleton, n))
    row("floor (fwd+bwd)", lambda n: floor(model, motions, labels, n))
    for v in variants:
        row(f"engine {v}", lambda n, v=v: attack(model, motions, labels, skeleton, iterations=n, early_stop=False,
                                                 fps=FPS, numerics=VARIANTS[v]))
    return out


def reference_loop(model, motions, labels, skeleton, iterations, until_success=False, lr=0.01):
    """The public ports' loop: trainable weights, loss.backward(), torch Adam on the motion.
    Returns (adversarial motions, iterations run)."""
    cfg = method_config("smart")
    weights = dict(alpha=cfg.alpha, betas=cfg.betas, spine_weight=cfg.spine_weight, other_weight=cfg.other_weight,
                   gamma_on_squared=cfg.gamma_on_squared, dyn_reduction=cfg.dyn_reduction, acc_gamma=cfg.acc_gamma,
                   bone_reduction=cfg.bone_reduction, fps=cfg.fixed_fps or FPS)
    for p in model.parameters():
        p.requires_grad_(True)
    x = motions.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for it in range(iterations):
        logits = model(to_model_input(x))
        if until_success and bool((logits.argmax(1) != labels).all()):
            return x.detach(), it
        loss = cfg.w * -F.cross_entropy(logits, labels, reduction="sum") + (1 - cfg.w) * perceptual_loss(
            x, motions, skeleton, **weights).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return x.detach(), iterations


def floor(model, motions, labels, iterations):
    """Forward, cross-entropy, backward to the input; frozen weights, float32 eager. (It
    measured slower than the engine's exact attack, which does the same passes; not
    understood yet: README, *Attack engine speed*.)"""
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(iterations):
        x = motions.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(to_model_input(x)), labels, reduction="sum"), x)


def timed(f, device) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    f()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def print_iteration_table(rows, args):
    width = "published (64)" if args.width is None else args.width
    print()
    print(f"SMART AB per sample-iteration, width {width}, batch {args.batch}, {args.frames} frames × 25 joints × 2 "
          f"persons, {args.classes} classes, device {args.device}, {args.threads} CPU threads, "
          f"torch {torch.__version__}")
    print(f"{'arch':>6} | {'configuration':<32} | {'ms/sample-it':>12} | {'vs reference':>12} | {'first call s':>12}")
    for arch in dict.fromkeys(r["arch"] for r in rows):
        ref = next(r["ms"] for r in rows if r["arch"] == arch and r["name"] == "reference loop")
        for r in (r for r in rows if r["arch"] == arch):
            # At toy sizes timing noise can exceed the extra iterations' cost: no ratio then.
            ratio = f"{ref / r['ms']:11.2f}×" if r["ms"] > 0 and ref > 0 else f"{'n/a':>12}"
            print(f"{arch:>6} | {r['name']:<32} | {r['ms']:12.2f} | {ratio} | {r['warm']:12.2f}")


# ---- end to end -------------------------------------------------------------------------------
def end_to_end(arch, args) -> list[dict]:
    """Train the CPU preset on GTU3DActions, then attack the correctly classified test clips
    to success with the reference loop and with the engine (exact and fast)."""
    from attacks.core.data import preprocessing
    from attacks.core.training.evaluation import predict
    from attacks.core.data.splits import stratified_split
    from attacks.core.training.loop import CPU_PRESETS, split_preset, train

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from gtu_accuracy import load_gtu  # the experiment's own loader: same clips, labels, normalisation

    skeleton = get_skeleton("ntu25")
    motions, labels, class_names = load_gtu(args.gtu, skeleton)
    split = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=args.seed)
    model_kw, train_kw = split_preset(CPU_PRESETS[arch])
    if args.train_epochs:
        train_kw["epochs"] = args.train_epochs
    X = preprocessing.to_fixed_length(motions, model_kw["num_frames"], num_persons=1)  # (N, M, T, V, 3)
    torch.manual_seed(args.seed)
    model = build_recognizer(arch, skeleton, len(class_names), num_persons=1, **model_kw).to(args.device)
    started = time.perf_counter()
    train(model, (X[split["train"]], labels[split["train"]]), (X[split["val"]], labels[split["val"]]),
          device=args.device, seed=args.seed, progress=False, **train_kw)
    print(f"trained {arch} CPU preset in {time.perf_counter() - started:.0f} s", flush=True)
    test = split["test"]
    pred = predict(model, X[test], device=args.device).argmax(1)
    keep = test[pred == labels[test]][:args.max_clips]
    q = torch.as_tensor(X[keep]).float()
    y = torch.as_tensor(labels[keep]).long()
    out = []
    from attacks.core.methods.metrics import perceptual_metrics

    out = []
    for name in ["reference loop", "engine exact", "engine bf16", "engine bf16+compile"]:
        if "bf16" in name and not bf16_supported(args.device):
            continue
        done = its = 0
        adversarial, fooled = [], []
        start = time.perf_counter()
        for b in range(0, len(q), args.batch):
            xb, yb = q[b:b + args.batch].to(args.device), y[b:b + args.batch].to(args.device)
            if name == "reference loop":
                adv, n = reference_loop(model, xb, yb, skeleton, args.budget, until_success=True)
                with torch.no_grad():
                    ok = model(to_model_input(adv)).argmax(1) != yb
                its += n * len(xb)
            else:
                r = attack(model, xb, yb, skeleton, iterations=args.budget, fps=FPS,
                           numerics=VARIANTS[name.split()[1]])
                adv, ok = r.adversarial, r.success
                its += int(r.iterations.sum())
            done += int(ok.sum())
            adversarial.append(adv.cpu())
            fooled.append(ok.cpu())
        seconds = time.perf_counter() - start
        ok = torch.cat(fooled).numpy()
        metrics = perceptual_metrics(q.numpy(), torch.cat(adversarial).numpy(), skeleton, fps=FPS)
        cm = {k: 100 * float(np.mean(metrics[k][ok])) if ok.any() else float("nan")
              for k in ("mean_displacement", "bone_length_error")}
        out.append(dict(name=name, clips=len(q), success=done, seconds=seconds, iterations=its, **cm))
        print(f"{arch:>6} {name:<22} {len(q) / seconds:6.2f} clips/s, {done}/{len(q)} fooled", flush=True)
    return out


def print_end_to_end(arch, rows, args):
    print()
    print(f"SMART AB to success (budget {args.budget}), {arch} CPU preset trained on GTU3DActions, batch {args.batch}, "
          f"{args.threads} CPU threads; the reference loop runs each batch until all of it succeeds")
    print(f"{'configuration':<22} | {'clips':>5} | {'fooled':>6} | {'sample-its':>10} | {'s':>7} | {'clips/s':>7} | "
          f"{'vs reference':>12} | {'mean disp cm':>12} | {'bone err cm':>11}")
    ref = rows[0]["clips"] / rows[0]["seconds"]
    for r in rows:
        rate = r["clips"] / r["seconds"]
        print(f"{r['name']:<22} | {r['clips']:5d} | {r['success']:6d} | {r['iterations']:10d} | {r['seconds']:7.1f} | "
              f"{rate:7.2f} | {rate / ref:11.2f}× | {r['mean_displacement']:12.3f} | {r['bone_length_error']:11.3f}")


if __name__ == "__main__":
    main()
