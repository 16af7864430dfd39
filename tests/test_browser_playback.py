"""Playback timing and drawing in real headless Chromium (6 s and 3x slow-motion 18 s,
measured by the player itself), the browser decoder against the Python encoder, the
staff preview, plus the page views and the vendored three.js checked without a browser.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from attacks.models import AdversarialSample
from studies.assignment import close_study, open_study
from studies.models import Response
from studies.core.payloads import decode_motion, encode_motion
from tests.browser_support import (StudyBot, chromium, page, playwright_driver,  # noqa: F401
                                   save_screenshot, study_with_samples, viewport_pixels)

ROOT = Path(__file__).resolve().parents[1]
THREE_DIR = ROOT / "static" / "vendor" / "three"
NOMINAL_FRAME_MS = 1000 / 60
LATE = 1.5  # the player's late-frame factor
FPS = 30.0  # tests.factories records its motions at 30 frames per second

# A virtual clock for the page: requestAnimationFrame callbacks wait until the test
# advances time, so frame-by-frame timing is asserted exactly and cannot flake on a
# loaded machine. `__run(step_ms, stall)` clicks Play and drives the clock until the
# answers unlock, recording after each animation frame what the player shows.
VIRTUAL_CLOCK = """() => {
    const clock = {now: 10000, next: 1, pending: new Map()};
    window.requestAnimationFrame = (callback) => { clock.pending.set(clock.next, callback); return clock.next++; };
    window.cancelAnimationFrame = (id) => { clock.pending.delete(id); };
    const canvas = document.getElementById('player');
    window.__run = async (stepMs, stall = null) => {
        document.getElementById('play').click();
        const seen = [];
        let first = null;  // the first frame's timestamp: t is what the player calls elapsed
        for (let i = 0; i < 20000 && document.body.dataset.state === 'playing'; i++) {
            const step = stall && i === stall.at ? stall.ms : stepMs;
            clock.now += step;
            const due = [...clock.pending.values()];
            clock.pending.clear();
            for (const callback of due) callback(clock.now);
            if (first === null) first = clock.now;
            seen.push({t: clock.now - first, frame: Number(canvas.dataset.frame),
                       showing: Number(canvas.dataset.showing), state: document.body.dataset.state,
                       optionsHidden: document.getElementById('options').hidden});
            await new Promise((resolve) => setTimeout(resolve, 0));  // let the app react
        }
        return seen;
    };
}"""


def expected_frame(t_ms: float, frames: int, clip_ms: float, pause_ms: float, showings: int, slow: float) -> float:
    """The motion frame a natural-speed player shows `t_ms` after its first frame."""
    period = clip_ms + pause_ms
    showing = min(int(t_ms // period), showings - 1)
    within = t_ms - showing * period
    return frames - 1 if within >= clip_ms else min(within / slow / 1000 * FPS, frames - 1)


def run_on_virtual_clock(page, live_server, kind: str, step_ms: float = 1000 / 60, stall=None, **config):
    study_with_samples(kind, trials_per_participant=1, practice_trials=0, **config)
    bot = StudyBot(page, live_server.url)
    bot.open(kind)
    bot.consent()
    bot.begin()
    page.evaluate(VIRTUAL_CLOCK)
    seen = page.evaluate("([step, stall]) => window.__run(step, stall)", [step_ms, stall])
    bot.wait_state("answering")
    return bot, seen


@pytest.mark.browser
def test_a_30_fps_two_second_clip_plays_in_two_seconds_then_repeats_after_a_pause(page, live_server):
    """61 frames at 30 fps last 2 s: the player reaches the last frame 2 s after the
    first, holds it for the 0.5 s pause, starts again from frame 0, and stops after the
    whole showings nearest the 5 s budget (2), with every frame in between following
    the motion's own clock. The server planned the same schedule and stored it."""
    bot, seen = run_on_virtual_clock(page, live_server, "indistinguishability", num_frames=61,
                                     playback_seconds=5.0, repeat_pause_seconds=0.5)
    playing = [s for s in seen if s["state"] == "playing"]
    for s in playing:
        assert s["frame"] == pytest.approx(expected_frame(s["t"], 61, 2000, 500, 2, 1), abs=2e-3), s
    first_last = next(s["t"] for s in playing if s["frame"] >= 60)
    assert 2000 - NOMINAL_FRAME_MS < first_last <= 2000 + NOMINAL_FRAME_MS
    restart = next(s for s in playing if s["showing"] == 1)
    assert 2500 <= restart["t"] < 2500 + NOMINAL_FRAME_MS + 1e-6 and restart["frame"] < FPS * NOMINAL_FRAME_MS / 1000 + 1e-3
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    log = bot.sent[-1]["playback"]
    assert log["showings"] == 2 and log["clip_seconds"] == 2.0 and log["pause_seconds"] == 0.5
    assert log["motion_fps"] == FPS and log["effective_fps"] == FPS and log["slow_motion"] == 1
    assert log["expected_duration_ms"] == 4500
    assert 4500 <= log["measured_duration_ms"] < 4500 + NOMINAL_FRAME_MS + 0.002, log
    assert log["showing_starts_ms"][0] == 0 and 2500 <= log["showing_starts_ms"][1] < 2500 + NOMINAL_FRAME_MS + 0.002
    response = Response.objects.get()
    assert response.trial.playback_plan["showings"] == 2 and response.trial.playback_plan["total_seconds"] == 4.5
    assert response.playback["showings"] == 2


