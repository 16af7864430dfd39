"""Simulated participants through the real participation path, before launch."""
from django.core.management.base import BaseCommand, CommandError

from studies.management.commands._lookup import find_study
from studies.models import Study
from studies.protocols.base import ConfigurationError
from studies.simulation import parse_policy, simulate


class Command(BaseCommand):
    help = ("Run N simulated participants through a study (flagged as simulated, no stimulus usage, never in "
            "the real report); read them with `study_report STUDY --simulated`.")

    def add_arguments(self, parser):
        parser.add_argument("study", help="study id or slug")
        parser.add_argument("--n", type=int, required=True, help="number of simulated participants")
        parser.add_argument("--policy", default="noisy:0.2",
                            help="random | oracle | noisy:P | clustered[:RATE[,ICC]] (default noisy:0.2)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        study = find_study(o["study"])
        if o["n"] < 1:
            raise CommandError("--n must be at least 1")
        if study.status != Study.OPEN:
            raise CommandError(f"study {study.slug} is {study.status}; simulated participants need an open study")
        try:
            policy = parse_policy(o["policy"])
            people = simulate(study, o["n"], policy, seed=o["seed"])
        except (ValueError, ConfigurationError) as e:
            raise CommandError(str(e)) from e
        outcomes = {}
        for p in people:
            outcomes[p.status] = outcomes.get(p.status, 0) + 1
        self.stdout.write(f"{len(people)} simulated participants ({o['policy']}) took {study.slug}: "
                          + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
                          + f"; report: python manage.py study_report {study.slug} --simulated")
