"""The studies modules the README calls ORM-free really import no Django, so statistics,
playback plans, encodings and protocols run (and are tested) without a database."""
import subprocess
import sys

PLAIN = ["studies.inference", "studies.verdicts", "studies.playback", "studies.statistics", "studies.payloads",
         "studies.protocols.deceitfulness", "studies.protocols.naturalness",
         "studies.protocols.indistinguishability", "studies.protocols.comparison"]


def test_plain_study_modules_never_import_django():
    code = ("import importlib, sys\n"
            f"for name in {PLAIN!r}: importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
