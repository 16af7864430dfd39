/**
 * What the study page (app.js) and the series page (series.js) share: the JSON API
 * client with retries, the crowdsourcing ids of the URL, the browser facts sent at
 * consent, the questionnaire form, the kept resume token and the redirect target.
 */

export const query = new URLSearchParams(window.location.search);
export const EXTERNAL_IDS = ['PROLIFIC_PID', 'STUDY_ID', 'SESSION_ID'];
const RETRY_DELAYS_MS = [500, 1000, 2000]; // three retries after the first attempt
const RETRY_AFTER_MAX_MS = 30000; // longest wait a rate limit's Retry-After may impose

export const $ = (id) => document.getElementById(id);

/* ------------------------------------------------------------------ API */

export class ApiError extends Error {
  constructor(status, body) {
    super(apiMessage(body) || `request failed (HTTP ${status})`);
    this.status = status;
    this.body = body;
  }
}

export function apiMessage(body) {
  if (!body || typeof body !== 'object') return '';
  if (typeof body.detail === 'string') return body.detail;
  return Object.entries(body).map(([k, v]) => `${k}: ${typeof v === 'object' && !Array.isArray(v)
    ? apiMessage(v) : (Array.isArray(v) ? v.join(' ') : v)}`).join('; ');
}

/**
 * fetch + JSON with retries: network errors and 5xx are retried (RETRY_DELAYS_MS), and a
 * 429 (rate limit) after the server's Retry-After (at most RETRY_AFTER_MAX_MS); other 4xx
 * are answers and returned at once. POSTs are safe to retry: answers are idempotent on
 * the server. A 204 (a withdrawal) is an answer without a body.
 */
export async function api(path, { method = 'GET', body, cache = 'no-store' } = {}) {
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
    if (response.status === 204) return { status: 204, ok: true, data: null };
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

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* ------------------------------------------------------------------ consent */

export function browserFacts() {
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

export function screenFacts() {
  return {
    width: window.screen.width, height: window.screen.height, innerWidth: window.innerWidth,
    innerHeight: window.innerHeight, colorDepth: window.screen.colorDepth,
  };
}

/** The body of a start request: consent, the URL's external ids and the browser facts. */
export function startBody(extra = {}) {
  const body = { consent: true, browser: browserFacts(), screen: screenFacts(), ...extra };
  for (const key of EXTERNAL_IDS) body[key] = (query.get(key) || '').slice(0, 64);
  return body;
}

/**
 * Consent, then the questionnaire when there is one, then `start(answers, error, button)`.
 * The decline link keeps the URL's ids, so the no-consent redirect can name them.
 */
export function wireConsent({ questionnaire, show, start }) {
  $('consent-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const error = $('consent-error');
    if (!$('consent-box').checked) {
      error.textContent = 'Please tick the box to agree before starting.';
      error.hidden = false;
      $('consent-box').focus();
      return;
    }
    error.hidden = true;
    if (questionnaire.length) show('questionnaire'); // asked after consent, sent with the start
    else start({}, error, $('consent-submit'));
  });
  $('questionnaire-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const error = $('questionnaire-error');
    const answers = questionnaireAnswers($('questionnaire-form'), error);
    if (answers) start(answers, error, $('questionnaire-submit'));
  });
  const decline = $('consent-decline');
  decline.href = `${decline.getAttribute('href').split('?')[0]}${window.location.search}`;
}

/** POST a start (consent, ids, facts, answers); the response body, or null with the reason shown. */
export async function postStart(path, questionnaire, { error, button, test }) {
  button.disabled = true;
  const body = startBody({ questionnaire });
  if (test) body.test = true;
  try {
    const r = await api(path, { method: 'POST', body });
    if (r.ok) return r.data;
    error.textContent = apiMessage(r.data) || `The study could not be started (HTTP ${r.status}).`;
  } catch (e) {
    error.textContent = `The study server cannot be reached (${e.message}). Please try again.`;
  } finally {
    button.disabled = false;
  }
  error.hidden = false;
  return null;
}

/**
 * The questionnaire form's answers ({name: value}), or null after marking the first
 * unanswered required question (its fieldset gets aria-invalid and the message shows).
 */
export function questionnaireAnswers(form, error) {
  const answers = {};
  let missing = null;
  for (const fieldset of form.querySelectorAll('fieldset[data-question]')) {
    const name = fieldset.dataset.question;
    const checked = fieldset.querySelector('input:checked');
    fieldset.removeAttribute('aria-invalid');
    if (checked) answers[name] = checked.value;
    else if (fieldset.dataset.required === 'true' && !missing) missing = fieldset;
  }
  if (missing) {
    missing.setAttribute('aria-invalid', 'true');
    error.textContent = `Please answer: ${missing.querySelector('legend').textContent.trim()}`;
    error.hidden = false;
    const first = missing.querySelector('input');
    if (first) first.focus();
    return null;
  }
  error.hidden = true;
  return answers;
}

/* ------------------------------------------------------------------ resume token */

/**
 * The participation token kept for this page, or null. It is kept with the
 * PROLIFIC_PID it was started under and dropped when the URL names another one: on a
 * shared computer the next person's link must not resume the previous person's study.
 */
export function loadToken(key) {
  const raw = localStorage.getItem(key);
  if (!raw) return null;
  let kept;
  try {
    kept = JSON.parse(raw);
  } catch (e) {
    kept = null;
  }
  if (!kept || typeof kept.token !== 'string') kept = { token: raw, pid: null }; // kept before PIDs were
  const pid = query.get('PROLIFIC_PID') || '';
  if ((kept.pid ?? '') !== pid && (pid || kept.pid)) {
    localStorage.removeItem(key);
    return null;
  }
  return kept.token;
}

export function saveToken(key, token) {
  localStorage.setItem(key, JSON.stringify({ token, pid: query.get('PROLIFIC_PID') || '' }));
}

/* ------------------------------------------------------------------ leaving */

/** The redirect URL with {PROLIFIC_PID}, {STUDY_ID}, {SESSION_ID} filled; http(s) only. */
export function redirectTarget(raw) {
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

/** Show the way back to the platform and go there after a 5-second countdown. */
export function countdownRedirect(raw, box, text, link) {
  const target = redirectTarget(raw);
  if (!target) return;
  link.href = target;
  box.hidden = false;
  let left = 5;
  const tick = () => {
    text.textContent = `You will be taken back to the study platform in ${left} s.`;
    if (left <= 0) { window.location.assign(target); return; }
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}
