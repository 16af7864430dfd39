/**
 * The participant app: device gate -> consent -> instructions -> (practice with feedback)
 * -> trials -> completion, driven by the studies JSON API.
 *
 * The server decides everything (trial list, sides, option order) and keeps the answer
 * key; this page only plays what it is given, unlocks the answers when playback has
 * ended and posts one answer at a time with its playback log. The participation token
 * is kept in localStorage per study, so a reload resumes at the first unanswered trial
 * (the API's `next` is always that trial).
 *
 * `document.body.dataset.screen` names the visible screen and `dataset.state` the trial
 * state (loading, ready, playing, answering, submitting); tests and styles key on them.
 */
import { SkeletonPlayer, PlaybackInterrupted, decodeMotion } from './player.js';

const config = JSON.parse(document.getElementById('study-config').textContent);
const storageKey = `smart-study:${config.slug}`;
const query = new URLSearchParams(window.location.search);
const EXTERNAL_IDS = ['PROLIFIC_PID', 'STUDY_ID', 'SESSION_ID'];
const RETRY_DELAYS_MS = [500, 1000, 2000]; // three retries after the first attempt
const RETRY_AFTER_MAX_MS = 30000; // longest wait a rate limit's Retry-After may impose

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  trial: null,
  player: null,
  log: null,
  interruptions: 0,
  answerUnlockedAt: 0,
  lastPracticeFeedback: false,
};

/* ------------------------------------------------------------------ screens */

