from django.core.management.base import BaseCommand, CommandError

from attacks.models import Dataset
from attacks.core.errors import AttacksError
from attacks.services.recognition import train_recognizer
from attacks.core.recognizers import ARCHITECTURES


class Command(BaseCommand):
    help = ("Train an action recognizer on a dataset's stored split; the checkpoint is chosen on validation. "
            "Re-running an interrupted run with the same arguments resumes from its last epoch.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES))
        parser.add_argument("--name", required=True)
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--width", type=int, help="Base channels (default: the CPU preset; 0 = published width)")
        parser.add_argument("--frames", type=int, help="Frames the model takes (raw imports are resampled)")
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--val-fraction", type=float, default=0.1)
        parser.add_argument("--test-fraction", type=float, default=0.2)
        parser.add_argument("--split", help="stratified, ntu-xsub or ntu-xview "
                                             "(default: ntu-xsub for NTU RGB+D imports, else stratified)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        try:
            dataset = Dataset.objects.get(name=o["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {o['dataset']!r}") from None
        width = o["width"]
        try:
            record = train_recognizer(
                dataset, o["arch"], o["name"], epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                width=width, device=o["device"], seed=o["seed"],
                val_fraction=o["val_fraction"], test_fraction=o["test_fraction"], split_method=o["split"],
                num_frames=o["frames"], progress=not o["no_progress"])
        except AttacksError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(self.style.SUCCESS(
            f"recognizer {record.name!r} ({record.arch}, {record.num_parameters:,} parameters): "
            f"train {record.train_accuracy:.3f}  val {record.val_accuracy:.3f}  "
            f"test {record.test_accuracy if record.test_accuracy is not None else float('nan'):.3f}  "
            f"(best epoch {record.best_epoch} of {record.epochs_trained})"))
