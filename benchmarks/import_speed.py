"""Clips per second of the GTU3DActions and NTU RGB+D readers.

The baseline, measured in the same run on the same files, is numpy's own text parser
(`np.loadtxt` of the coordinates, no validation, no skeleton), so the ratio says how much
the readers' checks and structure cost over the bare parse, independent of how busy the
machine is. The full database import (reader + transaction) is timed too for GTU.

    python benchmarks/import_speed.py [--data ../shared/datasets] [--repeats 3]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return n, min(times)


def gtu_baseline(files):
    return sum(1 for f in files if np.loadtxt(f, ndmin=2).size)


def ntu_baseline(files):
    count = 0
    for f in files:
        rows = [ln.split() for ln in Path(f).read_text().splitlines()]
        np.array([r[:3] for r in rows if len(r) == 12], dtype=np.float32)
        count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ntu-copies", type=int, default=50, help="NTU sample files are few: read each this often")
    args = parser.parse_args()

    from attacks.core.data.readers import get_reader
    from attacks.core.skeletons import BUILTIN

    ntu25 = BUILTIN["ntu25"]
    data = Path(args.data)
    rows = []

    gtu = get_reader("gtu")
    gtu_files = gtu.list_files(data / "gtu3dactions")
    n, t_reader = best_of(lambda: sum(len(gtu.read_file(f, ntu25)) for f in gtu_files), args.repeats)
    _, t_base = best_of(lambda: gtu_baseline(gtu_files), args.repeats)
    rows.append(("gtu reader", n, n / t_reader, n / t_base))

    ntu = get_reader("ntu")
    ntu_files = ntu.list_files(data / "samples" / "ntu60") * args.ntu_copies
    n, t_reader = best_of(lambda: sum(len(ntu.read_file(f, ntu25)) for f in ntu_files), args.repeats)
    _, t_base = best_of(lambda: ntu_baseline(ntu_files), args.repeats)
    rows.append(("ntu reader", n, n / t_reader, n / t_base))

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATA_DIR"] = tmp
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from attacks.services.importing import import_dataset

        start = time.perf_counter()
        result = import_dataset("gtu", data / "gtu3dactions", "bench", progress=False)
        t_import = time.perf_counter() - start
        _, t_base = best_of(lambda: gtu_baseline(gtu_files), 1)
        rows.append(("gtu import (reader + DB)", result.num_clips, result.num_clips / t_import,
                     len(gtu_files) / t_base))

    print(f"{'what':28s} {'clips':>6s} {'clips/s':>10s} {'np.loadtxt clips/s':>19s} {'ratio':>7s}")
    for name, n, ours, base in rows:
        print(f"{name:28s} {n:6d} {ours:10.1f} {base:19.1f} {ours / base:7.2f}")


if __name__ == "__main__":
    main()
