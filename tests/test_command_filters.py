"""List filters of the management commands, parsed by the real argparse as a user types
them: one value per flag, repeatable (`--method smart --method l2`) or comma-separated
(`--method smart,l2`), so that none swallows a positional argument written after it
(`export_samples --method smart --strategy ab OUT.npz` used to lose OUT.npz to --strategy).
"""
from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command, load_command_class

from attacks.models import AdversarialSample
from studies.models import Study
from tests.factories import ALL_METHODS, make_samples

pytestmark = pytest.mark.django_db

CLIPS, SA_CLIPS = 4, 3


@pytest.fixture
def stored():
    """synth: one AB sample per clip (4) and method (all six) on synth-stgcn;
    synth-sa: three SMART SA samples on synth-sa-stgcn."""
    make_samples("synth", num_clips=CLIPS)
    make_samples("synth-sa", num_clips=SA_CLIPS, methods=("smart",), strategy="sa", seed=1)


def export(tmp_path, *args, **kwargs):
    out = tmp_path / "out.npz"
    call_command("export_samples", *[str(out) if a == "OUT" else a for a in args], **kwargs)
    assert out.is_file()
    z = np.load(out)
    return sorted(zip(z["method"].tolist(), z["strategy"].tolist(), z["recognizer"].tolist())), z


def expected(methods, strategies=("ab", "sa")):
    rows = []
    for method in methods:
        if "ab" in strategies:
            rows += [(method, "ab", "synth-stgcn")] * CLIPS
        if "sa" in strategies and method == "smart":
            rows += [(method, "sa", "synth-sa-stgcn")] * SA_CLIPS
    return sorted(rows)


# --------------------------------------------------------------------------- export_samples

def test_export_filters_before_the_positional(stored, tmp_path):
    """The usage of the issue: filters first, the output file last."""
    rows, z = export(tmp_path, "--method", "smart", "--strategy", "ab", "OUT")
    assert rows == expected(["smart"], ["ab"])
    assert z["original"].shape == z["adversarial"].shape == (CLIPS, 1, 30, 25, 3)


def test_export_readme_usage(stored, tmp_path):
    """README: `export_samples samples.npz --method smart,l2 --strategy ab --successful`."""
    rows, _ = export(tmp_path, "OUT", "--method", "smart,l2", "--strategy", "ab", "--successful")
    assert rows == expected(["smart", "l2"], ["ab"])


def test_export_repeated_flags(stored, tmp_path):
    rows, _ = export(tmp_path, "--method", "smart", "--method", "l2", "--strategy", "ab", "--strategy", "sa", "OUT")
    assert rows == expected(["smart", "l2"])
    rows, _ = export(tmp_path, "--recognizer", "synth-sa-stgcn", "OUT")
    assert rows == expected(["smart"], ["sa"])


def test_export_comma_separated_and_mixed(stored, tmp_path):
    rows, _ = export(tmp_path, "--method", "smart,l2", "--strategy", "ab,sa", "OUT")
    assert rows == expected(["smart", "l2"])
    rows, _ = export(tmp_path, "--method", "iaa,", "--method", "ciasa", "--recognizer", "synth-stgcn,nope", "OUT")
    assert rows == expected(["iaa", "ciasa"], ["ab"])


def test_export_run_ids_are_integers(stored, tmp_path):
    ids = sorted(set(AdversarialSample.objects.filter(method__in=["l2", "iaa"], strategy="ab")
                     .values_list("run_id", flat=True)))
    rows, _ = export(tmp_path, "--run", str(ids[0]), "--run", str(ids[1]), "OUT")
    assert rows == expected(["l2", "iaa"], ["ab"])
    rows, _ = export(tmp_path, "--run", f"{ids[0]},{ids[1]}", "OUT")
    assert rows == expected(["l2", "iaa"], ["ab"])
    with pytest.raises(CommandError, match="invalid value 'x'"):
        call_command("export_samples", "--run", "x", str(tmp_path / "bad.npz"))


def test_export_keyword_arguments_still_work(stored, tmp_path):
    rows, _ = export(tmp_path, "OUT", method=["smart"], strategy=["sa"])
    assert rows == expected(["smart"], ["sa"])
    rows, _ = export(tmp_path, "OUT", method="smart,l2", strategy="ab")
    assert rows == expected(["smart", "l2"], ["ab"])


def test_export_without_filters_and_no_match(stored, tmp_path):
    rows, _ = export(tmp_path, "OUT")
    assert rows == expected(ALL_METHODS)
    with pytest.raises(CommandError, match="no samples match"):
        call_command("export_samples", "--method", "smart", "--strategy", "abn", str(tmp_path / "none.npz"))


