from django.core.management.base import BaseCommand, CommandError

from attacks.services.generation import transfer_samples
from attacks.models import AdversarialSample, Recognizer
from attacks.core.errors import AttacksError


class Command(BaseCommand):
    help = "Evaluate stored adversarial samples on other recognizers (black-box transfer)."

    def add_arguments(self, parser):
        parser.add_argument("--to", nargs="+", required=True, metavar="RECOGNIZER")
        parser.add_argument("--source", nargs="*", default=[], help="Only samples made on these recognizers")
        parser.add_argument("--method", nargs="*", default=[])
        parser.add_argument("--strategy", nargs="*", default=[])
        parser.add_argument("--device", default="cpu")

    def handle(self, *args, **o):
        targets = list(Recognizer.objects.filter(name__in=o["to"]))
        missing = set(o["to"]) - {t.name for t in targets}
        if missing:
            raise CommandError(f"no recognizer named {', '.join(sorted(missing))}")
        samples = AdversarialSample.objects.matching(o["source"], o["method"], o["strategy"])
        try:
            n = transfer_samples(samples, targets, device=o["device"])
        except AttacksError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(self.style.SUCCESS(f"judged {n} new sample/recognizer pairs"))
