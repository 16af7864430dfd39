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
from studies.models import Response
from studies.payloads import decode_motion, encode_motion
from tests.browser_support import (StudyBot, chromium, page, playwright_driver,  # noqa: F401
                                   save_screenshot, study_with_samples, viewport_pixels)

ROOT = Path(__file__).resolve().parents[1]
THREE_DIR = ROOT / "static" / "vendor" / "three"
NOMINAL_FRAME_MS = 1000 / 60
LATE = 1.5  # the player's late-frame factor


def assert_ends_within_one_frame(log: dict, expected_ms: float):
    """Playback stops on the first frame at or after the configured duration: the
    overshoot is below the interval of that final frame, and so below one frame (1.5x the
    median interval, or a nominal 60 Hz frame) unless that final frame was itself late
    (a shared, software-rendering machine drops frames; the log says so)."""
    overshoot = log["measured_duration_ms"] - expected_ms
    final = log["final_frame_interval_ms"]
    assert 0 <= overshoot <= final + 0.002, log
    one_frame = LATE * max(log["median_frame_interval_ms"], NOMINAL_FRAME_MS)  # longest interval not late
    if final <= one_frame:
        assert overshoot <= one_frame + 0.002, log
    assert abs(log["wall_duration_ms"] - log["measured_duration_ms"]) <= 2 * max(final, NOMINAL_FRAME_MS), log


def timed_participation(page, live_server, kind: str, **config) -> tuple[dict, Response]:
    study_with_samples(kind, trials_per_participant=1, practice_trials=0, **config)
    bot = StudyBot(page, live_server.url)
    bot.open(kind)
    bot.consent()
    bot.begin()
    bot.play(timeout=60_000)
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    return bot.sent[-1]["playback"], Response.objects.get()


@pytest.mark.browser
def test_six_second_playback_lasts_six_seconds_within_one_frame(page, live_server):
    log, response = timed_participation(page, live_server, "deceitfulness", playback_seconds=6.0)
    print(f"6 s playback: {log}")
    assert log["expected_duration_ms"] == 6000
    assert_ends_within_one_frame(log, 6000)
    assert log["frames_drawn"] >= 6 * 10, log  # animated throughout, not a few stills
    assert response.playback["measured_duration_ms"] == log["measured_duration_ms"]
    assert response.playback["frames_drawn"] == log["frames_drawn"]
    assert response.playback["page_hidden"] is False


@pytest.mark.browser
def test_slow_motion_plays_eighteen_seconds(page, live_server):
    log, response = timed_participation(page, live_server, "indistinguishability", playback_seconds=6.0,
                                        slow_motion=3)
    print(f"18 s playback: {log}")
    assert log["expected_duration_ms"] == 18000 and log["slow_motion"] == 3
    assert_ends_within_one_frame(log, 18000)
    assert response.playback["measured_duration_ms"] == log["measured_duration_ms"]


@pytest.mark.browser
def test_playback_lasts_as_long_on_a_30_hz_display(page, live_server):
    """Timed by elapsed time, not by frames: with animation frames every 33 ms instead of
    every 16.7 ms the motion lasts the same, in half as many frames."""
    study_with_samples("deceitfulness", trials_per_participant=1, practice_trials=0, playback_seconds=1.0)
    bot = StudyBot(page, live_server.url)
    bot.open("deceitfulness")
    bot.consent()
    bot.begin()
    page.evaluate("""() => {
        window.requestAnimationFrame = (callback) => setTimeout(() => callback(performance.now()), 1000 / 30);
    }""")
    bot.play()
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    log = bot.sent[-1]["playback"]
    print(f"30 Hz playback: {log}")
    assert log["median_frame_interval_ms"] >= 30, log
    assert 1000 <= log["measured_duration_ms"] <= 1000 + log["final_frame_interval_ms"] + 0.002, log
    assert 10 <= log["frames_drawn"] <= 35, log  # about 30 (60 at 60 Hz); fewer on a loaded machine


@pytest.mark.browser
def test_a_stalled_frame_is_logged_as_late_and_the_duration_still_holds(page, live_server):
    """A 250 ms stall of the main thread mid-playback (as a busy machine causes) is one late
    frame in the stored log; the motion still ends on time, since it is timed by the clock."""
    study_with_samples("deceitfulness", trials_per_participant=1, practice_trials=0, playback_seconds=1.0)
    bot = StudyBot(page, live_server.url)
    bot.open("deceitfulness")
    bot.consent()
    bot.begin()
    page.evaluate("""async () => {
        document.getElementById('play').click();
        for (let i = 0; i < 10; i++) await new Promise(requestAnimationFrame);
        const t = performance.now();
        while (performance.now() - t < 250) { /* stall */ }
    }""")
    bot.wait_state("answering")
    bot.answer(index=0)
    assert bot.wait_next() == "complete"
    log = bot.sent[-1]["playback"]
    assert log["late_frames"] >= 1 and log["max_frame_interval_ms"] >= 250, log
    assert log["max_frame_interval_ms"] > LATE * log["median_frame_interval_ms"], log
    assert_ends_within_one_frame(log, 1000)
    assert Response.objects.get().playback["late_frames"] == log["late_frames"]


@pytest.mark.browser
def test_browser_decoder_matches_the_python_encoder(page, live_server):
    """decodeMotion in Chromium (DecompressionStream, int16 running sum) gives back what
    studies.payloads.decode_motion gives, including wrapped time differences and an
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
    from attacks.skeletons import get_skeleton
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
    assert 1.0 <= seconds <= 1.2
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
    assert "18 seconds in all" in html  # 6 s x 3 slow motion
    config = json.loads(re.search(r'<script id="study-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["playback"] == {"seconds": 6.0, "repeats": 1, "slow_motion": 3}
    assert config["trials"] == 4 and config["practice_trials"] == 1
    assert config["api"]["start"] == "/api/studies/indistinguishability/participations/"
    assert set(config) == {"slug", "kind", "trials", "practice_trials", "playback", "view_labels", "min_window",
                           "api"}
    # three.js comes from the project's static files, never from a CDN.
    assert '"three": "/static/vendor/three/three.module.js"' in html
    assert not re.search(r'(src|href)="https?://', html)
    assert client.get("/study/nope/").status_code == 404


@pytest.mark.django_db
def test_draft_and_closed_studies_show_why_they_cannot_be_taken(client):
    study = study_with_samples("deceitfulness", status="draft", trials_per_participant=2)
    r = client.get("/study/deceitfulness/")
    assert r.status_code == 404 and b"has not opened yet" in r.content
    study.open()
    assert client.get("/study/deceitfulness/").status_code == 200
    study.close()
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
    assert data["playback"] == {"seconds": 2.0, "repeats": 1, "slow_motion": 3}
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
