"""How many participants a study needs for a target interval width, from simulation."""
from django.core.management.base import BaseCommand, CommandError

from studies.core.inference import participants_needed


class Command(BaseCommand):
    help = ("Participants needed so that the participant-aware 95% interval of a rate is at most --width wide "
            "(simulated beta-binomial answers; the design-effect formula printed beside it).")

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=0.5, help="expected rate (0.5 is the widest)")
        parser.add_argument("--icc", type=float, default=0.1, help="intra-participant correlation")
        parser.add_argument("--trials", type=int, required=True, help="trials per participant in this rate")
        parser.add_argument("--width", type=float, required=True, help="target full width, e.g. 0.1 for ±5 points")
        parser.add_argument("--repetitions", type=int, default=200)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        try:
            r = participants_needed(o["rate"], o["icc"], o["trials"], o["width"], o["repetitions"], seed=o["seed"])
        except ValueError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"{r['participants']} participants x {o['trials']} trials: mean width {r['mean_width']:.3f} "
            f"(90% of studies below {r['p90_width']:.3f}), coverage {r['coverage']:.0%} over {o['repetitions']} "
            f"simulated studies; design effect {r['design_effect']:.2f}, formula estimate "
            f"{r['analytic_participants']} participants")