@pytest.mark.browser
def test_slow_motion_plays_the_same_showings_three_times_slower(page, live_server):
    """3x slow motion: the 2 s clip takes 6 s to reach its last frame (10 frames per
    second on screen); the pause between showings stays 0.5 s."""
    bot, seen = run_on_virtual_clock(page, live_server, "indistinguishability", num_frames=61,
                                     playback_seconds=5.0, slow_motion=3, step_ms=1000 / 30)
    playing = [s for s in seen if s["state"] == "playing"]
    for s in playing:
        assert s["frame"] == pytest.approx(expected_frame(s["t"], 61, 6000, 500, 2, 3), abs=2e-3), s
    assert 6000 - 1000 / 30 < next(s["t"] for s in playing if s["frame"] >= 60) <= 6000 + 1000 / 30
    bot.answer(index=0)
    bot.wait_next()
    log = bot.sent[-1]["playback"]
    assert log["expected_duration_ms"] == 12500 and log["effective_fps"] == 10 and log["showings"] == 2
    assert 12500 <= log["measured_duration_ms"] < 12500 + 1000 / 30 + 0.002


@pytest.mark.browser
def test_a_30_hz_display_shows_the_same_timing_in_half_the_frames(page, live_server):
    """Timed by the clock, not by frames: with animation frames every 33 ms instead of
    every 16.7 ms the motion keeps its timing, in half as many drawn frames."""
    bot, seen = run_on_virtual_clock(page, live_server, "deceitfulness", num_frames=61, playback_seconds=2.0,
                                     step_ms=1000 / 30)
    for s in (s for s in seen if s["state"] == "playing"):
        assert s["frame"] == pytest.approx(expected_frame(s["t"], 61, 2000, 500, 1, 1), abs=2e-3), s
    bot.answer(index=0)
    bot.wait_next()
    log = bot.sent[-1]["playback"]
    assert log["median_frame_interval_ms"] == pytest.approx(1000 / 30, abs=1e-3) and log["late_frames"] == 0
    # 61 frames at 0, 33.3, ..., 2000 ms (62 if rounding puts the 61st a hair before 2000)
    assert log["frames_drawn"] in (61, 62) and 2000 <= log["measured_duration_ms"] < 2000 + 1000 / 30 + 0.002


@pytest.mark.browser
def test_a_stalled_frame_is_logged_as_late_and_the_timing_still_holds(page, live_server):
    """A 250 ms stall mid-playback (as a busy machine causes) is one late frame in the
    stored log; the frame shown after it is where the clock says, and the playback
    still ends on time."""
    bot, seen = run_on_virtual_clock(page, live_server, "deceitfulness", num_frames=61, playback_seconds=2.0,
                                     stall={"at": 30, "ms": 250})
    for s in (s for s in seen if s["state"] == "playing"):
        assert s["frame"] == pytest.approx(expected_frame(s["t"], 61, 2000, 500, 1, 1), abs=2e-3), s
    bot.answer(index=0)
    bot.wait_next()
    log = bot.sent[-1]["playback"]
    assert log["late_frames"] == 1 and log["max_frame_interval_ms"] == 250, log
    assert 2000 <= log["measured_duration_ms"] < 2000 + NOMINAL_FRAME_MS + 0.002, log
    assert Response.objects.get().playback["late_frames"] == 1


