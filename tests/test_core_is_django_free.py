"""The Django-free cores really import no Django: every module under attacks/core,
studies/core and studies/protocols is imported in a fresh interpreter (no settings), and
neither Django nor DRF may have been loaded. This is what lets the attack backend run in a
notebook or a bare worker, and statistics and trial lists be tested without a database."""
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORES = ["attacks.core", "studies.core", "studies.protocols"]


def core_modules():
    names = []
    for package in CORES:
        path = ROOT / package.replace(".", "/")
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages([str(path)], package + ".")]
    return names


def test_every_core_module_is_found():
    names = core_modules()
    # the extension points live in the cores: a reader, a recognizer, an attack method, a study kind
    for expected in ("attacks.core.data.readers.bvh", "attacks.core.recognizers.stgcn", "attacks.core.methods.smart",
                     "attacks.core.reporting.tables", "studies.core.statistics", "studies.protocols.naturalness"):
        assert expected in names


def test_core_modules_never_import_django():
    names = core_modules()
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework'))\n"
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
