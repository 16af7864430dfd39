"""Budget calibration: IAA and CIASA tuned to a reference run's success, as the paper does.

The paper compares SMART with IAA and CIASA "after tuning IAA & CIASA to achieve similar
success rates" (Table 4): their success is governed by the L∞ clipping threshold ε.
`bisect_budget` (no Django) finds the smallest budget whose success rate reaches a goal,
by bisection on a log scale; `calibrate_budget` runs it against a stored reference run
(normally SMART AB on the same recognizer): every budget tried is a stored generation run
on the reference's clips (same split, limit, seed, strategy and iteration budget), the
step is tied to the budget (step_size = ε / ratio, the defaults' 1 cm / 1 mm), and the
chosen run records the calibration (`GenerationRun.calibration`), which the reports show
and prefer over the method's fixed-budget default.

`sweep_budget` stores runs at given values of any budget parameter (ε for IAA/CIASA, lr
for SMART) for the report's budget-sweep figure; calibration points appear there too.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from attacks.core.methods import REGISTRY

# Each method declares the option its success grows with (`registry.Method.budget`).
BUDGET_PARAMETER = {name: m.budget for m in REGISTRY if m.budget for name in m.names}


@dataclass
class BudgetPoint:
    value: float
    succeeded: int
    attacked: int
    run_id: int | None = None
    step_size: float | None = None

    @property
    def rate(self) -> float:
        return self.succeeded / self.attacked if self.attacked else float("nan")


@dataclass
class Calibration:
    goal: float  # the success rate a budget must reach (the reference's, minus the tolerance)
    chosen: BudgetPoint | None  # the smallest budget tried that reaches the goal (None: none did)
    points: list[BudgetPoint] = field(default_factory=list)  # in the order tried

    @property
    def reached(self) -> bool:
        return self.chosen is not None


def bisect_budget(evaluate: Callable[[float], BudgetPoint], goal: float, *, low: float, high: float,
                  precision: float = 0.05, max_evaluations: int = 12, max_high: float | None = None) -> Calibration:
    """Smallest budget in (low, high] (widened upwards ×4 at a time up to `max_high`) whose
    success rate reaches `goal`, to a relative `precision`, assuming success grows with the
    budget (bisection on log(budget); `low` is taken to fall short and never run).
    `evaluate(value)` returns that budget's BudgetPoint.

    Returns every point tried; `chosen` is the smallest tried budget reaching the goal (the
    upper end of the final bracket), None when even the largest tried does not.
    """
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got {low}, {high}")
    points: list[BudgetPoint] = []

    def run(value):
        p = evaluate(_round(value))
        points.append(p)
        return p

    def reaches(p):
        return p.rate >= goal - 1e-12

    top = run(high)
    while not reaches(top) and len(points) < max_evaluations and (max_high is None or high * 4 <= max_high * 1.000001):
        low, high = high, high * 4
        top = run(high)
    if not reaches(top):
        return Calibration(goal=goal, chosen=None, points=points)
    best = top
    # `low` itself is never run: below the goal it is the costliest budget (every sample spends
    # the whole iteration budget); when every budget tried reaches the goal the bracket closes
    # on `low` and the chosen budget is within `precision` of it.
    while high / low > 1 + precision and len(points) < max_evaluations:
        p = run(math.sqrt(low * high))
        if reaches(p):
            high, best = p.value, p
        else:
            low = p.value
    return Calibration(goal=goal, chosen=best, points=points)


def _round(value: float) -> float:
    """Six significant digits, so a budget written in a run's configuration is stable."""
    return float(f"{value:.6g}")


# --------------------------------------------------------------------------- the Django side

def reference_success(reference_run) -> tuple[set[int], int, int]:
    """(clip ids, succeeded, attacked) of a stored run: what calibration must match."""
    rows = list(reference_run.samples.values_list("clip_id", "success"))
    return {c for c, _ in rows}, sum(bool(s) for _, s in rows), len(rows)


def default_reference(recognizer, strategy: str = "ab"):
    """The SMART run the report would show for `recognizer` and `strategy` (current engine,
    default options first, then the most samples, then the latest)."""
    from attacks.services.generation import ENGINE_VERSION
    from attacks.models import GenerationRun

    runs = [r for r in GenerationRun.objects.filter(recognizer=recognizer, method="smart", strategy=strategy)
            if (r.config or {}).get("engine") == ENGINE_VERSION and r.samples.exists()]
    if not runs:
        return None
    return sorted(runs, key=lambda r: (not (r.config.get("options") or {}), r.samples.count(), r.created_at))[-1]


