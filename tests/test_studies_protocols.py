"""Trial lists of the four protocols at the paper's full counts (no database): counts,
counterbalancing, answer keys, sampling with replacement and even stimulus spread."""
from collections import Counter

import numpy as np
import pytest

from studies.protocols import comparison, deceitfulness, get_protocol, indistinguishability, naturalness
from studies.protocols.base import ADVERSARIAL, ORIGINAL, ConfigurationError, PoolItem, SampleInfo, least_used

NAMES = tuple(f"class {k}" for k in range(10))
METHODS = ("smart", "l2", "l2-acc", "l2-bone", "iaa", "ciasa")


def world(num_clips=200, methods=METHODS):
    infos, next_id = {}, 1
    for clip in range(num_clips):
        for m in methods:
            infos[next_id] = SampleInfo(id=next_id, clip=clip, recognizer=1, strategy="ab", method=m,
                                        dataset="hdm05" if clip % 2 else "mhad", label=clip % 10,
                                        label_after=(clip + 3) % 10, success=True, class_names=NAMES)
            next_id += 1
    return infos


def trials_for(protocol, infos, seed=0, **config):
    config = protocol.validate(config)
    pool = [PoolItem(i.condition, i.samples, id=k) for k, i in enumerate(protocol.pool_items(list(infos.values()),
                                                                                            config))]
    return protocol.build_trials(pool, infos, config, np.random.default_rng(seed)), pool, config


def test_deceitfulness_hundred_trials_with_truth_and_after_labels_balanced():
    infos = world()
    trials, _, _ = trials_for(deceitfulness, infos)
    assert len(trials) == 100
    assert len({t.left.sample for t in trials}) == 100  # enough stimuli: no repeats
    truth_first = 0
    for t in trials:
        s = infos[t.left.sample]
        assert t.right is None and t.left.variant == ADVERSARIAL and s.method == "smart"
        texts = [o["text"] for o in t.options]
        assert sorted(texts) == sorted([NAMES[s.label], NAMES[s.label_after]])
        chosen_text = next(o["text"] for o in t.options if o["value"] == t.correct)
        assert chosen_text == NAMES[s.label]
        truth_first += texts[0] == NAMES[s.label]
    assert truth_first == 50


def test_deceitfulness_pool_skips_failed_and_unchanged_label_samples():
    infos = world(4, ("smart",))
    infos[1] = SampleInfo(**{**infos[1].__dict__, "success": False})
    infos[2] = SampleInfo(**{**infos[2].__dict__, "label_after": infos[2].label})
    items = deceitfulness.pool_items(list(infos.values()), deceitfulness.validate({}))
    assert sorted(i.samples["attacked"] for i in items) == [3, 4]


def test_naturalness_fifty_motions_two_trials_each_counterbalanced():
    infos = world()
    trials, _, _ = trials_for(naturalness, infos)
    assert len(trials) == 100
    per_motion = Counter(t.pool_item.id for t in trials)
    assert len(per_motion) == 50 and set(per_motion.values()) == {2}
    by_type = Counter(t.condition for t in trials)
    assert by_type == {"smart-vs-ablation": 50, "ablation-vs-ablation": 50}
    smart_left = 0
    for t in trials:
        methods = {t.left.method, t.right.method}
        assert infos[t.left.sample].clip == infos[t.right.sample].clip  # the same motion, two losses
        assert t.left.variant == t.right.variant == ADVERSARIAL
        assert t.left.method != t.right.method
        if t.condition == "smart-vs-ablation":
            assert "smart" in methods and len(methods & set(naturalness.ABLATIONS)) == 1
            smart_left += t.left.method == "smart"
        else:
            assert methods <= set(naturalness.ABLATIONS)
        assert [o["value"] for o in t.options] == ["left", "right", "cannot_tell"]
    assert smart_left == 25
    # each motion's pair of trials: one of each type
    for item in per_motion:
        assert {t.condition for t in trials if t.pool_item.id == item} == {"smart-vs-ablation",
                                                                          "ablation-vs-ablation"}