@pytest.mark.browser
def test_deceitfulness_labels_appear_only_after_the_motion(page, live_server):
    """The paper asks for the two labels after the motion: they stay hidden while it plays."""
    bot, seen = run_on_virtual_clock(page, live_server, "deceitfulness", num_frames=31, playback_seconds=1.0)
    assert all(s["optionsHidden"] for s in seen if s["state"] == "playing")
    assert page.locator("#options").is_visible()
    assert page.locator("#options button").count() == 2
    assert all(not b for b in bot.options_disabled())


@pytest.mark.browser
def test_real_time_playback_in_chromium_lasts_its_planned_duration(page, live_server):
    """On the real clock of headless Chromium: the planned duration (three showings of a
    1.97 s clip and two 0.5 s pauses) within the frame that crossed the end, animated
    throughout, and the answer, sent after the playback, is not flagged."""
    study_with_samples("deceitfulness", trials_per_participant=1, practice_trials=0, playback_seconds=6.0)
    bot = StudyBot(page, live_server.url)
    bot.open("deceitfulness")
    bot.consent()
    bot.begin()
    bot.play(timeout=60_000)
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    log = bot.sent[-1]["playback"]
    print(f"real-time playback: {log}")
    expected = 3 * 59 / FPS * 1000 + 2 * 500
    assert log["expected_duration_ms"] == pytest.approx(expected, abs=0.002)
    assert expected <= log["measured_duration_ms"] <= expected + log["final_frame_interval_ms"] + 0.002, log
    assert log["frames_drawn"] >= 20, log  # animated, not a few stills (even at a loaded machine's rate)
    response = Response.objects.get()
    assert response.playback["measured_duration_ms"] == log["measured_duration_ms"]
    assert response.playback["page_hidden"] is False and response.flags == []


@pytest.mark.browser
def test_browser_decoder_matches_the_python_encoder(page, live_server):
    """decodeMotion in Chromium (DecompressionStream, int16 running sum) gives back what
    studies.core.payloads.decode_motion gives, including wrapped time differences and an
    all-zero (absent) second person, which the player treats as invisible."""
    study_with_samples("naturalness", trials_per_participant=1)
    page.goto(f"{live_server.url}/study/naturalness/")
    page.wait_for_function("document.body.dataset.screen === 'consent'")
    rng = np.random.default_rng(7)
    motion = np.zeros((2, 40, 25, 3), dtype=np.float32)
    motion[0] = rng.normal(0, 0.5, (40, 25, 3))  # jumpy: time differences wrap around int16
    motion[0, :, :, 1] += 1.0
    payload = encode_motion(motion, 30.0)
    expected = decode_motion(payload)
    decoded = page.evaluate("""async (payload) => {
        const player = await import('/static/participant/player.js');
        const m = await player.decodeMotion(payload);
        const b = player.motionBounds([m]);
        return {shape: [m.persons, m.frames, m.joints], fps: m.fps, positions: Array.from(m.positions),
                valid: Array.from(m.valid), min: b.min, max: b.max};
    }""", payload)
    assert decoded["shape"] == [2, 40, 25] and decoded["fps"] == 30.0
    got = np.asarray(decoded["positions"], dtype=np.float32).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert decoded["valid"] == [1] * 40 + [0] * 40
    np.testing.assert_allclose(decoded["min"], expected[0].reshape(-1, 3).min(0), atol=1e-5)
    np.testing.assert_allclose(decoded["max"], expected[0].reshape(-1, 3).max(0), atol=1e-5)
    bad = page.evaluate("""async (payload) => {
        const player = await import('/static/participant/player.js');
        try { await player.decodeMotion({...payload, format: 'float32'}); return 'accepted'; }
        catch (e) { return e.message; }
    }""", payload)
    assert "unknown motion format" in bad


