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


def test_attack_throughput_prints_every_configuration_against_the_reference_loop(capsys):
    load("attack_throughput").main(["--archs", "stgcn", "--variants", "exact", "channels-last", "--iterations", "1",
                                    "--repeats", "1", "--batch", "2", "--frames", "8", "--width", "4",
                                    "--classes", "4", "--threads", "1"])
    out = capsys.readouterr().out
    table = [line.split("|") for line in out[out.index("configuration"):].splitlines()[1:] if "|" in line]
    rows = {cols[1].strip(): [c.strip().rstrip("×") for c in cols[2:]] for cols in table}
    assert list(rows) == ["reference loop", "floor (fwd+bwd)", "engine exact", "engine channels-last"], out
    ref = float(rows["reference loop"][0])
    for ms, ratio, first_call in rows.values():
        assert float(first_call) > 0
        if float(ms) > 0 and ref > 0:  # at this toy size a difference of two timings can be noise
            assert float(ratio) == pytest.approx(ref / float(ms), rel=0.02, abs=0.01)
        else:
            assert ratio == "n/a"


def test_attack_throughput_end_to_end_attacks_trained_gtu_clips_to_success(capsys, shared_datasets):
    load("attack_throughput").main(["--archs", "--end-to-end", "hrnn", "--train-epochs", "1", "--max-clips", "4",
                                    "--budget", "5", "--batch", "4", "--threads", "1",
                                    "--gtu", str(shared_datasets / "gtu3dactions")])
    out = capsys.readouterr().out
    table = [line.split("|") for line in out[out.index("configuration"):].splitlines()[1:] if "|" in line]
    names = [cols[0].strip() for cols in table]
    assert names[:2] == ["reference loop", "engine exact"], out
    counts = {int(cols[1]) for cols in table}
    assert len(counts) == 1 and 1 <= min(counts) <= 4, out  # every configuration attacks the same clips
    for cols in table:
        clips, fooled, its = int(cols[1]), int(cols[2]), int(cols[3])
        assert 0 <= fooled <= clips and 0 <= its <= 5 * clips


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


def test_dataset_memory_prints_every_step_at_both_sizes(capsys):
    load("dataset_memory").main(["--clips", "18", "24", "--frames", "12", "--classes", "3", "--width", "2",
                                 "--iterations", "1", "--threads", "1"])
    out = capsys.readouterr().out
    table = [line for line in out[out.index(" dataset"):].splitlines()[1:] if line.strip()]
    steps = {}
    for line in table:
        steps.setdefault(int(line[:8]), []).append(line[10:36].strip())
        assert float(line[72:86]) > -50, line  # MiB over the bare process: measured, not garbage
    streamed = ["baseline (django + torch)", "import", "cache (first read)", "train epoch (streamed)",
                "generation (streamed)"]
    assert steps == {18: streamed + ["train epoch (in memory)", "generation (in memory)"], 24: streamed}, out


def test_api_load_realistic_participants_report_server_time_against_healthz(tmp_path, capsys):
    """A tiny real-time-scaled run of the realistic model on gunicorn + SQLite."""
    out = tmp_path / "load.json"
    load("api_load").main(["--databases", "sqlite", "--modes", "realistic", "--participants", "3", "--trials", "2",
                           "--time-scale", "40", "--ramp-seconds", "2", "--workers", "1", "--threads", "2",
                           "--healthz-interval", "0.05", "--out", str(out)])
    assert "realistic" in capsys.readouterr().out
    (r,) = json.loads(out.read_text())
    assert (r["mode"], r["participants"], r["error_count"], r["embed"]) == ("realistic", 3, 0, True), r["errors"]
    assert r["answers_accepted"] == r["database_count"]["stored"] == 6 and r["database_count"]["duplicated"] == 0
    for name in ("next", "answer", "healthz"):
        server = r[name]["server"]
        assert server["count"] >= (r[name]["count"] if name != "healthz" else 1) and server["p50_ms"] > 0
    for name in ("next", "answer"):
        assert r["server_vs_healthz"][name]["p50"] == pytest.approx(
            r[name]["server"]["p50_ms"] / r["healthz"]["server"]["p50_ms"])
    # Each participant watched two ~6 s playbacks (scaled 1/40) after an arrival within the ramp.
    assert r["wall_s"] >= 2 * 5.9 / 40


def test_api_load_reads_server_time_from_the_access_log(tmp_path):
    api_load = load("api_load")
    log = tmp_path / "access.log"
    log.write_text("GET /api/studies/load/ 200 900\n"  # before the offset: warm-up
                   "POST /api/studies/load/participations/ 201 30000\nGET /api/participations/t/next/ 200 4000\n"
                   "GET /api/participations/t/next/ 200 6000\nPOST /api/participations/t/answers/ 201 5000\n"
                   "POST /api/participations/t/complete/ 200 8000\nGET /healthz 200 2000\nGET /healthz 200 2000\n"
                   "GET /api/motions/abc/ 200 700\nnot an access line\n")
    result = {name: {"count": 0} for name in ("start", "next", "answer", "complete", "healthz")}
    api_load.add_server_times(result, log, offset=len("GET /api/studies/load/ 200 900\n"))
    assert result["next"]["server"]["count"] == 2 and result["next"]["server"]["p50_ms"] == pytest.approx(5.0)
    assert result["start"]["server"]["count"] == 1 and result["healthz"]["server"]["p50_ms"] == pytest.approx(2.0)
    assert result["server_vs_healthz"]["next"]["p50"] == pytest.approx(2.5)
    assert result["server_vs_healthz"]["answer"]["p95"] == pytest.approx(2.5)
