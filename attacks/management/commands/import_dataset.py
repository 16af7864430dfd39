from django.core.management.base import BaseCommand, CommandError

from attacks.core.errors import AttacksError
from attacks.services.importing import import_dataset
from attacks.core.data.preprocessing import PROTOCOLS
from attacks.core.data.readers import FORMATS

from attacks.management.commands._options import parse_key_values


class Command(BaseCommand):
    help = "Import skeletal motions from files into a named dataset (one transaction)."

    def add_arguments(self, parser):
        parser.add_argument("format", choices=sorted(FORMATS))
        parser.add_argument("path", help="File, folder or file list; for `synthetic`, a spec such as classes=6,clips=20")
        parser.add_argument("--name", required=True)
        parser.add_argument("--skeleton", help="ntu25, cmu25 or a JSON skeleton file (default: the format's own)")
        parser.add_argument("--protocol", default="raw", choices=PROTOCOLS)
        parser.add_argument("--units", help="BVH/ASF length unit: asf, cm, mm, m, inch or metres per unit")
        parser.add_argument("--reader-option", action="append", metavar="KEY=VALUE", default=[])
        parser.add_argument("--protocol-option", action="append", metavar="KEY=VALUE", default=[],
                            help="e.g. window=60 stride=30 (smart) or frames=300 (ntu)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        reader_options = parse_key_values(o["reader_option"], "--reader-option")
        if o["units"]:
            reader_options["units"] = o["units"]
        protocol_options = parse_key_values(o["protocol_option"], "--protocol-option")
        try:
            result = import_dataset(o["format"], o["path"], o["name"], skeleton=o["skeleton"],
                                    protocol=o["protocol"], reader_options=reader_options,
                                    protocol_options=protocol_options, progress=not o["no_progress"])
        except AttacksError as e:
            raise CommandError(f"import failed, nothing was written: {e}") from e
        ds = result.dataset
        if result.unchanged:
            self.stdout.write(f"dataset {ds.name!r} already holds exactly these {result.num_clips} clips; nothing changed")
            return
        verb = "created" if result.created else "replaced"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} dataset {ds.name!r}: {result.num_clips} clips, {ds.num_classes} classes, "
            f"skeleton {ds.skeleton['name']}, protocol {ds.protocol}"))