@pytest.mark.browser
def test_both_viewports_share_one_framing_and_interpolate_between_frames(page, live_server):
    """Side by side, one camera frames every motion shown: a motion whose last frame jumps
    far away (a larger bounding box, as a bad attack may have) is not drawn smaller at the
    shared first pose, so size never tells the two apart. Poses between two motion frames
    are interpolated linearly."""
    from attacks.core.skeletons import get_skeleton
    study_with_samples("naturalness", trials_per_participant=1)
    page.goto(f"{live_server.url}/study/naturalness/")
    page.wait_for_function("document.body.dataset.screen === 'consent'")
    skeleton = get_skeleton("ntu25")
    motion = AdversarialSample.objects.first().original_motion()[:, :20]
    far = motion.copy()
    far[:, -1, :, 0] += 3.0  # the whole body, 3 m to the side, in the last frame only
    result = page.evaluate("""async ({a, b, bones}) => {
        const {SkeletonPlayer, decodeMotion} = await import('/static/participant/player.js');
        const canvas = document.createElement('canvas');
        canvas.id = 'framing';
        canvas.style.cssText = 'position: fixed; left: 0; top: 0; width: 1000px; height: 500px; z-index: 10';
        document.body.append(canvas);
        const motions = [await decodeMotion(a), await decodeMotion(b)];
        const player = new SkeletonPlayer(canvas, {bones, views: 2, up: 'y'});
        player.setMotions(motions);
        const m = motions[0];
        player.renderPhase(0.25 / (m.frames - 1));  // a quarter of the way from frame 0 to frame 1
        const pose = Array.from(player.bodies[0].pose);
        const size = m.joints * 3;
        const frames = [0, 1].map((t) => Array.from(m.positions.slice(t * size, (t + 1) * size)));
        player.renderPhase(0);
        return {pose, frames};
    }""", {"a": encode_motion(motion, 30.0), "b": encode_motion(far, 30.0),
           "bones": [list(b) for b in skeleton.bones]})
    f0, f1 = (np.asarray(f) for f in result["frames"])
    np.testing.assert_allclose(result["pose"], 0.75 * f0 + 0.25 * f1, atol=1e-5)
    png = page.screenshot()
    left, right = viewport_pixels(png, page.locator("#framing").bounding_box(), 2)
    assert left > 300 and abs(left - right) <= 0.03 * left, (left, right)


@pytest.mark.browser
def test_webgl_runs_on_swiftshader(page, live_server):
    page.goto(f"{live_server.url}/static/participant/study.css")
    info = page.evaluate("""() => {
        const gl = document.createElement('canvas').getContext('webgl2');
        if (!gl) return null;
        const ext = gl.getExtension('WEBGL_debug_renderer_info');
        return {version: gl.getParameter(gl.VERSION), renderer: ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : ''};
    }""")
    print(f"WebGL in headless Chromium: {info}")
    assert info is not None and info["version"].startswith("WebGL 2.0")


@pytest.mark.browser
def test_staff_preview_shows_original_and_adversarial_side_by_side(page, live_server):
    study_with_samples("naturalness", trials_per_participant=1)
    get_user_model().objects.create_superuser("staff", "staff@example.org", "pw-for-tests-only")
    sample = AdversarialSample.objects.filter(method="smart").first()
    target = f"/study-admin/preview/{sample.pk}/?seconds=1"
    page.goto(f"{live_server.url}{target}")
    assert "/admin/login/" in page.url  # staff only
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw-for-tests-only")
    page.click("input[type=submit]")
    page.wait_for_function("document.getElementById('preview')?.dataset.state === 'ready'")
    png = save_screenshot(page, "admin_preview")
    left, right = viewport_pixels(png, page.locator("#preview-canvas").bounding_box(), 2)
    assert left > 300 and right > 300, (left, right)
    assert page.locator("#view-labels span").all_text_contents() == ["Original", "Adversarial (smart)"]
    page.click("#preview-play")
    page.wait_for_function("document.getElementById('preview-status').textContent.startsWith('Played')")
    seconds = float(re.search(r"Played in ([0-9.]+) s", page.locator("#preview-status").text_content()).group(1))
    # One showing of the 60-frame, 30 fps clip (1.97 s, not the 1 s asked for: never cut),
    # ending on the first frame after it (a loaded machine's frame can take a few hundred ms).
    assert 59 / 30 <= seconds <= 59 / 30 + 1.0
    assert not page.console_errors, page.console_errors