def test_export_missing_positional_is_an_error_not_a_filter():
    with pytest.raises(CommandError, match="out"):
        call_command("export_samples", "--method", "smart", "--strategy", "ab")


def test_parser_leaves_the_positional_alone():
    parser = load_command_class("attacks", "export_samples").create_parser("manage.py", "export_samples")
    o = parser.parse_args(["--method", "smart", "--strategy", "ab", "OUT.npz"])
    assert (o.out, o.method, o.strategy, o.recognizer, o.run) == ("OUT.npz", ["smart"], ["ab"], [], [])
    o = parser.parse_args(["--run", "3,4", "--run", "5", "x.npz"])
    assert (o.out, o.run) == ("x.npz", [3, 4, 5])
    study = load_command_class("studies", "create_study").create_parser("manage.py", "create_study")
    o = study.parse_args(["--methods", "smart", "--strategies", "ab", "deceitfulness", "--name", "n"])
    assert (o.kind, o.methods, o.strategies, o.datasets, o.recognizers) == ("deceitfulness", ["smart"], ["ab"],
                                                                            None, None)


# --------------------------------------------------------------------------- create_study

def pool(study):
    ids = [i for s in study.stimuli.all() for i in s.samples.values()]
    return sorted(AdversarialSample.objects.filter(id__in=ids).values_list("method", "strategy"))


def test_create_study_filters_before_the_kind(stored, capsys):
    # Pools never repeat a clip: 4 clips allow 2 trials and 2 practice trials.
    call_command("create_study", "--methods", "smart", "--strategies", "ab", "deceitfulness", "--name", "one",
                 "--trials", "2")
    study = Study.objects.get()
    assert study.kind == "deceitfulness"
    assert (study.config["methods"], study.config["strategies"]) == (["smart"], ["ab"])
    assert pool(study) == [("smart", "ab")] * CLIPS
    assert f"/study/{study.slug}/" in capsys.readouterr().out


def test_create_study_repeated_and_comma_forms(stored):
    # Strategies named too: studies default to AB samples only, as the paper.
    call_command("create_study", "--methods", "smart", "--methods", "iaa", "--recognizers", "synth-stgcn",
                 "--recognizers", "synth-sa-stgcn", "--strategies", "ab", "--strategies", "sa", "deceitfulness",
                 "--name", "repeated", "--trials", "2")
    call_command("create_study", "--methods", "smart,iaa", "--datasets", "synth,synth-sa", "--strategies", "ab,sa",
                 "deceitfulness", "--name", "comma", "--trials", "2")
    repeated, comma = Study.objects.get(slug="repeated"), Study.objects.get(slug="comma")
    assert repeated.config["methods"] == comma.config["methods"] == ["smart", "iaa"]
    assert repeated.config["recognizers"] == ["synth-stgcn", "synth-sa-stgcn"]
    assert comma.config["datasets"] == ["synth", "synth-sa"]
    want = sorted([("smart", "ab")] * CLIPS + [("iaa", "ab")] * CLIPS + [("smart", "sa")] * SA_CLIPS)
    assert pool(repeated) == pool(comma) == want


def test_create_study_readme_usage_and_protocol_defaults(stored):
    """README: `create_study naturalness --name pilot --recognizers gtu-stgcn`; methods
    left out keep the protocol's default."""
    call_command("create_study", "naturalness", "--name", "pilot", "--recognizers", "synth-stgcn", "--trials", "4",
                 "--practice", "0")
    study = Study.objects.get()
    assert study.config["recognizers"] == ["synth-stgcn"] and study.config["datasets"] == []
    assert study.config["methods"] == ["smart", "l2", "l2-acc", "l2-bone"] and study.stimuli.exists()


def test_create_study_and_series_refuse_a_taken_or_empty_slug(stored):
    call_command("create_study", "deceitfulness", "--name", "one", "--trials", "2")
    with pytest.raises(CommandError, match="a study with slug 'one' already exists"):
        call_command("create_study", "deceitfulness", "--name", "one", "--trials", "2")
    with pytest.raises(CommandError, match="letters or digits"):
        call_command("create_study", "deceitfulness", "--name", "!!!", "--trials", "2")
    call_command("create_series", "pair", "--studies", "one")
    with pytest.raises(CommandError, match="a series with slug 'pair' already exists"):
        call_command("create_series", "pair", "--studies", "one")
    assert Study.objects.count() == 1  # nothing half-made
