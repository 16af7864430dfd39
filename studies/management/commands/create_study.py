"""Create a study of one protocol kind from stored adversarial samples and print its
participant link."""
from django.core.management.base import BaseCommand, CommandError

from attacks.management.commands._options import add_list_option, split_values

from attacks.models import Recognizer
from studies.assignment import build_pool, open_study
from studies.management.commands._lookup import free_slug
from studies.models import Study
from studies.protocols import KINDS, get_protocol
from studies.protocols.base import ConfigurationError


class Command(BaseCommand):
    help = "Create a perceptual study (its stimulus pool included) and print the participant link."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", help="URL name (default: from --name)")
        # One value per flag (repeatable, or comma-separated), so none swallows the `kind` positional.
        add_list_option(parser, "--datasets", default=None, help="dataset names the stimuli come from")
        add_list_option(parser, "--recognizers", default=None, help="recognizer names")
        add_list_option(parser, "--methods", default=None, help="attack methods (protocol default if omitted)")
        add_list_option(parser, "--strategies", default=None, help="attack strategies, e.g. ab")
        parser.add_argument("--participants", type=int, default=None, help="target number of participants")
        parser.add_argument("--trials", type=int, default=None, help="trials per participant (paper's by default)")
        parser.add_argument("--practice", type=int, default=None, help="practice trials with feedback")
        parser.add_argument("--slow-motion", type=int, choices=[1, 3], default=None)
        parser.add_argument("--catch-share", type=float, default=None,
                            help="catch trials per main trial (0.1 adds 10 to 100; default none, as the paper)")
        parser.add_argument("--allow-clip-repeats", action="store_true", default=None,
                            help="let one source clip appear in several trials of a participant")
        parser.add_argument("--redirect-url", default=None, help="completion redirect; {code} is replaced")
        parser.add_argument("--completion-code", default=None)
        parser.add_argument("--base-url", default="", help="prefix for the printed link, e.g. https://host")
        parser.add_argument("--draft", action="store_true", help="leave the study in draft instead of opening it")

    def handle(self, *args, **o):
        config = {key: value for key, value in {
            **{key: split_values(o[key], str, f"--{key}")
               for key in ("datasets", "recognizers", "methods", "strategies")},
            "target_participants": o["participants"],
            "trials_per_participant": o["trials"], "practice_trials": o["practice"],
            "slow_motion": o["slow_motion"], "redirect_url": o["redirect_url"],
            "catch_share": o["catch_share"], "allow_clip_repeats": o["allow_clip_repeats"],
            "completion_code": o["completion_code"]}.items() if value is not None}
        try:
            config = get_protocol(o["kind"]).validate(config)
        except ConfigurationError as e:
            raise CommandError(str(e)) from e
        slug = free_slug(Study, o["name"], o["slug"], "study")
        if not config["datasets"] or not config["recognizers"]:
            self.stdout.write(_what_it_uses(o["kind"], config))
        study = Study.objects.create(name=o["name"], slug=slug, kind=o["kind"], configuration=config)
        try:
            size = build_pool(study)
        except ConfigurationError as e:
            study.delete()
            raise CommandError(str(e)) from e
        if size == 0:
            study.delete()
            raise CommandError("no adversarial samples match the filters; nothing to show participants")
        if not o["draft"]:
            open_study(study)
        self.stdout.write(f"study {study.pk} {study.slug} ({study.kind}, {study.status}): {size} stimuli in the pool, "
                          f"{study.config['trials_per_participant']} trials per participant")
        self.stdout.write(f"participant link: {o['base_url'].rstrip('/')}{study.participant_path()}")


def _what_it_uses(kind: str, config: dict) -> str:
    """Without --datasets / --recognizers a study takes every matching sample: say which
    (recognizers, datasets, strategies, methods) and how large the pool is."""
    from studies.assignment import matching_samples, sample_infos
    infos = sample_infos(queryset=matching_samples(None, config))
    protocol = get_protocol(kind)
    items = protocol.pool_items(list(infos.values()), config)
    used = [infos[sid] for item in items for sid in item.samples.values()]
    recognizers = dict(Recognizer.objects.filter(id__in={s.recognizer for s in used}).values_list("id", "name"))

    def names(values):
        return ", ".join(sorted(set(values))) or "none"
    return (f"no --datasets / --recognizers given: using every matching sample: "
            f"recognizers {names(recognizers.values())}; datasets {names(s.dataset for s in used)}; "
            f"strategies {names(s.strategy for s in used)}"
            f"{' (the default: the paper used AB attacks)' if config['strategies'] == ['ab'] else ''}; "
            f"methods {names(s.method for s in used)}; pool {len(items)} items over "
            f"{len({s.clip for s in used})} distinct clips")