# ---------------------------------------------------------------- no browser needed


@pytest.mark.django_db
def test_study_page_carries_public_settings_and_local_three(client):
    study_with_samples("indistinguishability", trials_per_participant=4, practice_trials=1, playback_seconds=6.0,
                       slow_motion=3, consent_text="Consent text for the test.")
    r = client.get("/study/indistinguishability/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Consent text for the test." in html
    assert "slowed down three times" in html and "18 seconds in all" in html  # 6 s budget x 3 slow motion
    config = json.loads(re.search(r'<script id="study-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["playback"] == {"seconds": 6.0, "repeats": 1, "slow_motion": 3, "pause_seconds": 0.5}
    assert config["trials"] == 4 and config["practice_trials"] == 1
    assert config["api"]["start"] == "/api/studies/indistinguishability/participations/"
    assert set(config) == {"slug", "kind", "trials", "practice_trials", "playback", "view_labels", "min_window",
                           "api", "questionnaire", "test"}
    assert config["test"] is False and config["questionnaire"] == []  # no staff test run, no questions set
    # three.js comes from the project's static files, never from a CDN.
    assert '"three": "/static/vendor/three/three.module.js"' in html
    assert not re.search(r'(src|href)="https?://', html)
    assert client.get("/study/nope/").status_code == 404


@pytest.mark.django_db
def test_draft_and_closed_studies_show_why_they_cannot_be_taken(client):
    study = study_with_samples("deceitfulness", status="draft", trials_per_participant=2)
    r = client.get("/study/deceitfulness/")
    assert r.status_code == 404 and b"has not opened yet" in r.content
    open_study(study)
    assert client.get("/study/deceitfulness/").status_code == 200
    close_study(study)
    r = client.get("/study/deceitfulness/")
    assert r.status_code == 410 and b"has closed" in r.content


@pytest.mark.django_db
def test_preview_is_staff_only_and_embeds_both_motions(client):
    study_with_samples("naturalness", trials_per_participant=1)
    sample = AdversarialSample.objects.filter(method="l2").first()
    url = f"/study-admin/preview/{sample.pk}/"
    r = client.get(url)
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    user = get_user_model().objects.create_user("someone", password="x")
    client.force_login(user)
    assert client.get(url).status_code == 302  # logged in but not staff
    user.is_staff = True
    user.save()
    r = client.get(url + "?slow=3&seconds=2")
    assert r.status_code == 200
    data = json.loads(re.search(r'<script id="preview-data" type="application/json">(.*?)</script>',
                                r.content.decode(), re.S).group(1))
    original, adversarial = (decode_motion(m) for m in data["motions"])
    np.testing.assert_allclose(original, sample.original_motion(), atol=1e-3)
    np.testing.assert_allclose(adversarial, sample.adversarial_motion(), atol=1e-3)
    # The preview plays as participants would: natural speed x 3, whole showings of the
    # 60-frame (1.97 s) clip within the 2 s budget.
    assert data["playback"]["slow_motion"] == 3 and data["playback"]["fps"] == [30.0, 30.0]
    assert data["playback"]["showings"] == 1 and data["playback"]["total_seconds"] == pytest.approx(3 * 59 / 30)
    assert len(data["skeleton"]["bones"]) == 24
    assert client.get("/study-admin/preview/999999/").status_code == 404


def test_vendored_three_matches_its_version_file():
    """static/vendor/three holds the npm package's files unmodified (hashes recorded in
    VERSION) and the recorded version is the one the code declares."""
    text = (THREE_DIR / "VERSION").read_text()
    version = re.match(r"three (\d+)\.(\d+)\.(\d+)", text)
    assert version, text
    hashes = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M))
    assert set(hashes) == {"three.module.js", "three.core.js", "LICENSE"}
    for name, digest in hashes.items():
        assert hashlib.sha256((THREE_DIR / name).read_bytes()).hexdigest() == digest, name
    revision = re.search(r"const REVISION = '(\d+)'", (THREE_DIR / "three.core.js").read_text())
    assert revision.group(1) == version.group(2)
    assert "from './three.core.js'" in (THREE_DIR / "three.module.js").read_text()
