"""Real-browser test support: headless Debian Chromium driven by Playwright for Python,
pointed at pytest-django's live server.

Why a real browser: the participant app's promises (exact playback duration, pixels
drawn in each viewport, buttons locked during playback, resume after reload) only hold
or fail in a browser with a real WebGL stack. Chromium runs with --disable-gpu and
draws WebGL through SwiftShader (software), so the tests need no GPU.

Fixtures (import them into a test module): `playwright_driver`, `chromium` (one
browser per module),
`page` (a fresh context per test, at 1280 x 800, console errors collected).
Helpers: `study_with_samples`, `StudyBot` (walks the pages like a participant),
`viewport_pixels` (skeleton pixels per viewport of a screenshot), `save_screenshot`.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
    # WebGL without a GPU: ANGLE on SwiftShader (software Vulkan).
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    # Keep rAF and timers running at full rate in a headless, unfocused window.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
# The player's bone colour (#c8553d) survives lighting as a clearly warm hue, unlike the
# neutral background, grid and the dark joints.
WARM_MIN_RED, WARM_MIN_RED_MINUS_BLUE = 110, 55


def require_chromium():
    """Playwright and /usr/bin/chromium, or a CI failure / a printed skip elsewhere."""
    problems = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("the Python package 'playwright' is not installed")
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (run scripts/install_chromium.sh)")
    if problems:
        reason = "browser tests need " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        print(f"SKIP: {reason}")
        pytest.skip(reason)


def launch_chromium(playwright, extra_args=()):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS + list(extra_args))


@pytest.fixture(scope="module")
def playwright_driver():
    require_chromium()
    from playwright.sync_api import sync_playwright
    # Playwright's sync API keeps an asyncio loop on this thread for as long as it runs;
    # the tests' own ORM calls (and pytest-django's database flushes) stay synchronous,
    # so Django's async-safety guard must stand aside until Playwright has stopped.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def chromium(playwright_driver):
    browser = launch_chromium(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium, live_server, transactional_db):
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("response", lambda r: page.console_errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    yield page
    context.close()


def study_with_samples(kind: str, slug: str | None = None, num_clips: int = 6, num_frames: int = 60, **config):
    """An open study of `kind` over freshly made synthetic samples (tests.factories)."""
    from tests.factories import make_samples, make_study
    make_samples(num_clips=num_clips, num_frames=num_frames)
    return make_study(kind, slug=slug, **config)


def save_screenshot(page, name: str, **options) -> bytes:
    """PNG of the page, also written to artifacts/screenshots/<name>.png for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **options)


def viewport_pixels(png: bytes, box: dict, views: int) -> list[int]:
    """Number of bone-coloured pixels in each of `views` equal columns of `box` (the
    canvas' bounding box in page pixels) in a screenshot."""
    from PIL import Image
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    x0, y0 = int(round(box["x"])), int(round(box["y"]))
    x1, y1 = x0 + int(box["width"]), y0 + int(box["height"])
    canvas = image[y0:y1, x0:x1]
    warm = (canvas[..., 0] >= WARM_MIN_RED) & (canvas[..., 0] - canvas[..., 2] >= WARM_MIN_RED_MINUS_BLUE)
    columns = np.array_split(np.arange(canvas.shape[1]), views)
    return [int(warm[:, c].sum()) for c in columns]


class StudyBot:
    """Walks the participant pages like a person would (clicks and keys), waiting on the
    app's `data-screen` / `data-state` attributes rather than on fixed sleeps."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.sent = []  # answer bodies as the browser posted them (full playback logs)
        page.on("request", self._record_answer)

    def _record_answer(self, request):
        if request.method == "POST" and request.url.endswith("/answers/"):
            self.sent.append(request.post_data_json)

    def open(self, slug: str, query: str = ""):
        self.page.goto(f"{self.base_url}/study/{slug}/{query}")

    def wait_screen(self, name: str, timeout: float = 30_000):
        self.page.wait_for_function(f"document.body.dataset.screen === {name!r}", timeout=timeout)

    def wait_state(self, name: str, timeout: float = 30_000):
        self.page.wait_for_function(
            f"document.body.dataset.screen === 'trial' && document.body.dataset.state === {name!r}",
            timeout=timeout)

    def consent(self):
        self.wait_screen("consent")
        self.page.get_by_label("I have read the text above and agree to take part.").check()
        self.page.get_by_role("button", name="Start").click()
        self.wait_screen("instructions")

    def begin(self):
        self.page.locator("#instructions-continue").click()
        self.wait_state("ready")

    def trial(self) -> dict:
        return self.page.evaluate("""() => ({
            position: Number(document.body.dataset.position),
            practice: document.body.dataset.practice === 'yes',
            options: [...document.querySelectorAll('#options button')].map(b => b.dataset.value),
            counter: document.getElementById('trial-counter').textContent,
        })""")

    def options_disabled(self) -> list[bool]:
        return self.page.eval_on_selector_all("#options button", "bs => bs.map(b => b.disabled)")

    def play(self, timeout: float = 30_000) -> dict:
        """Click Play and wait until the answers unlock. Returns what a watcher saw on
        every animation frame while the state was 'playing': {frames, unlocked} (frames
        in which any answer button was enabled; must be 0)."""
        self.wait_state("ready")
        self.page.evaluate("""() => {
            const watch = window.__lockWatch = {frames: 0, unlocked: 0};
            const tick = () => {
                const s = document.body.dataset.state;
                if (s === 'playing') {
                    watch.frames += 1;
                    if ([...document.querySelectorAll('#options button')].some(b => !b.disabled)) watch.unlocked += 1;
                }
                if (s === 'ready' || s === 'playing') requestAnimationFrame(tick);
            };
            requestAnimationFrame(tick);
        }""")
        self.page.locator("#play").click()
        self.wait_state("answering", timeout=timeout)
        return self.page.evaluate("window.__lockWatch")

    def answer(self, index: int = 0, key: str | None = None):
        """Answer the current trial by clicking option `index`, or by pressing `key`."""
        self.wait_state("answering")
        if key is not None:
            self.page.keyboard.press(key)
        else:
            self.page.locator("#options button").nth(index).click()
        self.page.wait_for_function(
            "!(document.body.dataset.screen === 'trial' && "
            "['answering', 'submitting'].includes(document.body.dataset.state))")

    def wait_next(self):
        """After an answer: the next trial ready, feedback shown or the study complete."""
        self.page.wait_for_function(
            "['feedback', 'complete'].includes(document.body.dataset.screen) || "
            "(document.body.dataset.screen === 'trial' && document.body.dataset.state === 'ready')")
        return self.page.evaluate("document.body.dataset.screen")
