"""Statistics, figures and exports of one study."""
import json

from django.core.management.base import BaseCommand, CommandError

from studies.management.commands._lookup import find_study
from studies.reports import build_report


class Command(BaseCommand):
    help = "Screening, statistics, figures (PNG) and CSV / JSON exports of a study."

    def add_arguments(self, parser):
        parser.add_argument("study", help="study id or slug")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--out", help="folder for report.json, trials.csv, participants.csv and figures")
        parser.add_argument("--include-partial", action="store_true",
                            help="analyse unfinished (active, abandoned) participations too")
        parser.add_argument("--simulated", action="store_true",
                            help="report the simulated participants (simulate_participants) instead of real ones")

    def handle(self, *args, **o):
        study = find_study(o["study"])
        report = build_report(study, o["out"], include_partial=o["include_partial"], simulated=o["simulated"])
        if o["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        who = "answers of SIMULATED participants" if o["simulated"] else "answers"
        self.stdout.write(f"{study.name} ({study.kind}, {study.status}): {report['trials_answered']} {who}")
        self.stdout.write("progress: " + ", ".join(f"{k} {v}" for k, v in report["progress"].items()))
        ex = report["exclusions"]
        for what in ("participants", "trials"):
            e = ex[what]
            self.stdout.write(f"{what}: {e['analysed']} of {e['total']} analysed, {e['excluded']} excluded ("
                              + ", ".join(f"{k} {v}" for k, v in e["by_reason"].items()) + ")")
        for section, rows in report["statistics"].items():
            if not isinstance(rows, list) or section in ("screening", "per_participant_d_prime"):
                self.stdout.write(f"{section}: {rows}" if not isinstance(rows, list) else
                                  f"{section}: {len(rows)} rows")
                continue
            self.stdout.write(f"\n{section}")
            for row in rows:
                self.stdout.write("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
        if o["out"]:
            self.stdout.write(f"\nwrote {', '.join(report['files'])} to {o['out']}")


def _fmt(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)
