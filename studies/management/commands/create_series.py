"""Create a study series: several existing studies taken in sequence through one link,
with one consent and one completion code, and print its participant link."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from attacks.management.commands._options import add_list_option, split_values
from studies.management.commands._lookup import free_slug
from studies.models import SeriesStudy, Study, StudySeries
from studies.core.participation_config import ParticipationConfigError, validate_series


class Command(BaseCommand):
    help = "Create a study series (studies in the given order) and print the participant link /series/<slug>/."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", help="URL name (default: from the name)")
        add_list_option(parser, "--studies", default=None, help="study slugs, in the order participants take them")
        parser.add_argument("--completion-code", default=None, help="the series' completion code (default: drawn)")
        parser.add_argument("--redirect-url", default=None, help="completion redirect; {code} is replaced")
        parser.add_argument("--consent-text", default=None, help="the one consent text for the whole series")
        parser.add_argument("--config", default=None,
                            help="further configuration as JSON (completion_codes, redirect_urls, questionnaire, "
                                 "debrief_text, consent_version)")
        parser.add_argument("--base-url", default="", help="prefix for the printed link, e.g. https://host")

    def handle(self, *args, **o):
        slugs = split_values(o["studies"], str, "--studies") or []
        if not slugs:
            raise CommandError("--studies needs at least one study slug")
        if len(set(slugs)) < len(slugs):
            raise CommandError("--studies names a study twice")
        studies = {s.slug: s for s in Study.objects.filter(slug__in=slugs)}
        missing = [s for s in slugs if s not in studies]
        if missing:
            raise CommandError(f"no such studies: {', '.join(missing)}")
        try:
            config = json.loads(o["config"]) if o["config"] else {}
        except json.JSONDecodeError as e:
            raise CommandError(f"--config is not JSON: {e}") from e
        for key in ("completion_code", "redirect_url", "consent_text"):
            if o[key] is not None:
                config[key] = o[key]
        try:
            config = validate_series(config)
        except ParticipationConfigError as e:
            raise CommandError(str(e)) from e
        slug = free_slug(StudySeries, o["name"], o["slug"], "series")
        with transaction.atomic():
            series = StudySeries.objects.create(name=o["name"], slug=slug, configuration=config)
            SeriesStudy.objects.bulk_create([SeriesStudy(series=series, study=studies[s], position=i)
                                             for i, s in enumerate(slugs)])
        not_open = [s for s in slugs if studies[s].status != Study.OPEN]
        if not_open:
            self.stdout.write(f"note: not open yet: {', '.join(not_open)} (participants cannot start before they are)")
        self.stdout.write(f"series {slug}: {' -> '.join(slugs)}; completion code {series.config['completion_code']}")
        self.stdout.write(f"{o['base_url']}{series.participant_path()}")