def calibrate_budget(recognizer, reference_run, method: str, *, tolerance: float = 0.01, ratio: float = 10.0,
                     low: float = 0.001, high: float = 0.05, max_high: float = 0.8, precision: float = 0.05,
                     max_evaluations: int = 12, options=None, batch_size: int = 64, device: str = "cpu",
                     progress: bool = False, log: Callable[[str], None] | None = None) -> Calibration:
    """Tune `method`'s ε (step_size = ε / ratio) to the reference run's success on its clips.

    The goal is the reference's success rate minus `tolerance`; the chosen run is marked
    with the calibration (reference run, its success, goal, every point), and any earlier
    calibration of the same recognizer, method and strategy is cleared so one run stands.
    """
    from attacks.services.generation import generate_samples, generation_config
    from attacks.models import GenerationRun

    if BUDGET_PARAMETER.get(method) != "epsilon":
        tunable = ", ".join(m for m, p in BUDGET_PARAMETER.items() if p == "epsilon")
        raise ValueError(f"calibration tunes the epsilon of {tunable}, not {method!r} (use sweep_budget)")
    if reference_run.recognizer_id != recognizer.pk:
        raise ValueError(f"reference run {reference_run.pk} attacked {reference_run.recognizer.name}, "
                         f"not {recognizer.name}")
    ref = reference_run.config
    clips, ref_ok, ref_n = reference_success(reference_run)
    if not ref_n:
        raise ValueError(f"reference run {reference_run.pk} has no samples")
    target = ref_ok / ref_n
    goal = target - tolerance

    def evaluate(epsilon):
        step = _round(epsilon / ratio)
        config = generation_config(method, ref["strategy"], top_n=ref.get("top_n") or 3, target=ref.get("target"),
                                   iterations=ref["iterations"], split=ref["split"], limit=ref.get("limit"),
                                   seed=ref["seed"], margin=ref.get("margin", 0.0),
                                   options={**(options or {}), "epsilon": epsilon, "step_size": step},
                                   precision=ref.get("precision", "fp32"))  # the reference's recognizer numerics
        run = generate_samples(recognizer, config, batch_size=batch_size, device=device, progress=progress).run
        rows = [(c, s) for c, s in run.samples.values_list("clip_id", "success") if c in clips]
        point = BudgetPoint(value=epsilon, succeeded=sum(bool(s) for _, s in rows), attacked=len(rows),
                            run_id=run.pk, step_size=step)
        if log:
            log(f"{method} epsilon={epsilon:g} step={step:g}: {point.succeeded}/{point.attacked} "
                f"({100 * point.rate:.1f}%; goal {100 * goal:.1f}%) run {run.pk}")
        return point

    result = bisect_budget(evaluate, goal, low=low, high=high, precision=precision,
                           max_evaluations=max_evaluations, max_high=max_high)
    record = {"reference_run": reference_run.pk, "reference_method": reference_run.method,
              "reference_success": target, "reference_succeeded": ref_ok, "reference_attacked": ref_n,
              "tolerance": tolerance, "goal": goal, "parameter": "epsilon", "step_ratio": ratio,
              "reached": result.reached, "points": [asdict(p) for p in result.points]}
    tried = [p.run_id for p in result.points]
    GenerationRun.objects.filter(recognizer=recognizer, method=method, strategy=ref["strategy"],
                                 split=ref["split"]).exclude(calibration={}).update(calibration={})
    chosen = result.chosen or max(result.points, key=lambda p: (p.rate, -p.value))
    record["chosen"] = asdict(chosen)
    GenerationRun.objects.filter(pk=chosen.run_id).update(calibration=record)
    GenerationRun.objects.filter(pk__in=[t for t in tried if t != chosen.run_id]).update(
        calibration={"candidate_of": chosen.run_id})
    return result


def sweep_budget(recognizer, method: str, values, *, parameter: str | None = None, strategy: str = "ab",
                 iterations: int = 300, split: str = "test", limit=None, seed: int = 0, preset=None, options=None,
                 tie_step: float | None = 10.0, batch_size: int = 64, device: str = "cpu", progress: bool = False,
                 log: Callable[[str], None] | None = None) -> list[BudgetPoint]:
    """Store one run per value of the method's budget parameter (ε for IAA/CIASA, with the
    step tied as ε / tie_step; lr for SMART and its ablations)."""
    from attacks.services.generation import generate_samples, generation_config

    parameter = parameter or BUDGET_PARAMETER[method]
    points = []
    for value in values:
        value = _round(float(value))
        opts = {**(options or {}), parameter: value}
        if parameter == "epsilon" and tie_step:
            opts["step_size"] = _round(value / tie_step)
        config = generation_config(method, strategy, iterations=iterations, split=split, limit=limit, seed=seed,
                                   options=opts, preset=preset)
        run = generate_samples(recognizer, config, batch_size=batch_size, device=device, progress=progress).run
        ok = run.samples.filter(success=True).count()
        points.append(BudgetPoint(value=value, succeeded=ok, attacked=run.samples.count(), run_id=run.pk,
                                  step_size=opts.get("step_size")))
        if log:
            log(f"{method} {parameter}={value:g}: {ok}/{points[-1].attacked} ({100 * points[-1].rate:.1f}%) "
                f"run {run.pk}")
    return points
