"""Stimulus pools against a real database: the paper's AB default, one source clip at most
once per participant (practice and catch trials included), pools too small refused with
the numbers, catch trials (broken motions drawn on the fly) and per-view encodings."""
import json
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from attacks.models import AdversarialSample
from studies import assignment
from studies.models import MotionHandle, Study, Trial
from studies.core.payloads import decode_motion
from studies.protocols import get_protocol
from studies.protocols.base import BROKEN, CATCH, ConfigurationError
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"


def participant(study, pid=None):
    p, _ = assignment.start_participation(study, prolific_pid=pid or f"p{study.participants.count()}")
    return p


def clips_shown(p, practice=None):
    trials = p.trials.all() if practice is None else p.trials.filter(is_practice=practice)
    return [t.left.sample.clip_id for t in trials.select_related("left__sample")]


def motion(client, handle):
    return decode_motion(json.loads(client.get(f"/api/motions/{handle.key}/").content))


def test_default_pool_is_ab_samples_only_unless_strategies_are_chosen():
    make_samples(num_clips=6)
    make_samples("synth-sa", num_clips=6, methods=("smart",), strategy="sa", seed=1)
    ab = make_study("deceitfulness", trials_per_participant=3, practice_trials=0)
    assert ab.config["strategies"] == ["ab"]
    strategies = {AdversarialSample.objects.get(pk=s["attacked"]).strategy
                  for s in ab.stimuli.values_list("samples", flat=True)}
    assert strategies == {"ab"} and ab.stimuli.count() == 6
    sa = make_study("deceitfulness", slug="sa", trials_per_participant=3, practice_trials=0, strategies=["sa"])
    assert {AdversarialSample.objects.get(pk=s["attacked"]).strategy
            for s in sa.stimuli.values_list("samples", flat=True)} == {"sa"}


def test_create_study_without_filters_says_what_it_will_use(capsys):
    make_samples(num_clips=6, methods=("smart", "l2"))
    make_samples("synth-sa", num_clips=4, methods=("smart",), strategy="sa", seed=1)
    call_command("create_study", "deceitfulness", "--name", "defaults", "--trials", "3", "--practice", "1")
    out = capsys.readouterr().out
    assert "recognizers synth-stgcn;" in out and "datasets synth;" in out
    assert "strategies ab (the default" in out and "methods smart;" in out
    assert "pool 6 items over 6 distinct clips" in out
    assert "synth-sa" not in out.split("participant link")[0]  # the SA samples are left out


def test_create_study_refuses_a_pool_too_small_with_the_numbers():
    make_samples(num_clips=5, methods=("smart", "l2"))
    with pytest.raises(CommandError, match="holds 5 distinct clips, 100 trials per participant need 100, "
                                           "2 practice trials 2 more \\(102 in all\\)"):
        call_command("create_study", "deceitfulness", "--name", "too small", "--methods", "smart,l2")
    assert not Study.objects.exists()


def test_open_and_build_pool_refuse_too_small_pools():
    make_samples(num_clips=4)
    draft = make_study("indistinguishability", status="draft", trials_per_participant=4, practice_trials=1)
    with pytest.raises(ConfigurationError, match="holds 4 distinct clips, 4 trials per participant need 4, "
                                                 "1 practice trials 1 more"):
        assignment.open_study(draft)
    assert Study.objects.get().status == "draft" and not draft.stimuli.exists()
    # naturalness: two trials per motion, so 6 trials need 3 clips; practice 2 needs 1 more
    assert assignment.build_pool(make_study("naturalness", status="draft", trials_per_participant=6,
                                            practice_trials=2)) == 4


@pytest.mark.parametrize("kind", ["deceitfulness", "indistinguishability", "comparison"])
def test_a_source_clip_is_shown_at_most_once_per_participant_across_methods(kind):
    methods = {"deceitfulness": ["smart", "l2"], "indistinguishability": ["smart", "l2", "l2-acc"],
               "comparison": ["smart", "iaa", "ciasa"]}[kind]
    make_samples(num_clips=8)
    study = make_study(kind, trials_per_participant=6, practice_trials=2, methods=methods)
    conditions = Counter()
    for _ in range(6):
        p = participant(study)
        clips = clips_shown(p)
        assert len(clips) == len(set(clips)) == 8  # 6 main + 2 practice, every clip once
        conditions.update(p.trials.filter(is_practice=False).values_list("condition", flat=True))
    if kind != "deceitfulness":
        assert conditions["sensitivity"] > 0  # the sensitivity trial's clip is its own clip


