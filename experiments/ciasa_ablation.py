"""CIASA's GAN regulariser ablation at the calibrated budget (issue 13).

Finds the recognizer's calibrated CIASA run (`calibrate_budget`), keeps its ε and step,
and runs CIASA with each `gan_weight` (the calibrated run stands for its own weight), so
CIASA's result can be attributed: success (Wilson 95% interval), the largest coordinate
displacement of any stored sample (the effective L∞ budget, which the budget-keeping
step holds at ε), and mean perceptual metrics over each run's successes and over the
clips every weight fooled (mm; acceleration m/s²).

    python experiments/ciasa_ablation.py --recognizer gtu-stgcn --gan-weights 0 0.1 1
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from attacks.services.generation import generate_samples, generation_config  # noqa: E402
from attacks.core.methods import method_config  # noqa: E402
from attacks.models import GenerationRun, Recognizer  # noqa: E402
from attacks.core.reporting.protocol import wilson  # noqa: E402
from attacks.core.reporting.rendering import markdown_table  # noqa: E402

METRICS = {"mean_displacement": 1000, "bone_length_error": 1000, "acceleration_deviation": 1}


def main(argv=None) -> int:
    args = _parse(argv)
    recognizer = Recognizer.objects.get(name=args.recognizer)
    calibrated = [r for r in GenerationRun.objects.filter(recognizer=recognizer, method="ciasa", strategy="ab")
                  if "reference_run" in (r.calibration or {})]
    if not calibrated:
        print(f"{recognizer.name} has no calibrated CIASA run: run calibrate_budget --method ciasa first")
        return 1
    base = calibrated[0]
    options = dict(base.config["options"])
    own_weight = float(method_config("ciasa", **options).gan_weight)
    runs = {}
    for g in args.gan_weights:
        if abs(g - own_weight) < 1e-12:
            runs[g] = base
            continue
        config = generation_config("ciasa", "ab", iterations=base.config["iterations"], split=base.config["split"],
                                   limit=base.config["limit"], seed=base.config["seed"],
                                   margin=base.config.get("margin", 0.0), options={**options, "gan_weight": g})
        runs[g] = generate_samples(recognizer, config, batch_size=args.batch_size, device=args.device,
                                   progress=not args.no_progress).run
    samples = {g: list(r.samples.all()) for g, r in runs.items()}
    common = set.intersection(*({s.clip_id for s in ss if s.success} for ss in samples.values()))
    rows = []
    for g, ss in samples.items():
        k, n = sum(s.success for s in ss), len(ss)
        lo, hi = wilson(k, n)
        linf = max(float(np.abs(s.adversarial_motion() - s.original_motion()).max()) for s in ss)
        row = {"recognizer": recognizer.name, "gan_weight": g, "run_id": runs[g].pk,
               "epsilon": options.get("epsilon"), "step_size": options.get("step_size"),
               "succeeded": k, "attacked": n, "success_rate": k / n, "ci_low": lo, "ci_high": hi,
               "effective_linf_mm": 1000 * linf, "common_clips": len(common)}
        for m, scale in METRICS.items():
            ok = [getattr(s, m) for s in ss if s.success]
            both = [getattr(s, m) for s in ss if s.success and s.clip_id in common]
            row[f"{m}"] = scale * float(np.mean(ok)) if ok else np.nan
            row[f"{m}_common"] = scale * float(np.mean(both)) if both else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
    print(markdown_table(df))
    return 0


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recognizer", required=True)
    p.add_argument("--gan-weights", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
