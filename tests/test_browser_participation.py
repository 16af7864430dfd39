"""The participation and ethics screens of the participant app in real headless Chromium:
the questionnaire after consent, a kept token dropped for another PROLIFIC_PID (shared
computers), resume by the same SESSION_ID, the outcome's code with the debrief,
withdrawal from the completion page, and the decline path. One test: browser tests
are slow, and these steps follow one participant."""
from __future__ import annotations

import pytest

from studies.models import Participant
from tests.browser_support import (StudyBot, chromium, page, playwright_driver,  # noqa: F401
                                   save_screenshot, study_with_samples)

pytestmark = pytest.mark.browser
QUESTIONS = [{"name": "age_band", "label": "Age", "choices": ["18-29", "30-49", "50+"]}]


def consent_and_answer(page, bot, query: str, check_required: bool = False):
    """Open the study, agree, answer the questionnaire (first trying without an answer
    when `check_required`) and wait for the instructions."""
    bot.open("deceitfulness", query)
    bot.wait_screen("consent")
    page.get_by_label("I have read the text above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    bot.wait_screen("questionnaire")
    if check_required:
        page.locator("#questionnaire-submit").click()
        assert page.locator("#questionnaire-error").is_visible() and Participant.objects.count() == 0
        save_screenshot(page, "questionnaire")
    page.get_by_label("30-49").check()
    page.locator("#questionnaire-submit").click()
    bot.wait_screen("instructions")


def test_questionnaire_pid_rule_outcome_code_withdrawal_and_decline(page, live_server):
    study_with_samples("deceitfulness", num_clips=6, trials_per_participant=1, practice_trials=0,
                       playback_seconds=0.5, questionnaire=QUESTIONS, debrief_text="The motions were altered.",
                       completion_codes={"completed": "DONE01", "no_consent": "NOC04"})
    bot = StudyBot(page, live_server.url)
    consent_and_answer(page, bot, "?PROLIFIC_PID=pid-a&SESSION_ID=s1", check_required=True)
    first = Participant.objects.get()
    assert first.questionnaire == {"age_band": "30-49"} and first.consent_version

    # Another person's link on the same computer: the kept token is not theirs.
    bot.open("deceitfulness", "?PROLIFIC_PID=pid-b")
    bot.wait_screen("consent")
    assert page.evaluate("localStorage.getItem('smart-study:deceitfulness')") is None
    # The first person again, same Prolific session: consent resumes their participation.
    consent_and_answer(page, bot, "?PROLIFIC_PID=pid-a&SESSION_ID=s1")
    assert Participant.objects.count() == 1
    assert '"pid":"pid-a"' in page.evaluate("localStorage.getItem('smart-study:deceitfulness')")

    bot.begin()
    bot.play()
    bot.answer(0)
    bot.wait_screen("complete")
    assert page.locator("#completion-code").text_content() == "DONE01"
    assert page.locator("#debrief-text").text_content() == "The motions were altered."
    assert page.evaluate("document.body.dataset.outcome") == "completed"
    save_screenshot(page, "complete_with_debrief")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete my data").click()
    bot.wait_screen("withdrawn")
    assert Participant.objects.count() == 0
    assert page.evaluate("localStorage.getItem('smart-study:deceitfulness')") is None

    bot.open("deceitfulness", "?PROLIFIC_PID=pid-c")
    bot.wait_screen("consent")
    page.get_by_role("link", name="I do not agree").click()
    page.wait_for_url("**/declined/?PROLIFIC_PID=pid-c")
    assert page.locator("#no-consent-code").text_content() == "NOC04"
    save_screenshot(page, "declined")
    assert Participant.objects.count() == 0
    assert not page.console_errors, page.console_errors


def test_series_one_consent_then_each_study_page_then_the_series_code(page, live_server):
    from django.core.management import call_command

    from tests.factories import make_study
    study_with_samples("deceitfulness", slug="part-a", num_clips=6, trials_per_participant=1, practice_trials=0,
                       playback_seconds=0.5)
    make_study("naturalness", slug="part-b", trials_per_participant=1, practice_trials=0, playback_seconds=0.5)
    call_command("create_series", "Two parts", "--studies", "part-a,part-b", "--completion-code", "SER1ES")
    bot = StudyBot(page, live_server.url)
    page.goto(f"{live_server.url}/series/two-parts/?PROLIFIC_PID=pid-s&SESSION_ID=ss")
    bot.wait_screen("consent")
    page.get_by_label("I have read the text above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/study/part-a/?PROLIFIC_PID=pid-s&SESSION_ID=ss")
    bot.wait_screen("instructions")  # no second consent: the series' one holds
    bot.begin()
    bot.play()
    bot.answer(0)
    bot.wait_screen("next-part")
    assert "Part 1 of 2 is done" in page.locator("#next-part-text").text_content()
    page.get_by_role("button", name="Continue with the next part").click()
    page.wait_for_url("**/study/part-b/?PROLIFIC_PID=pid-s&SESSION_ID=ss")
    bot.wait_screen("instructions")
    bot.begin()
    bot.play()
    bot.answer(0)
    bot.wait_screen("complete")
    assert page.locator("#completion-code").text_content() == "SER1ES"
    parts = Participant.objects.filter(series_participant__isnull=False).order_by("study__slug")
    assert [(p.study.slug, p.status) for p in parts] == [("part-a", "completed"), ("part-b", "completed")]
    # Back on the series link later: the series has ended, its code is shown again.
    page.goto(f"{live_server.url}/series/two-parts/?PROLIFIC_PID=pid-s&SESSION_ID=ss")
    bot.wait_screen("ended")
    assert page.locator("#completion-code").text_content() == "SER1ES"
    assert not page.console_errors, page.console_errors
