"""The README's main job, step by step, on embedded defaults (SQLite, CPU).

Import real data (GTU3DActions) -> train a recognizer -> attack it with SMART, its
ablations and the baselines -> robustness report -> one study of each kind -> print
the admin login and the participant links. Every step is idempotent: running the demo
again reuses what is stored (and resumes what was interrupted).
"""
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from attacks.models import AdversarialSample, Recognizer
from studies.models import Study

DEFAULT_DATA = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "gtu3dactions"
ATTACKS = [  # (method, strategy, extra options)
    ("smart", "ab", {}), ("l2", "ab", {}), ("l2-acc", "ab", {}), ("l2-bone", "ab", {}),
    ("iaa", "ab", {}), ("ciasa", "ab", {}), ("smart", "abn", {"top_n": 3}), ("smart", "sa", {}),
]
STUDY_KINDS = ("deceitfulness", "naturalness", "indistinguishability", "comparison")


class Command(BaseCommand):
    help = "Run the whole pipeline on a real dataset and set up admin and participant links."

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(DEFAULT_DATA),
                            help="GTU3DActions folder; falls back to synthetic motions when it is missing")
        parser.add_argument("--arch", default="stgcn")
        parser.add_argument("--epochs", type=int, default=30)
        parser.add_argument("--width", type=int, help="Base channels (default: the architecture's CPU preset)")
        parser.add_argument("--frames", type=int, help="Frames the recognizer takes (default: its CPU preset)")
        parser.add_argument("--clips", type=int, default=24, help="Test clips attacked per method")
        parser.add_argument("--iterations", type=int, default=300)
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")

    def handle(self, *args, **o):
        data = Path(o["data"])
        if data.is_dir():
            dataset = "gtu3dactions"
            self._step(f"importing GTU3DActions from {data}")
            call_command("import_dataset", "gtu", str(data), name=dataset, stdout=self.stdout)
        else:
            dataset = "synthetic"
            self.stdout.write(self.style.WARNING(f"{data} not found: importing synthetic motions instead"))
            call_command("import_dataset", "synthetic", "classes=6,clips=20,frames=64,seed=0", name=dataset,
                         stdout=self.stdout)

        name = f"{dataset}-{o['arch']}"
        if not Recognizer.objects.filter(name=name, status=Recognizer.Status.READY).exists():
            self._step(f"training {o['arch']} on {dataset} ({o['epochs']} epochs)")
            extra = {k: o[k] for k in ("width", "frames") if o[k] is not None}
            call_command("train_recognizer", dataset=dataset, arch=o["arch"], name=name, epochs=o["epochs"],
                         device=o["device"], stdout=self.stdout, **extra)

        for method, strategy, extra in ATTACKS:
            self._step(f"generating {method}/{strategy} samples")
            call_command("generate_samples", recognizer=name, method=method, strategy=strategy,
                         iterations=o["iterations"], limit=o["clips"], device=o["device"], stdout=self.stdout,
                         **extra)

        out = Path(settings.DATA_DIR) / "reports" / "demo"
        self._step(f"writing the robustness report to {out}")
        call_command("robustness_report", recognizer=[name], out=str(out), name="demo", stdout=self.stdout)

        self._step("creating one study of each kind")
        if not AdversarialSample.objects.filter(recognizer__name=name).exists():
            self.stdout.write(self.style.WARNING(
                f"{name} classified none of the attacked clips correctly, so there are no stimuli; "
                "train longer (--epochs) to get studies"))
            kinds = ()
        else:
            kinds = STUDY_KINDS
        for kind in kinds:
            if Study.objects.filter(slug=f"demo-{kind}").exists():
                self.stdout.write(f"study demo-{kind} exists: {o['base_url']}/study/demo-{kind}/")
                continue
            # Studies never show a participant one clip twice: size each to the clips the
            # attacks fooled (naturalness asks two questions per clip), at most 12 trials.
            clips = AdversarialSample.objects.filter(recognizer__name=name, strategy="ab", success=True) \
                .values("clip").distinct().count()
            trials = max(1, min(12, (clips - 1) * (2 if kind == "naturalness" else 1)))
            try:
                call_command("create_study", kind, name=f"demo-{kind}", recognizers=[name], trials=trials, practice=1,
                             base_url=o["base_url"], stdout=self.stdout)
            except CommandError as e:  # e.g. no successful attack yet for this protocol's stimuli
                self.stdout.write(self.style.WARNING(f"no {kind} study: {e}"))
        self._admin_login(o["base_url"])

    def _step(self, text):
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {text}"))

    def _admin_login(self, base_url):
        user_model = get_user_model()
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(self.style.SUCCESS(
            f"admin: {base_url}/admin/  user 'admin', password '{password}' (set DEMO_ADMIN_PASSWORD to choose it)"))
