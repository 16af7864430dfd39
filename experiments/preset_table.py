"""SMART's presets against each other and against their ablations, on whole test splits.

For every recognizer, preset (`attacks.core.methods.smart.PRESETS`) and method (smart, l2,
l2-acc, l2-bone), one AB run with the paper's budget (300 iterations) through
`generate_samples`, so the runs are the ones the command stores and reports reuse. Prints
two tables per recognizer:

* every preset × method: success after storage (the stored sample fed back through the
  recognizer's own preprocessing) and in the attack loop, mean iterations to success, and
  over each run's own successes the mean joint displacement and bone-length error (mm)
  and the acceleration deviation (m/s², each clip at its own frame rate);
* SMART against each ablation of the same preset, pairwise over the clips both fooled
  (never an intersection over all methods), with the count.

    python experiments/preset_table.py --recognizer gtu-stgcn gtu-agcn --out var/experiments/presets
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
from attacks.core.methods.smart import PRESETS  # noqa: E402
from attacks.models import Recognizer  # noqa: E402
from attacks.core.reporting.rendering import markdown_table  # noqa: E402

METHODS = ("smart", "l2", "l2-acc", "l2-bone")
COLUMNS = ("clip_id", "success", "attack_success", "iterations", "mean_displacement", "bone_length_error",
           "acceleration_deviation")


def main(argv=None) -> int:
    args = _parse(argv)
    for name in args.recognizer:
        recognizer = Recognizer.objects.select_related("dataset", "split").get(name=name)
        samples = {}
        for preset in args.presets:
            for method in METHODS:
                config = generation_config(method, "ab", iterations=args.iterations, limit=args.limit,
                                           seed=args.seed, preset=preset)
                print(f"== {name}: {preset} {method}", flush=True)
                run = generate_samples(recognizer, config, batch_size=args.batch_size, device=args.device,
                                       progress=not args.no_progress).run
                samples[(preset, method)] = pd.DataFrame(run.samples.values(*COLUMNS))
        overview, pairs = overview_table(samples), pairwise_table(samples)
        print(f"\n### {name}: presets x methods (AB, {args.iterations} iterations)\n")
        print(markdown_table(overview, digits=3))
        print(f"\n### {name}: SMART against each ablation of its preset, over the clips both fooled\n")
        print(markdown_table(pairs, digits=3))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            overview.to_csv(args.out / f"{name}-presets.csv", index=False)
            pairs.to_csv(args.out / f"{name}-pairwise.csv", index=False)
    return 0


def overview_table(samples: dict) -> pd.DataFrame:
    rows = []
    for (preset, method), s in samples.items():
        ok = s[s["success"]]
        rows.append({"preset": preset, "method": method, "attacked": len(s),
                     "success_after_storage": ok.shape[0] / len(s) if len(s) else float("nan"),
                     "success_in_loop": s["attack_success"].fillna(False).astype(bool).mean() if len(s) else float("nan"),
                     "iterations": ok["iterations"].mean(), **_means(ok)})
    return pd.DataFrame(rows)


def pairwise_table(samples: dict) -> pd.DataFrame:
    rows = []
    for (preset, method), s in samples.items():
        if method == "smart" or (preset, "smart") not in samples:
            continue
        smart = samples[(preset, "smart")]
        both = set(smart.loc[smart["success"], "clip_id"]) & set(s.loc[s["success"], "clip_id"])
        a, b = (x[x["clip_id"].isin(both)] for x in (smart, s))
        row = {"preset": preset, "compared": f"smart vs {method}", "clips both fooled": len(both)}
        for key, value in _means(a).items():
            row[f"{key} (smart / other)"] = f"{value:.2f} / {_means(b)[key]:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def _means(rows: pd.DataFrame) -> dict:
    return {"displacement_mm": 1000 * rows["mean_displacement"].mean(),
            "bone_error_mm": 1000 * rows["bone_length_error"].mean(),
            "acceleration_dev_m_s2": rows["acceleration_deviation"].mean()}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recognizer", nargs="+", required=True)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--limit", type=int, help="Only the first N test clips (a quick check)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