def test_indistinguishability_left_always_original_and_half_sensitivity():
    infos = world()
    trials, _, _ = trials_for(indistinguishability, infos)
    assert len(trials) == 100
    assert Counter(t.condition for t in trials) == {"sensitivity": 50, "smart": 50}
    for t in trials:
        assert t.left.variant == ORIGINAL and t.left.sample == t.right.sample
        if t.condition == "sensitivity":
            assert t.right.variant == ORIGINAL and t.correct == "unchanged"
        else:
            assert t.right.variant == ADVERSARIAL and t.correct == "changed"


def test_indistinguishability_sensitivity_share_is_configurable():
    trials, _, _ = trials_for(indistinguishability, world(), sensitivity_share=0.2, trials_per_participant=40)
    assert Counter(t.condition for t in trials)["sensitivity"] == 8


def test_comparison_hundred_twenty_pairs_thirty_per_condition():
    infos = world()
    trials, _, _ = trials_for(comparison, infos)
    assert len(trials) == 120
    assert Counter(t.condition for t in trials) == {"sensitivity": 30, "smart": 30, "iaa": 30, "ciasa": 30}
    for t in trials:
        assert t.left.variant == ORIGINAL
        right = infos[t.right.sample]
        assert right.clip == infos[t.left.sample].clip
        if t.condition == "sensitivity":
            assert t.right.variant == ORIGINAL
        else:
            assert t.right.variant == ADVERSARIAL and right.method == t.condition


@pytest.mark.parametrize("kind,full,clips", [("deceitfulness", 100, 100), ("naturalness", 100, 50),
                                             ("indistinguishability", 100, 100), ("comparison", 120, 120)])
def test_defaults_are_the_papers_counts_and_small_pools_are_refused_not_resampled(kind, full, clips):
    protocol = get_protocol(kind)
    assert protocol.validate({})["trials_per_participant"] == full
    with pytest.raises(ConfigurationError, match=f"holds 5 distinct clips for this draw, {clips} are needed"):
        trials_for(protocol, world(num_clips=5))
    # exactly enough clips: every one of them once, none twice
    infos = world(num_clips=clips)
    trials, pool, _ = trials_for(protocol, infos)
    assert len(trials) == full
    shown = Counter(infos[t.left.sample].clip for t in trials if kind != "naturalness" or
                    t.condition == "smart-vs-ablation")
    assert len(shown) == clips and set(shown.values()) == {1}


def test_trial_lists_are_reproducible_from_the_seed_and_differ_between_seeds():
    infos = world()
    a, _, _ = trials_for(deceitfulness, infos, seed=7)
    b, _, _ = trials_for(deceitfulness, infos, seed=7)
    c, _, _ = trials_for(deceitfulness, infos, seed=8)
    key = lambda ts: [(t.left.sample, t.correct) for t in ts]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)


def test_least_used_prefers_rarely_shown_stimuli():
    pool = [PoolItem("x", {"attacked": i}, id=i, usage=u) for i, u in enumerate([5, 0, 3, 0, 1])]
    chosen = least_used(pool, 3, np.random.default_rng(0))
    assert sorted(p.id for p in chosen) == [1, 3, 4]


@pytest.mark.parametrize("config,message", [
    ({"slow_motion": 2}, "slow_motion"), ({"trials_per_participant": 0}, "trials_per_participant"),
    ({"screening_threshold": 1.5}, "screening_threshold"), ({"bogus": 1}, "unknown"),
    ({"repeats": "two"}, "repeats"), ({"datasets": [1]}, "datasets")])
def test_invalid_configurations_are_rejected_with_the_key_named(config, message):
    with pytest.raises(ConfigurationError, match=message):
        deceitfulness.validate(config)


def test_naturalness_needs_smart_and_two_ablations():
    with pytest.raises(ConfigurationError, match="naturalness"):
        naturalness.validate({"methods": ["smart", "l2"]})


def test_empty_pool_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="empty"):
        deceitfulness.build_trials([], {}, deceitfulness.validate({}), np.random.default_rng(0))
