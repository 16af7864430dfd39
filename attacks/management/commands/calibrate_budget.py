from django.core.management.base import BaseCommand, CommandError

from attacks.core.methods import REGISTRY, STRATEGIES
from attacks.services.calibration import BUDGET_PARAMETER, calibrate_budget, default_reference, sweep_budget
from attacks.models import GenerationRun
from attacks.core.errors import AttacksError

from attacks.management.commands._options import add_list_option, parse_key_values, recognizer_named, split_values


class Command(BaseCommand):
    help = ("Tune IAA / CIASA's L∞ budget (epsilon, step tied as epsilon/ratio) to a reference run's success "
            "on the same clips (default reference: the recognizer's SMART AB run), by bisection; every budget "
            "tried is a stored run and the chosen one records the calibration. With --sweep, store runs at the "
            "given budgets instead (epsilon for IAA/CIASA, lr for SMART), for the report's budget-sweep figure.")

    def add_arguments(self, parser):
        parser.add_argument("--recognizer", required=True)
        add_list_option(parser, "--method", default=None, help="Methods to calibrate (default iaa and ciasa)")
        parser.add_argument("--reference", type=int, metavar="RUN_ID",
                            help="Run whose success to match (default: the recognizer's SMART run of --strategy)")
        parser.add_argument("--strategy", default="ab", choices=STRATEGIES)
        parser.add_argument("--tolerance", type=float, default=0.01,
                            help="Goal = reference success minus this (a rate, default 0.01)")
        parser.add_argument("--ratio", type=float, default=10.0, help="step_size = epsilon / RATIO")
        parser.add_argument("--low", type=float, default=0.001, help="Smallest epsilon tried, metres")
        parser.add_argument("--high", type=float, default=0.05, help="First epsilon tried, metres (widened ×4 "
                                                                     "up to --max-high when it falls short)")
        parser.add_argument("--max-high", type=float, default=0.8)
        parser.add_argument("--precision", type=float, default=0.05, help="Relative width of the final bracket")
        parser.add_argument("--max-evaluations", type=int, default=12)
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="Other method options (kept fixed), e.g. gan_weight=0")
        add_list_option(parser, "--sweep", type=float, default=None,
                        help="Instead of calibrating: store one run per value of the budget parameter")
        parser.add_argument("--parameter", help="--sweep: the option swept (default epsilon, lr for SMART)")
        parser.add_argument("--preset", help="--sweep with SMART: the preset")
        parser.add_argument("--iterations", type=int, default=300, help="--sweep: iteration budget")
        parser.add_argument("--split", default="test", help="--sweep: split attacked")
        parser.add_argument("--limit", type=int, help="--sweep: only the first N clips")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        recognizer = recognizer_named(o["recognizer"])
        methods = list(dict.fromkeys(split_values(o["method"], flag="--method") or ["iaa", "ciasa"]))
        options = parse_key_values(o["option"], "--option")
        common = dict(batch_size=o["batch_size"], device=o["device"], progress=not o["no_progress"],
                      log=self.stdout.write)
        sweep = split_values(o["sweep"], float, "--sweep")
        try:
            if sweep:
                for method in methods:
                    if method not in BUDGET_PARAMETER:
                        raise CommandError(f"no budget parameter for {method}")
                    sweep_budget(recognizer, method, sweep, parameter=o["parameter"], strategy=o["strategy"],
                                 iterations=o["iterations"], split=o["split"], limit=o["limit"],
                                 preset=o["preset"] if hasattr(REGISTRY[method].config, "resolve_preset") else None,
                                 options=options, tie_step=o["ratio"], **common)
                return
            reference = self._reference(recognizer, o)
            for method in methods:
                result = calibrate_budget(recognizer, reference, method, tolerance=o["tolerance"], ratio=o["ratio"],
                                          low=o["low"], high=o["high"], max_high=o["max_high"],
                                          precision=o["precision"], max_evaluations=o["max_evaluations"],
                                          options=options, **common)
                chosen = result.chosen
                if chosen is None:
                    self.stdout.write(self.style.WARNING(
                        f"{method} on {recognizer.name}: no epsilon up to {max(p.value for p in result.points):g} "
                        f"reaches {100 * result.goal:.1f}%; the best run tried is marked"))
                else:
                    self.stdout.write(self.style.SUCCESS(
                        f"{method} on {recognizer.name}: epsilon={chosen.value:g} m, step={chosen.step_size:g} m: "
                        f"{chosen.succeeded}/{chosen.attacked} ({100 * chosen.rate:.1f}%) against reference run "
                        f"{reference.pk} ({reference.method}, goal {100 * result.goal:.1f}%); run {chosen.run_id} "
                        f"after {len(result.points)} budgets"))
        except (AttacksError, ValueError) as e:
            raise CommandError(str(e)) from e

    @staticmethod
    def _reference(recognizer, o):
        if o["reference"] is not None:
            try:
                return GenerationRun.objects.get(pk=o["reference"])
            except GenerationRun.DoesNotExist:
                raise CommandError(f"no generation run {o['reference']}") from None
        run = default_reference(recognizer, o["strategy"])
        if run is None:
            raise CommandError(f"{recognizer.name} has no SMART {o['strategy']} run to match: run generate_samples "
                               "--method smart first, or give --reference RUN_ID")
        return run
