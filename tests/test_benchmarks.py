"""The benchmark scripts run (tiny sizes): a benchmark that crashes measures nothing.

Their numbers are not checked here (speed is for the README, not for tests); what is
checked is that each prints its table with a row per requested configuration.
"""
import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attack_throughput_prints_batched_and_loop_rates(capsys):
    load("attack_throughput").main(["--archs", "stgcn", "hrnn", "--iterations", "1", "--batch", "3",
                                    "--loop-samples", "1", "--frames", "8", "--width", "4", "--device", "cpu",
                                    "--threads", "1"])
    out = capsys.readouterr().out
    table = out[out.index("arch"):].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:] if line.strip() and not line.startswith("skipped")}
    assert set(rows) == {"stgcn", "hrnn"}, out
    for cols in rows.values():
        batched, loop, ratio = map(float, cols[2:5])
        assert batched > 0 and loop > 0 and ratio == pytest.approx(batched / loop, rel=0.05)
    assert "skipped" not in out


def test_recognizer_throughput_writes_its_measurements(tmp_path, capsys):
    out_json = tmp_path / "rt.json"
    load("recognizer_throughput").main(["--archs", "stgcn", "--widths", "reduced", "--repeats", "1",
                                        "--max-seconds", "0.5", "--batch", "2", "--frames", "8", "--classes", "5",
                                        "--threads", "1", "--json", str(out_json)])
    assert "stgcn" in capsys.readouterr().out
    [row] = json.loads(out_json.read_text())
    assert (row["batch1"]["arch"], row["batch1"]["batch_size"], row["batchN"]["batch_size"]) == ("stgcn", 1, 2)
    ratio = row["batchN"]["samples_per_s"] / row["batch1"]["samples_per_s"]
    assert row["ratio"] == pytest.approx(ratio, rel=1e-6)