def test_naturalness_shows_each_motion_in_its_two_trials_and_no_other():
    make_samples(num_clips=5)
    study = make_study("naturalness", trials_per_participant=8, practice_trials=2)
    p = participant(study)
    main = Counter(clips_shown(p, practice=False))
    assert len(main) == 4 and set(main.values()) == {2}
    assert not set(clips_shown(p, practice=True)) & set(main)


def test_clip_repeats_only_when_allowed():
    make_samples(num_clips=4, methods=("smart", "l2"))
    with pytest.raises(ConfigurationError, match="holds 4 distinct clips, 6 trials per participant need 6"):
        make_study("deceitfulness", trials_per_participant=6, practice_trials=0, methods=["smart", "l2"])
    study = make_study("deceitfulness", slug="repeats", trials_per_participant=6, practice_trials=0,
                       methods=["smart", "l2"], allow_clip_repeats=True)
    p = participant(study)
    clips = clips_shown(p)
    assert len(clips) == 6 and len(set(clips)) < 6  # a clip attacked by both methods
    assert len(set(p.trials.values_list("stimulus_id", flat=True))) == 6  # but never one stimulus twice
    # practice still keeps clips of its own when repeats are allowed
    practiced = make_study("deceitfulness", slug="practiced", trials_per_participant=4, practice_trials=1,
                           methods=["smart", "l2"], allow_clip_repeats=True)
    p = participant(practiced)
    assert not set(clips_shown(p, practice=True)) & set(clips_shown(p, practice=False))


def test_practice_takes_clips_outside_the_main_and_catch_trials():
    make_samples(num_clips=9)
    study = make_study("deceitfulness", trials_per_participant=5, practice_trials=2, catch_share=0.4)
    for _ in range(5):
        p = participant(study)
        practice, main = clips_shown(p, practice=True), clips_shown(p, practice=False)
        assert len(practice) == 2 and len(main) == 7 and p.trials.filter(condition=CATCH).count() == 2
        assert not set(practice) & set(main) and len(set(main)) == 7
    with pytest.raises(ConfigurationError, match="9 distinct clips, 6 trials per participant need 6, "
                                                 "2 catch trials 2 more, 2 practice trials 2 more \\(10 in all\\)"):
        make_study("deceitfulness", slug="full", trials_per_participant=6, practice_trials=2, catch_share=0.3)


def test_deceitfulness_catch_trials_show_the_original_with_its_label_against_another_class():
    make_samples(num_clips=8, num_classes=4)
    study = make_study("deceitfulness", trials_per_participant=4, practice_trials=0, catch_share=0.5)
    p = participant(study)
    catch = list(p.trials.filter(condition=CATCH).select_related("left__sample__clip__dataset"))
    assert len(catch) == 2 and p.trials.count() == 6
    for t in catch:
        sample = t.left.sample
        names = sample.clip.dataset.class_names
        assert t.left.variant == MotionHandle.ORIGINAL and t.right is None and t.design["catch"]
        texts = {o["value"]: o["text"] for o in t.options}
        assert texts[t.correct] == names[sample.label]
        wrong = next(v for k, v in texts.items() if k != t.correct)
        assert wrong != names[sample.label] and wrong in names
    assert not p.trials.exclude(condition=CATCH).filter(left__variant=MotionHandle.ORIGINAL).exists()


def test_naturalness_catch_trials_pit_the_original_against_a_broken_copy(client):
    make_samples(num_clips=6, num_frames=30)
    study = make_study("naturalness", trials_per_participant=4, practice_trials=0, catch_share=1.0)
    sides = Counter()
    for _ in range(2):
        p = participant(study)
        catch = list(p.trials.filter(condition=CATCH).select_related("left__sample", "right__sample"))
        assert len(catch) == 4
        for t in catch:
            assert t.left.sample_id == t.right.sample_id and {t.design["left_method"], t.design["right_method"]} \
                == {"original", BROKEN}
            intact, broken = (t.right, t.left) if t.design["left_method"] == BROKEN else (t.left, t.right)
            assert t.correct == ("left" if intact == t.left else "right") and t.options[2]["value"] == "cannot_tell"
            original = t.left.sample.original_motion()
            assert np.abs(motion(client, intact) - original).max() < 1e-3
            shaken = motion(client, broken)
            assert shaken.shape == original.shape and np.abs(shaken - original).mean() > 0.05  # centimetres off
            sides[t.correct] += 1
    assert sides["left"] == sides["right"] == 4  # the original's side is balanced


