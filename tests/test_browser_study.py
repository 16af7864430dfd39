"""The participant app in real headless Chromium against a live server: whole
participations of each study kind, the database rows they leave, resume after reload,
replay after a hidden page, retried loads, the device gate and skeleton pixels on screen.

Studies here are short (2-3 trials, 0.5-1 s playback) to keep the suite fast; the exact
6-second and 18-second timings are checked in test_browser_playback.py.
"""
from __future__ import annotations

import time

import pytest

from studies.assignment import close_study
from studies.models import Participant, Response, Study
from tests.browser_support import (StudyBot, chromium, launch_chromium, page, playwright_driver,  # noqa: F401
                                   save_screenshot, study_with_samples, viewport_pixels, VIEWPORT)

pytestmark = pytest.mark.browser
MIN_SKELETON_PIXELS = 300


def assert_playback_log(response: Response, sent: list[dict]):
    """Every stored answer carries the browser's playback log; its duration is the one
    the server planned for the trial (natural speed, whole showings: studies.core.playback),
    overshooting by less than the frame that crossed the end (test_browser_playback.py
    checks the clock frame by frame)."""
    log = response.playback
    assert set(log) >= {"measured_duration_ms", "frames_drawn", "late_frames", "page_hidden",
                        "median_frame_interval_ms", "final_frame_interval_ms", "replays", "showings",
                        "effective_fps"}, log
    full = [s["playback"] for s in sent if s["trial"] == response.trial.key][-1]
    assert {k: full[k] for k in log} == log  # stored as sent
    final = full["final_frame_interval_ms"]
    expected_ms = round(response.trial.playback_plan["total_seconds"] * 1000, 3)
    assert full["expected_duration_ms"] == pytest.approx(expected_ms, abs=0.002)
    assert full["showings"] == response.trial.playback_plan["showings"]
    assert expected_ms <= log["measured_duration_ms"] <= expected_ms + final + 0.002, full
    # rAF timestamps and performance.now() agree up to scheduling delays (generous on a
    # loaded 2-core machine; the duration itself is judged on the rAF clock above).
    assert abs(full["wall_duration_ms"] - log["measured_duration_ms"]) <= 2 * max(full["max_frame_interval_ms"],
                                                                               1000 / 60) + 50, full
    assert log["frames_drawn"] >= 3, full  # the motion was animated, not just shown at both ends
    assert 0 <= log["late_frames"] < log["frames_drawn"]
    assert response.response_time_ms >= 0


def skeleton_pixels(page, name: str, views: int) -> list[int]:
    png = save_screenshot(page, name)
    return viewport_pixels(png, page.locator("#player").bounding_box(), views)


def test_deceitfulness_participation_end_to_end(page, live_server):
    redirect = f"{live_server.url}/api/studies/deceitfulness/?cc={{code}}&pid={{PROLIFIC_PID}}"
    study = study_with_samples("deceitfulness", trials_per_participant=2, practice_trials=1, playback_seconds=1.0,
                               redirect_url=redirect)
    bot = StudyBot(page, live_server.url)
    bot.open("deceitfulness", "?PROLIFIC_PID=pid-42&STUDY_ID=st-7&SESSION_ID=se-9")
    bot.wait_screen("consent")
    save_screenshot(page, "consent")
    # Consent is required: starting without the box ticked only shows a message.
    page.get_by_role("button", name="Start").click()
    assert page.locator("#consent-error").is_visible()
    assert Participant.objects.count() == 0
    bot.consent()
    save_screenshot(page, "instructions_deceitfulness")
    participant = Participant.objects.get()
    assert (participant.prolific_pid, participant.prolific_study_id, participant.prolific_session_id) == \
        ("pid-42", "st-7", "se-9")
    assert participant.browser["userAgent"] and participant.screen["innerWidth"] == VIEWPORT["width"]

    bot.begin()
    info = bot.trial()
    assert info["practice"] and info["counter"] == "Practice 1 of 1" and info["options"] == ["1", "2"]
    assert skeleton_pixels(page, "trial_deceitfulness", 1)[0] > MIN_SKELETON_PIXELS
    assert all(bot.options_disabled()), "answers must be locked before playback"
    during = bot.play()
    assert during["frames"] >= 3 and during["unlocked"] == 0, f"answers must stay locked during playback: {during}"
    assert not any(bot.options_disabled()), "answers unlock when playback ends"
    bot.answer(key="2")
    assert bot.wait_next() == "feedback"
    save_screenshot(page, "feedback_practice")
    practice = Response.objects.get(trial__is_practice=True)
    shown = page.locator("#feedback-text").text_content()
    assert ("Correct" in shown) == bool(practice.is_correct)
    page.keyboard.press("Enter")

    for k in range(2):
        bot.wait_state("ready")
        assert bot.trial()["counter"] == f"Question {k + 1} of 2"
        bot.play()
        bot.answer(index=k % 2)
    assert bot.wait_next() == "complete"
    save_screenshot(page, "complete")
    participant.refresh_from_db()
    code = study.config["completion_code"]
    assert page.locator("#completion-code").text_content() == code
    assert participant.status == Participant.COMPLETED
    responses = list(Response.objects.filter(participant=participant).select_related("trial"))
    assert len(responses) == 3 and {r.trial.position for r in responses} == {0, 1, 2}
    for response in responses:
        assert response.answer in ("1", "2")
        assert_playback_log(response, bot.sent)
    # The crowdsourcing redirect carries the completion code and the participant's id.
    page.wait_for_url(f"**/api/studies/deceitfulness/?cc={code}&pid=pid-42", timeout=15_000)
    assert not page.console_errors, page.console_errors


