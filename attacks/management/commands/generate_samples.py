import argparse

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F

from attacks.services.generation import generate_samples, generation_config, transfer_samples
from attacks.core.methods import METHODS, STRATEGIES, Numerics, SmartConfig
from attacks.core.methods.numerics import COMPILE_MIN_CLIPS, COMPILE_MIN_GAIN
from attacks.core.methods.smart import METHOD as SMART
from attacks.models import Recognizer, TransferResult
from attacks.core.errors import AttacksError

from attacks.management.commands._options import parse_key_values, recognizer_named


class Command(BaseCommand):
    help = ("Attack the correctly classified clips of a recognizer's split and store one adversarial sample per "
            "clip. Re-running the same command resumes an interrupted run without duplicates.")

    def add_arguments(self, parser):
        parser.add_argument("--recognizer", required=True)
        parser.add_argument("--method", required=True, choices=METHODS)
        parser.add_argument("--strategy", default="ab", choices=STRATEGIES)
        parser.add_argument("--top-n", type=int, default=3, help="ABN: success when the true label leaves the top N")
        parser.add_argument("--target", help="SA: a label index, or 'random' (default) for a seeded draw")
        parser.add_argument("--iterations", type=int, default=300)
        parser.add_argument("--lr", type=float, help=f"Step of {'/'.join(SMART.names)} (default: the preset's; "
                                                     "paper: 0.005-0.0005)")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="Method option, e.g. epsilon=0.01 step_size=0.001 gan_weight=0.1 alpha=0.3")
        parser.add_argument("--preset", choices=sorted(SmartConfig.PRESETS),
                            help=f"{'/'.join(SMART.names)}: the reading of SMART "
                                 f"(default {SmartConfig.DEFAULT_PRESET}; README)")
        parser.add_argument("--margin", type=float, default=0.0, metavar="KAPPA",
                            help="Success only when the wrong class (SA: the target) leads by KAPPA in logits")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--split", default="test", choices=["train", "val", "test"])
        parser.add_argument("--limit", type=int, help="Only the first N clips of the split")
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                            help="How the recognizer runs during the attack: auto = bf16 where the device computes "
                                 "it natively; fp32 = the exact float32 path. Verdicts are float32 either way "
                                 "(README, Attack engine speed)")
        parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                            help="torch.compile the recognizer (default: on for bf16 runs of at least "
                                 f"{COMPILE_MIN_CLIPS} clips of an architecture whose measured compile gain is "
                                 f"at least {COMPILE_MIN_GAIN}x, where compiling pays; README)")
        parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                            help="channels-last weights for the recognizer's convolutions")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--transfer-to", nargs="+", default=[], metavar="RECOGNIZER",
                            help="Also judge the samples on these recognizers (black-box transfer)")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--queue", action="store_true",
                            help="Send the work as shards to Celery workers (celery -A studyportal worker) "
                                 "instead of attacking here; this process only classifies the scope")
        parser.add_argument("--shard-size", type=int, default=256,
                            help="--queue: clips per shard (rounded up to whole batches)")
        parser.add_argument("--celery-queue", help="--queue: Celery queue name (default: settings.CELERY_QUEUE)")

    def handle(self, *args, **o):
        recognizer = recognizer_named(o["recognizer"])
        options = parse_key_values(o["option"], "--option")
        if o["lr"] is not None:
            options["lr"] = o["lr"]
        target = o["target"]
        if target not in (None, "random"):
            try:
                target = int(target)
            except ValueError:
                raise CommandError(f"--target must be a label index or 'random', got {target!r}") from None
        try:
            try:
                precision = Numerics.resolve_precision(o["precision"], o["device"])
                Numerics.for_run(precision, compile=o["compile"],
                                 channels_last=o["channels_last"]).check_device(o["device"])
            except (ValueError, RuntimeError) as e:
                raise CommandError(f"--precision/--compile/--channels-last: {e}") from None
            config = generation_config(o["method"], o["strategy"], top_n=o["top_n"], target=target,
                                       iterations=o["iterations"], split=o["split"], limit=o["limit"],
                                       seed=o["seed"], options=options, margin=o["margin"],
                                       preset=o["preset"], precision=precision)
            if o["queue"]:
                return self.queue(recognizer, config, o)
            report = generate_samples(recognizer, config, batch_size=o["batch_size"], device=o["device"],
                                      progress=not o["no_progress"], compile=o["compile"],
                                      channels_last=o["channels_last"])
            run = report.run
            if o["transfer_to"]:
                targets = list(Recognizer.objects.filter(name__in=o["transfer_to"]))
                missing = set(o["transfer_to"]) - {t.name for t in targets}
                if missing:
                    raise CommandError(f"no recognizer named {', '.join(sorted(missing))}")
                transfer_samples(run.samples.all(), targets, device=o["device"], progress=not o["no_progress"])
        except AttacksError as e:
            raise CommandError(str(e)) from e
        n = run.done
        stored_ok = run.samples.filter(success=True).count()
        in_attack = run.samples.filter(attack_success=True).count()
        self.stdout.write(self.style.SUCCESS(
            f"run {run.pk} ({run.method}/{run.strategy} on {recognizer.name}): {n} samples "
            f"({report.attacked_now} new, {report.already_stored} resumed), {run.skipped} of {run.total} clips "
            f"skipped as misclassified; success after storage {_percent(stored_ok, n)} "
            f"(in the attack loop {_percent(in_attack, n)}); recognizer in the loop at {precision}"))
        for t in o["transfer_to"]:
            results = TransferResult.objects.filter(sample__run=run, recognizer__name=t)
            # Table 3's denominator: samples the source fooled that the target gets right before the attack.
            eligible = results.filter(sample__success=True, label_clean=F("sample__label"))
            ok = eligible.filter(success=True).count()
            self.stdout.write(
                f"  transfer to {t}: {ok}/{eligible.count()} succeed among the samples that fooled "
                f"{recognizer.name} and that {t} classifies correctly before the attack "
                f"({results.filter(success=True).count()}/{results.count()} over all samples; "
                f"{results.filter(in_target_training=True).count()} clips in {t}'s training split)")


    def queue(self, recognizer, config, o):
        from attacks.tasks import queue_run

        if o["transfer_to"]:
            raise CommandError("--transfer-to needs the samples: run transfer_samples once the queued run is done")
        if o["shard_size"] < 1:
            raise CommandError("--shard-size must be positive")
        run, sent = queue_run(recognizer, config, shard_size=o["shard_size"], batch_size=o["batch_size"],
                              device=o["device"], queue=o["celery_queue"])
        attackable = run.total - run.skipped
        self.stdout.write(self.style.SUCCESS(
            f"run {run.pk} ({run.method}/{run.strategy} on {recognizer.name}): {attackable} of {run.total} clips "
            f"to attack in {run.shards} shards; {sent} shards sent to the workers, {run.done} samples stored "
            f"already"))


def _percent(k, n):
    return "n/a" if not n else f"{k}/{n} ({100 * k / n:.1f}%)"
