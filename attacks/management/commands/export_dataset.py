from django.core.management.base import BaseCommand, CommandError

from attacks.services.exporting import export_dataset
from attacks.models import Dataset


class Command(BaseCommand):
    help = "Write a dataset to .npz: clips (N, M, T, V, 3), lengths, labels, class_names, sources, fps, skeleton."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("out")

    def handle(self, *args, **o):
        try:
            dataset = Dataset.objects.get(name=o["name"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {o['name']!r}") from None
        n = export_dataset(dataset, o["out"])
        self.stdout.write(self.style.SUCCESS(f"wrote {n} clips to {o['out']}"))