def test_naturalness_participation_with_keyboard_and_repeats(page, live_server):
    study_with_samples("naturalness", trials_per_participant=2, practice_trials=0, playback_seconds=0.5, repeats=2)
    bot = StudyBot(page, live_server.url)
    bot.open("naturalness")
    bot.consent()
    save_screenshot(page, "instructions_naturalness")
    bot.begin()
    left, right = skeleton_pixels(page, "trial_naturalness", 2)
    assert left > MIN_SKELETON_PIXELS and right > MIN_SKELETON_PIXELS, (left, right)
    assert bot.trial()["options"] == ["left", "right", "cannot_tell"]
    # The space bar starts playback; answer keys pressed while it plays are ignored
    # (dispatched in the same task as the start, so a slow machine cannot end the
    # playback first); the arrow keys and digits answer afterwards.
    state = page.evaluate("""() => {
        const key = (k) => document.body.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
        key(' ');
        const started = document.body.dataset.state;
        key('ArrowLeft');
        key('1');
        return [started, document.body.dataset.state];
    }""")
    assert state == ["playing", "playing"]
    bot.wait_state("answering")
    bot.answer(key="ArrowRight")
    bot.wait_next()
    page.locator("#status").click()  # focus off the Play button so the page's own key handler acts
    page.keyboard.press("Space")
    bot.wait_state("answering")
    bot.answer(key="3")
    assert bot.wait_next() == "complete"
    responses = list(Response.objects.order_by("trial__position"))
    assert [r.answer for r in responses] == ["right", "cannot_tell"]
    for response in responses:
        assert_playback_log(response, bot.sent)
    assert not page.console_errors, page.console_errors


