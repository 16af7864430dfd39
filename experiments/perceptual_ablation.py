"""SMART against its perceptual-loss ablations (l2, l2-acc, l2-bone) at matched success.

Why a sweep: with the gradient balancing SMART uses (`attacks/core/methods/smart.py`), each
loss's gradient is scaled to unit norm per frame before the two are mixed with w and
1 − w. For `l2` the perceptual gradient points straight back along the perturbation, so
at the paper's w = 0.4 it outweighs the classification gradient and the attack rarely
gets anywhere; comparing naturalness at w = 0.4 would compare a success with a failure.
So every loss is run at several classification weights w (AB strategy, same lr and
budget), and each ablation is compared with SMART at the paper's w at the smallest w
whose success rate reaches SMART's. The metrics are averaged over the clips both runs
fooled, so the two means describe the same motions.

Every run goes through `generate_samples` and is stored (resumable: run the script again
and it continues), so the samples can also be shown in a study or exported.

    python experiments/perceptual_ablation.py --recognizer gtu-stgcn
    python experiments/perceptual_ablation.py --recognizer gtu-stgcn --weights 0.4 0.6 0.8 --limit 40
    python experiments/perceptual_ablation.py --recognizer gtu-stgcn --smart-variant gamma25:spine_weight=1,other_weight=0.5
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")

import django  # noqa: E402

django.setup()

import pandas as pd  # noqa: E402

from attacks.services.generation import generate_samples, generation_config  # noqa: E402
from attacks.core.methods import method_config  # noqa: E402
from attacks.models import Recognizer  # noqa: E402
from attacks.core.reporting.rendering import markdown_table  # noqa: E402
from attacks.management.commands._options import parse_key_values  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402

ABLATIONS = ("l2", "l2-acc", "l2-bone")
PAPER_W = method_config("smart").w  # the default preset's classification weight
METRICS = {"mean_displacement": 1000, "bone_length_error": 1000, "velocity_deviation": 1000,
           "acceleration_deviation": 1000, "jerk_deviation": 1000}  # metres -> millimetres


def main(argv=None) -> int:
    args = _parse(argv)
    recognizer = Recognizer.objects.select_related("dataset", "split").get(name=args.recognizer)
    samples = {}
    for method in ("smart", *ABLATIONS):
        for w in ([PAPER_W] if method == "smart" and not args.sweep_smart else args.weights):
            # The default preset's weight is the default configuration: no option, so the run is the
            # same one `generate_samples --method smart|l2|...` stores.
            options = {} if w == PAPER_W else {"w": w}
            config = generation_config(method, "ab", iterations=args.iterations, limit=args.limit,
                                       seed=args.seed, options=options)
            print(f"== {method} w={w}", flush=True)
            run = generate_samples(recognizer, config, batch_size=args.batch_size, device=args.device,
                                   progress=not args.no_progress).run
            samples[(method, w)] = pd.DataFrame(run.samples.values("clip_id", "success", "iterations", *METRICS))

    for label, options in args.smart_variant:
        config = generation_config("smart", "ab", iterations=args.iterations, limit=args.limit, seed=args.seed,
                                   options=options)
        print(f"== smart[{label}] w={PAPER_W}", flush=True)
        run = generate_samples(recognizer, config, batch_size=args.batch_size, device=args.device,
                               progress=not args.no_progress).run
        samples[(f"smart[{label}]", PAPER_W)] = pd.DataFrame(
            run.samples.values("clip_id", "success", "iterations", *METRICS))

    sweep = sweep_table(samples)
    print(f"\n### All runs on {recognizer.name} (AB, metrics over each run's own successes, mm)\n")
    print(markdown_table(sweep, digits=3))
    matched = matched_table(samples)
    print(f"\n### Matched success: each ablation at the smallest w reaching SMART's success (w = {PAPER_W}); "
          "means over the clips both fooled, mm\n")
    print(markdown_table(matched, digits=3))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        sweep.to_csv(args.out / "sweep.csv", index=False)
        matched.to_csv(args.out / "matched.csv", index=False)
        print(f"\nCSV in {args.out}")
    return 0


def sweep_table(samples: dict) -> pd.DataFrame:
    rows = []
    for (method, w), s in samples.items():
        ok = s[s["success"]]
        rows.append({"method": method, "w": w, "attacked": len(s), "succeeded": len(ok),
                     "success_rate": len(ok) / len(s) if len(s) else float("nan"),
                     "iterations": ok["iterations"].mean(), **_means(ok)})
    return pd.DataFrame(rows)


def matched_table(samples: dict) -> pd.DataFrame:
    smart = samples[("smart", PAPER_W)]
    smart_ok = smart[smart["success"]]
    target = len(smart_ok) / len(smart) if len(smart) else 1.0
    rows = []
    for method in ABLATIONS:
        runs = sorted((w, s) for (m, w), s in samples.items() if m == method)
        reached = [(w, s) for w, s in runs if len(s) and s["success"].mean() >= target]
        if not reached:  # none matches: the closest is the best it did
            reached = [max(runs, key=lambda ws: ws[1]["success"].mean())]
        w, s = reached[0]
        ok = s[s["success"]]
        common = set(ok["clip_id"]) & set(smart_ok["clip_id"])
        a = smart_ok[smart_ok["clip_id"].isin(common)]
        b = ok[ok["clip_id"].isin(common)]
        row = {"ablation": method, "w": w, "success": s["success"].mean(), "smart_success": target,
               "common_clips": len(common)}
        for metric, scale in METRICS.items():
            short = metric.replace("_deviation", "").replace("_error", "").replace("mean_", "")
            row[f"{short}: SMART"] = a[metric].mean() * scale
            row[f"{short}: ablation"] = b[metric].mean() * scale
        rows.append(row)
    return pd.DataFrame(rows)


def _means(rows: pd.DataFrame) -> dict:
    return {m: rows[m].mean() * scale for m, scale in METRICS.items()}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recognizer", required=True)
    p.add_argument("--weights", type=float, nargs="+", default=[0.4, 0.5, 0.6, 0.7, 0.8],
                   help="Classification weights w tried for the ablations")
    p.add_argument("--sweep-smart", action="store_true", help="Run SMART at every w as well")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--limit", type=int, help="Only the first N test clips")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="Folder for sweep.csv and matched.csv")
    p.add_argument("--smart-variant", type=_variant, action="append", default=[], metavar="LABEL:KEY=VALUE,...",
                   help="Also run SMART with these options, e.g. gamma25:spine_weight=1.0,other_weight=0.5")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _variant(text: str):
    """LABEL:KEY=VALUE,... with values read as JSON where they parse (numbers, true/false),
    exactly as `generate_samples --option` reads them."""
    label, sep, items = text.partition(":")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL:KEY=VALUE,..., got {text!r}")
    try:
        return label, parse_key_values([item.strip() for item in items.split(",")], "--smart-variant")
    except CommandError as e:
        raise argparse.ArgumentTypeError(f"{e} in {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