def test_indistinguishability_catch_trial_breaks_the_right_motion(client):
    make_samples(num_clips=6)
    study = make_study("comparison", trials_per_participant=4, practice_trials=0, catch_share=0.5)
    p = participant(study)
    catch = list(p.trials.filter(condition=CATCH))
    assert len(catch) == 2
    for t in catch:
        assert t.correct == "changed" and t.design["right_method"] == BROKEN
        assert np.abs(motion(client, t.right) - t.left.sample.original_motion()).mean() > 0.05
        assert np.abs(motion(client, t.left) - t.left.sample.original_motion()).max() < 1e-3


@pytest.mark.parametrize("kind", ["deceitfulness", "naturalness", "indistinguishability", "comparison"])
def test_ordinary_trials_never_use_the_broken_view(kind):
    make_samples(num_clips=12)
    study = make_study(kind, trials_per_participant=8, practice_trials=2, catch_share=0.25)
    broken = getattr(get_protocol(kind), "BROKEN_VIEW", None)
    for _ in range(3):
        for t in participant(study).trials.select_related("left", "right"):
            views = {(h.variant, h.side) for h in (t.left, t.right) if h is not None}
            assert (broken in views) == (t.condition == CATCH and kind != "deceitfulness"), t.condition


def test_sensitivity_views_differ_in_bytes_but_not_in_motion(client):
    make_samples(num_clips=6)
    study = make_study("indistinguishability", trials_per_participant=6, practice_trials=0)
    p = participant(study)
    sensitivity = list(p.trials.filter(condition="sensitivity"))
    assert sensitivity
    for t in sensitivity:
        left = client.get(f"/api/motions/{t.left.key}/").content
        right = client.get(f"/api/motions/{t.right.key}/").content
        assert left != right
        a, b = json.loads(left), json.loads(right)
        assert a["data"] != b["data"] and a["offset"] != b["offset"]
        assert np.abs(decode_motion(a) - decode_motion(b)).max() < 1e-3  # within a millimetre
        assert np.abs(decode_motion(a) - t.left.sample.original_motion()).max() < 1e-3


def test_create_study_takes_catch_share_and_clip_repeats(capsys):
    make_samples(num_clips=4, methods=("smart", "l2"))
    call_command("create_study", "deceitfulness", "--name", "catchy", "--datasets", "synth", "--recognizers",
                 "synth-stgcn", "--methods", "smart,l2", "--trials", "4", "--practice", "1", "--catch-share", "0.4",
                 "--allow-clip-repeats")
    out = capsys.readouterr().out
    assert "no --datasets" not in out  # both filters given: nothing to announce
    study = Study.objects.get()
    assert study.config["catch_share"] == 0.4 and study.config["allow_clip_repeats"] is True
    p = participant(study)
    assert p.trials.filter(condition=CATCH).count() == 2 and p.trials.count() == 7  # 8 items, 6 off practice's clip
    with pytest.raises(CommandError, match="catch_share must lie in"):
        call_command("create_study", "deceitfulness", "--name", "bad", "--catch-share", "1.5")


def test_api_bots_never_meet_a_clip_twice_and_see_every_catch_trial(client):
    make_samples(num_clips=10, methods=("smart", "l2", "l2-acc"))
    make_study("deceitfulness", trials_per_participant=6, practice_trials=1, methods=["smart", "l2", "l2-acc"],
               catch_share=0.5)
    for i in range(10):
        r = client.post("/api/studies/deceitfulness/participations/",
                        {"consent": True, "PROLIFIC_PID": f"bot{i}", "SESSION_ID": f"s{i}"}, content_type=JSON)
        assert r.status_code == 201, r.content
        token, clips, catch = r.json()["token"], [], 0
        while not (n := client.get(f"/api/participations/{token}/next/").json())["done"]:
            t = n["trial"]
            trial = Trial.objects.select_related("left__sample").get(key=t["trial"])
            clips.append(trial.left.sample.clip_id)
            catch += trial.condition == CATCH
            body = {"trial": t["trial"], "answer": t["options"][0]["value"], "response_time_ms": 800,
                    "playback": {"measured_duration_ms": 6000.0, "frames_drawn": 180, "late_frames": 0,
                                 "page_hidden": False}}
            assert client.post(f"/api/participations/{token}/answers/", body, content_type=JSON).status_code == 201
        assert len(clips) == len(set(clips)) == 10 and catch == 3