function show(name) {
  for (const section of document.querySelectorAll('[data-screen-name]')) {
    section.hidden = section.dataset.screenName !== name;
  }
  document.body.dataset.screen = name;
  $('progress-wrap').hidden = !(name === 'trial' || name === 'feedback');
  const heading = document.querySelector(`[data-screen-name="${name}"] h1`);
  if (heading && name !== 'trial') {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function setTrialState(value) {
  document.body.dataset.state = value;
}

function status(text) {
  $('status').textContent = text;
}

function fail(message, retry) {
  $('error-text').textContent = message;
  $('error-retry').onclick = () => retry();
  show('error');
}

/* ------------------------------------------------------------------ device gate */

/** Why this device cannot run the study, or null. */
export function deviceProblem() {
  const ua = navigator.userAgent || '';
  const mobile = (navigator.userAgentData && navigator.userAgentData.mobile)
    || /Mobi|iPhone|iPod|Android.+Mobile|Windows Phone|BlackBerry/i.test(ua);
  if (mobile) {
    return 'This study needs a computer with a larger screen: it does not run on phones. Please open the same link on a desktop or laptop computer.';
  }
  if (!hasWebGL2()) {
    return 'Your browser cannot draw 3D graphics (WebGL 2 is unavailable or switched off). Please use a current version of Chrome, Firefox, Edge or Safari with hardware acceleration enabled.';
  }
  const need = config.min_window;
  if (window.innerWidth < need.width || window.innerHeight < need.height) {
    return `Your browser window is too small (${window.innerWidth} × ${window.innerHeight} pixels; at least ${need.width} × ${need.height} are needed to show the motions side by side). Please enlarge or maximise the window; this page continues by itself.`;
  }
  return null;
}

function hasWebGL2() {
  try {
    const canvas = document.createElement('canvas');
    const gl = canvas.getContext('webgl2');
    if (!gl) return false;
    const lose = gl.getExtension('WEBGL_lose_context');
    if (lose) lose.loseContext();
    return true;
  } catch (e) {
    return false;
  }
}

function passGate() {
  return new Promise((resolve) => {
    const check = () => {
      const problem = deviceProblem();
      if (!problem) {
        window.removeEventListener('resize', check);
        resolve();
        return;
      }
      $('gate-reason').textContent = problem;
      if (document.body.dataset.screen !== 'gate') show('gate');
    };
    window.addEventListener('resize', check);
    check();
  });
}

/* ------------------------------------------------------------------ API */

function url(template) {
  return template.replace(config.api.token_placeholder, encodeURIComponent(state.token));
}

class ApiError extends Error {
  constructor(status, body) {
    super(apiMessage(body) || `request failed (HTTP ${status})`);
    this.status = status;
    this.body = body;
  }
}

function apiMessage(body) {
  if (!body || typeof body !== 'object') return '';
  if (typeof body.detail === 'string') return body.detail;
  return Object.entries(body).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : v}`).join('; ');
}

/**
 * fetch + JSON with retries: network errors and 5xx are retried (RETRY_DELAYS_MS), and a
 * 429 (rate limit) after the server's Retry-After (at most RETRY_AFTER_MAX_MS); other 4xx
 * are answers and returned at once. POSTs are safe to retry: answers are idempotent on
 * the server.
 */
async function api(path, { method = 'GET', body, cache = 'no-store' } = {}) {
  let lastError = null;
  let wait = 0;
  for (let attempt = 0; attempt <= RETRY_DELAYS_MS.length; attempt++) {
    if (attempt > 0) await sleep(wait || RETRY_DELAYS_MS[attempt - 1]);
    wait = 0;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body === undefined ? { Accept: 'application/json' }
          : { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache,
      });
    } catch (e) {
      lastError = e;
      continue;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (response.status === 429) {
      const seconds = Number(response.headers.get('Retry-After'));
      wait = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, RETRY_AFTER_MAX_MS) : 0;
      lastError = new ApiError(response.status, data);
      continue;
    }
    if (response.status >= 500 || (response.ok && data === null)) {
      lastError = new ApiError(response.status, data);
      continue;
    }
    return { status: response.status, ok: response.ok, data };
  }
  throw lastError || new Error('request failed');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* ------------------------------------------------------------------ start / resume */

async function boot() {
  await passGate();
  state.token = localStorage.getItem(storageKey);
  if (state.token) {
    try {
      const r = await api(url(config.api.participation));
      if (r.ok) {
        const p = r.data;
        if (p.status === 'completed' || p.status === 'screened_out' || p.answered >= p.total) {
          await finish();
        } else if (p.answered > 0) {
          await nextTrial();
        } else {
          show('instructions');
        }
        return;
      }
      localStorage.removeItem(storageKey); // unknown token (e.g. database reset): start afresh
      state.token = null;
    } catch (e) {
      fail(`The study server cannot be reached (${e.message}).`, boot);
      return;
    }
  }
  show('consent');
}

function browserFacts() {
  const facts = {
    userAgent: navigator.userAgent, language: navigator.language, platform: navigator.platform,
    devicePixelRatio: window.devicePixelRatio, hardwareConcurrency: navigator.hardwareConcurrency || null,
  };
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
    if (info) facts.webglRenderer = String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)).slice(0, 200);
  } catch (e) { /* facts are best effort */ }
  return facts;
}

function screenFacts() {
  return {
    width: window.screen.width, height: window.screen.height, innerWidth: window.innerWidth,
    innerHeight: window.innerHeight, colorDepth: window.screen.colorDepth,
  };
}

async function giveConsent(event) {
  event.preventDefault();
  const box = $('consent-box');
  const error = $('consent-error');
  if (!box.checked) {
    error.textContent = 'Please tick the box to agree before starting.';
    error.hidden = false;
    box.focus();
    return;
  }
  error.hidden = true;
  $('consent-submit').disabled = true;
  const body = { consent: true, browser: browserFacts(), screen: screenFacts() };
  for (const key of EXTERNAL_IDS) body[key] = (query.get(key) || '').slice(0, 64);
  try {
    const r = await api(config.api.start, { method: 'POST', body });
    if (!r.ok) {
      error.textContent = apiMessage(r.data) || `The study could not be started (HTTP ${r.status}).`;
      error.hidden = false;
      return;
    }
    state.token = r.data.token;
    localStorage.setItem(storageKey, state.token);
    if (r.data.answered > 0) await nextTrial(); else show('instructions');
  } catch (e) {
    error.textContent = `The study server cannot be reached (${e.message}). Please try again.`;
    error.hidden = false;
  } finally {
    $('consent-submit').disabled = false;
  }
}

/* ------------------------------------------------------------------ trials */

async function nextTrial() {
  setTrialState('loading');
  setOptionsEnabled(false);
  $('play').disabled = true;
  const overlay = $('stage-overlay');
  overlay.textContent = 'Loading the next question…';
  overlay.hidden = false; // the previous motion never stays on screen while the next one loads
  status('');
  let trial;
  let motions;
  try {
    const r = await api(url(config.api.next));
    if (!r.ok) throw new ApiError(r.status, r.data);
    if (r.data.done) {
      await finish();
      return;
    }
    trial = r.data.trial;
    motions = await loadMotions(trial);
  } catch (e) {
    fail(`The next question could not be loaded (${e.message}).`, nextTrial);
    return;
  }
  presentTrial(trial, motions);
}

/** Every motion of the trial, decoded, or an error: never a half-loaded trial. */
async function loadMotions(trial) {
  const decoded = [];
  for (const ref of trial.motions) {
    let payload = ref.motion;
    if (!payload) {
      const r = await api(ref.url, { cache: 'default' }); // motions are immutable and cacheable
      if (!r.ok) throw new ApiError(r.status, r.data);
      payload = r.data;
    }
    decoded.push(await decodeMotion(payload));
  }
  return decoded;
}

function presentTrial(trial, motions) {
  state.trial = trial;
  state.interruptions = 0;
  state.pageHidden = false;
  state.log = null;
  show('trial');
  $('stage-overlay').hidden = true;
  const practice = config.practice_trials;
  const counter = trial.is_practice
    ? `Practice ${trial.position + 1} of ${practice}`
    : `Question ${trial.position - practice + 1} of ${trial.total - practice}`;
  $('trial-counter').textContent = counter;
  $('trial-prompt').textContent = trial.prompt;
  $('progress').max = trial.total;
  $('progress').value = trial.position;
  $('progress').setAttribute('aria-valuetext', counter);
  $('progress-text').textContent = counter;
  document.body.dataset.practice = trial.is_practice ? 'yes' : 'no';
  document.body.dataset.position = String(trial.position);
  document.body.dataset.trial = trial.trial;

  const labels = $('view-labels');
  labels.replaceChildren(...motions.map((_, i) => {
    const span = document.createElement('span');
    span.textContent = motions.length === 1 ? '' : (config.view_labels[i] || '');
    return span;
  }));
  labels.dataset.views = String(motions.length);

  buildOptions(trial.options);
  if (!state.player) {
    state.player = new SkeletonPlayer($('player'), { bones: trial.skeleton.bones, views: motions.length,
                                                   up: trial.skeleton.up || 'y' });
  } else {
    state.player.bones = trial.skeleton.bones.map(([a, b]) => [a, b]);
  }
  state.player.setMotions(motions);
  readyToPlay('Press Play (or the space bar) to watch.');
}

function buildOptions(options) {
  const box = $('options');
  const buttons = options.map((option, i) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'option';
    button.dataset.value = option.value;
    button.disabled = true;
    const key = document.createElement('kbd');
    key.textContent = String(i + 1);
    key.setAttribute('aria-hidden', 'true');
    button.append(key, ` ${option.text}`);
    button.setAttribute('aria-label', `${option.text} (key ${i + 1})`);
    button.setAttribute('aria-keyshortcuts', String(i + 1));
    button.addEventListener('click', () => submitAnswer(option.value));
    return button;
  });
  box.replaceChildren(...buttons);
  const sides = options.some((o) => o.value === 'left') && options.some((o) => o.value === 'right');
  $('key-hint').textContent = `Keys: ${options.map((o, i) => `${i + 1} = ${o.text}`).join(', ')}`
    + (sides ? ' (or ← / → for left / right)' : '') + '.';
}

function setOptionsEnabled(enabled) {
  for (const button of $('options').querySelectorAll('button')) button.disabled = !enabled;
}

function readyToPlay(message) {
  setOptionsEnabled(false);
  const play = $('play');
  play.disabled = false;
  play.hidden = false;
  setTrialState('ready');
  status(message);
  play.focus({ preventScroll: true });
}

async function startPlayback() {
  if (document.body.dataset.state !== 'ready') return;
  const play = $('play');
  play.disabled = true;
  setOptionsEnabled(false);
  setTrialState('playing');
  const p = state.trial.playback;
  const seconds = p.seconds * p.slow_motion * p.repeats;
  status(`Playing (${formatSeconds(seconds)})…`);
  try {
    const log = await state.player.play({ seconds: p.seconds, repeats: p.repeats, slowMotion: p.slow_motion });
    state.log = { ...log, page_hidden: state.pageHidden, replays: state.interruptions };
    play.hidden = true;
    setOptionsEnabled(true);
    setTrialState('answering');
    state.answerUnlockedAt = performance.now();
    status('Choose your answer.');
    const first = $('options').querySelector('button');
    if (first) first.focus({ preventScroll: true });
  } catch (e) {
    if (!(e instanceof PlaybackInterrupted)) {
      fail(`The motion could not be played (${e.message}).`, nextTrial);
      return;
    }
    state.pageHidden = true;
    state.interruptions += 1;
    state.player.renderPhase(0);
    await visible();
    readyToPlay('The page was hidden while the motion played, so it will play again from the start. Press Play when ready.');
  }
}

function visible() {
  if (document.visibilityState === 'visible') return Promise.resolve();
  return new Promise((resolve) => {
    const onChange = () => {
      if (document.visibilityState === 'visible') {
        document.removeEventListener('visibilitychange', onChange);
        resolve();
      }
    };
    document.addEventListener('visibilitychange', onChange);
  });
}

async function submitAnswer(value) {
  if (document.body.dataset.state !== 'answering') return;
  setOptionsEnabled(false);
  setTrialState('submitting');
  status('Saving your answer…');
  const trial = state.trial;
  const body = {
    trial: trial.trial,
    answer: value,
    response_time_ms: Math.round(performance.now() - state.answerUnlockedAt),
    playback: state.log,
  };
  let r;
  try {
    r = await api(url(config.api.answer), { method: 'POST', body });
  } catch (e) {
    setTrialState('answering');
    setOptionsEnabled(true);
    status(`Your answer could not be saved (${e.message}). Please choose again to retry.`);
    return;
  }
  if (r.status === 409) {
    // Already answered (another tab or an earlier retry): the first answer stands.
    await nextTrial();
    return;
  }
  if (!r.ok) {
    fail(`Your answer was not accepted: ${apiMessage(r.data) || `HTTP ${r.status}`}`, nextTrial);
    return;
  }
  $('progress').value = trial.position + 1;
  if (trial.is_practice) {
    showFeedback(trial, value, r.data.feedback || {});
  } else {
    await nextTrial();
  }
}

function showFeedback(trial, value, feedback) {
  const textOf = (v) => (trial.options.find((o) => o.value === v) || { text: v }).text;
  let text;
  if (feedback.correct === true) {
    text = `Correct: “${textOf(value)}” is the right answer.`;
  } else if (feedback.correct === false) {
    text = `Not quite: you chose “${textOf(value)}”; the right answer was “${textOf(feedback.expected)}”.`;
  } else {
    text = `You chose “${textOf(value)}”. This question has no right or wrong answer: we ask for your impression.`;
  }
  $('feedback-text').textContent = text;
  const lastPractice = trial.position + 1 >= config.practice_trials;
  $('feedback-next').textContent = lastPractice
    ? 'That was the last practice question. The real questions start now; they give no feedback.'
    : 'Next: another practice question.';
  document.body.dataset.feedback = feedback.correct === true ? 'correct' : feedback.correct === false ? 'wrong' : 'none';
  show('feedback');
  $('feedback-continue').focus({ preventScroll: true });
}

/* ------------------------------------------------------------------ completion */

async function finish() {
  let r;
  try {
    r = await api(url(config.api.complete), { method: 'POST' });
  } catch (e) {
    fail(`Your completion could not be confirmed (${e.message}).`, finish);
    return;
  }
  if (r.status === 409) {
    await nextTrial(); // something is still unanswered
    return;
  }
  if (!r.ok) {
    fail(apiMessage(r.data) || `Completion failed (HTTP ${r.status}).`, finish);
    return;
  }
  $('completion-code').textContent = r.data.completion_code;
  show('complete');
  const target = redirectTarget(r.data.redirect_url);
  if (target) {
    const link = $('redirect-link');
    link.href = target;
    $('redirect-box').hidden = false;
    let left = 5;
    const tick = () => {
      $('redirect-text').textContent = `You will be taken back to the study platform in ${left} s.`;
      if (left <= 0) { window.location.assign(target); return; }
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }
}

/** The redirect URL with {PROLIFIC_PID}, {STUDY_ID}, {SESSION_ID} filled; http(s) only. */
function redirectTarget(raw) {
  if (!raw) return null;
  let filled = raw;
  for (const key of EXTERNAL_IDS) filled = filled.split(`{${key}}`).join(encodeURIComponent(query.get(key) || ''));
  try {
    const target = new URL(filled, window.location.href);
    return target.protocol === 'https:' || target.protocol === 'http:' ? target.href : null;
  } catch (e) {
    return null;
  }
}

/* ------------------------------------------------------------------ keyboard */

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const screen = document.body.dataset.screen;
  const onButton = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement;
  if (screen === 'trial') {
    const trialState = document.body.dataset.state;
    if (trialState === 'ready' && (event.key === ' ' || event.key === 'Enter') && !onButton) {
      event.preventDefault();
      startPlayback();
      return;
    }
    if (trialState !== 'answering') return;
    const options = state.trial.options;
    let value = null;
    if (/^[1-9]$/.test(event.key) && Number(event.key) <= options.length) value = options[Number(event.key) - 1].value;
    if (event.key === 'ArrowLeft' && options.some((o) => o.value === 'left')) value = 'left';
    if (event.key === 'ArrowRight' && options.some((o) => o.value === 'right')) value = 'right';
    if (value !== null) {
      event.preventDefault();
      submitAnswer(value);
    }
  } else if (screen === 'feedback' && event.key === 'Enter' && !onButton) {
    event.preventDefault();
    nextTrial();
  }
}

function formatSeconds(s) {
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/* ------------------------------------------------------------------ wiring */

$('consent-form').addEventListener('submit', giveConsent);
$('instructions-continue').addEventListener('click', () => nextTrial());
$('play').addEventListener('click', () => startPlayback());
$('feedback-continue').addEventListener('click', () => nextTrial());
document.addEventListener('keydown', onKey);
boot();