def test_indistinguishability_reload_resumes_and_hidden_page_replays(page, live_server):
    study_with_samples("indistinguishability", trials_per_participant=3, practice_trials=0, playback_seconds=1.0)
    bot = StudyBot(page, live_server.url)
    bot.open("indistinguishability")
    bot.consent()
    save_screenshot(page, "instructions_indistinguishability")
    bot.begin()
    left, right = skeleton_pixels(page, "trial_indistinguishability", 2)
    assert left > MIN_SKELETON_PIXELS and right > MIN_SKELETON_PIXELS, (left, right)
    labels = page.locator("#view-labels span").all_text_contents()
    assert labels == ["Left: original", "Right"]
    bot.play()
    bot.answer(index=0)
    bot.wait_next()
    second = page.evaluate("document.body.dataset.trial")

    # Reload in the middle of playing the second trial: the page resumes at that trial.
    page.locator("#play").click()
    bot.wait_state("playing", timeout=5_000)
    page.reload()
    bot.wait_state("ready")
    assert page.evaluate("document.body.dataset.trial") == second
    assert bot.trial()["position"] == 1 and bot.trial()["counter"] == "Question 2 of 3"
    assert Response.objects.count() == 1

    # Hide the page during playback (two frames in, in the same task as Play so that a
    # slow machine cannot finish the playback first): playback stops and the trial
    # replays from the start.
    page.evaluate("""async () => {
        document.getElementById('play').click();
        for (let i = 0; i < 2; i++) await new Promise(requestAnimationFrame);
        if (document.body.dataset.state !== 'playing') throw new Error('not playing');
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(300)
    assert page.evaluate("document.body.dataset.state") == "playing"  # waits for the page to come back
    assert all(bot.options_disabled())
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    bot.wait_state("ready")
    assert "play again" in page.locator("#status").text_content()
    assert all(bot.options_disabled())
    bot.play()
    bot.answer(index=1)
    bot.wait_next()
    bot.play()
    bot.answer(index=0)
    assert bot.wait_next() == "complete"

    responses = list(Response.objects.order_by("trial__position").select_related("trial"))
    assert [r.trial.position for r in responses] == [0, 1, 2]
    assert [r.answer for r in responses] == ["changed", "unchanged", "changed"]
    assert [r.playback["page_hidden"] for r in responses] == [False, True, False]
    for response in responses:
        assert_playback_log(response, bot.sent)
    # A reload after completion shows the completion page again, not a new participation.
    page.reload()
    bot.wait_screen("complete")
    assert Participant.objects.count() == 1
    assert not page.console_errors, page.console_errors


def test_failed_loads_are_retried_then_reported(page, live_server):
    study_with_samples("deceitfulness", trials_per_participant=2, practice_trials=0, playback_seconds=0.5)
    calls = {"n": 0, "fail": 2}

    def flaky(route):
        calls["n"] += 1
        if calls["n"] <= calls["fail"]:
            route.abort()
        else:
            route.continue_()

    page.route("**/next/", flaky)
    bot = _begin(page, live_server, "deceitfulness")  # two failures, then the retry loads the whole trial
    assert calls["n"] == 3
    assert page.locator("#stage-overlay").is_hidden()
    bot.play()
    calls.update(n=0, fail=10)  # now the next trial never loads
    bot.answer(index=0)
    bot.wait_screen("error", timeout=15_000)
    assert calls["n"] == 4  # first attempt + 3 retries
    assert "could not be loaded" in page.locator("#error-text").text_content()
    save_screenshot(page, "error_load")
    page.unroute("**/next/")
    page.get_by_role("button", name="Try again").click()
    bot.wait_state("ready")
    assert bot.trial()["position"] == 1
    bot.play()
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    assert Response.objects.count() == 2


def test_rate_limited_request_waits_for_retry_after_then_loads(page, live_server):
    study_with_samples("deceitfulness", trials_per_participant=1, practice_trials=0, playback_seconds=0.5)
    seen = []

    def throttled_once(route):
        seen.append(time.monotonic())
        if len(seen) == 1:
            route.fulfill(status=429, headers={"Retry-After": "2"}, content_type="application/json",
                          body='{"detail": "Request was throttled. Expected available in 2 seconds."}')
        else:
            route.continue_()

    page.route("**/next/", throttled_once)
    bot = _begin(page, live_server, "deceitfulness")
    assert len(seen) == 2 and seen[1] - seen[0] >= 1.9  # the server's Retry-After, not the 0.5 s retry
    assert page.locator("#stage-overlay").is_hidden()
    bot.play()
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    assert Response.objects.count() == 1


def test_device_gate_refuses_phones_small_windows_and_missing_webgl(chromium, playwright_driver, live_server,
                                                                   transactional_db):
    study_with_samples("naturalness", trials_per_participant=1)
    url = f"{live_server.url}/study/naturalness/"

    phone = chromium.new_context(**playwright_driver.devices["Pixel 7"])
    p = phone.new_page()
    p.goto(url)
    p.wait_for_function("document.body.dataset.screen === 'gate'")
    assert "phones" in p.locator("#gate-reason").text_content()
    save_screenshot(p, "gate_phone")
    phone.close()

    small = chromium.new_context(viewport={"width": 800, "height": 500})
    p = small.new_page()
    p.goto(url)
    p.wait_for_function("document.body.dataset.screen === 'gate'")
    assert "too small" in p.locator("#gate-reason").text_content()
    save_screenshot(p, "gate_small_window")
    p.set_viewport_size(VIEWPORT)  # enlarging the window lifts the gate
    p.wait_for_function("document.body.dataset.screen === 'consent'")
    small.close()

    no_webgl = launch_chromium(playwright_driver, ["--disable-3d-apis", "--disable-webgl"])
    try:
        p = no_webgl.new_page(viewport=VIEWPORT)
        p.goto(url)
        p.wait_for_function("document.body.dataset.screen === 'gate'")
        assert "WebGL" in p.locator("#gate-reason").text_content()
        save_screenshot(p, "gate_no_webgl")
    finally:
        no_webgl.close()
    assert Participant.objects.count() == 0


def test_closed_study_page_in_the_browser(page, live_server):
    study = study_with_samples("naturalness", trials_per_participant=1)
    close_study(study)
    response = page.goto(f"{live_server.url}/study/naturalness/")
    assert response.status == 410
    assert "has closed" in page.locator("h1 + p").text_content()
    save_screenshot(page, "unavailable")
    assert Study.objects.get().status == Study.CLOSED


def _begin(page, live_server, kind) -> StudyBot:
    """Open a study, consent and start its first trial (the routes set before apply)."""
    bot = StudyBot(page, live_server.url)
    bot.open(kind)
    bot.consent()
    bot.begin()
    return bot
