from django.core.management.base import BaseCommand, CommandError

from attacks.core import reporting as reports
from attacks.models import Dataset, Recognizer
from attacks.services.reporting import ReportFilters, build_report


class Command(BaseCommand):
    help = ("Write the robustness report (Table 1, Table 3 transfer, Table 4 upper, joint vulnerability) "
            "as CSV, PNG and Markdown into --out, store it as a RobustnessReport and print the tables.")

    def add_arguments(self, parser):
        parser.add_argument("--recognizer", nargs="+", default=[], metavar="NAME")
        parser.add_argument("--dataset", nargs="+", default=[], metavar="NAME")
        parser.add_argument("--method", nargs="+", default=[], metavar="METHOD",
                            help="Restrict runs to these methods (smart, l2, l2-acc, l2-bone, iaa, ciasa)")
        parser.add_argument("--split", default="test", help="Split the runs attacked; 'any' for all")
        parser.add_argument("--vulnerability-attack", default="AB",
                            help="Attack whose successful SMART samples feed the joint analysis (AB, AB3, SA, ...)")
        parser.add_argument("--old-engines", action="store_true",
                            help="Also report runs of an older engine version where no current run exists, "
                                 "labelled [engine N] (left out by default)")
        parser.add_argument("--out", required=True, help="Output folder")
        parser.add_argument("--name", default=None)

    def handle(self, *args, **o):
        self._check_names(Recognizer, o["recognizer"], "recognizer")
        self._check_names(Dataset, o["dataset"], "dataset")
        filters = ReportFilters(recognizers=tuple(o["recognizer"]), datasets=tuple(o["dataset"]),
                                methods=tuple(o["method"]), split=None if o["split"] == "any" else o["split"],
                                old_engines=bool(o["old_engines"]))
        result = build_report(filters, o["out"], name=o["name"], vulnerability_attack=o["vulnerability_attack"])
        self.stdout.write(reports.text_tables(result.tables))
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(
            f"report {result.report.pk} '{result.report.name}': {len(result.files)} files in {result.report.out_dir}"))

    @staticmethod
    def _check_names(model, names, what):
        missing = sorted(set(names) - set(model.objects.filter(name__in=names).values_list("name", flat=True)))
        if missing:
            raise CommandError(f"no {what} named {', '.join(missing)}")
