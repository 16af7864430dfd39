/**
 * The participant app: device gate -> consent -> instructions -> (practice with feedback)
 * -> trials -> completion, driven by the studies JSON API.
 *
 * The server decides everything (trial list, sides, option order) and keeps the answer
 * key; this page only plays what it is given, unlocks the answers when playback has
 * ended and posts one answer at a time with its playback log. The participation token
 * is kept in localStorage per study with the PROLIFIC_PID it was started under, so a
 * reload resumes at the first unanswered trial (the API's `next` is always that trial)
 * and another PID's link on the same computer starts afresh (common.js: loadToken).
 *
 * `document.body.dataset.screen` names the visible screen and `dataset.state` the trial
 * state (loading, ready, playing, answering, submitting); tests and styles key on them.
 */
import { SkeletonPlayer, PlaybackInterrupted, decodeMotion } from './player.js';
import {
  $, api, ApiError, apiMessage, countdownRedirect, loadToken, postStart, saveToken, wireConsent,
} from './common.js';

const config = JSON.parse(document.getElementById('study-config').textContent);
const storageKey = `smart-study:${config.slug}`;
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

/* ------------------------------------------------------------------ start / resume */

async function boot() {
  await passGate();
  if (config.test) document.body.dataset.test = 'yes';
  state.token = loadToken(storageKey); // null when kept for another PROLIFIC_PID
  if (state.token) {
    try {
      const r = await api(url(config.api.participation));
      if (r.ok) {
        const p = r.data;
        // 'abandoned' here: timed out in a study that no longer takes it back (finish
        // shows the timed-out code); otherwise the server has just reactivated it.
        if (['completed', 'screened_out', 'abandoned'].includes(p.status) || p.answered >= p.total) {
          await finish();
        } else if (p.answered > 0) {
          await nextTrial();
        } else {
          show('instructions');
        }
        return;
      }
      localStorage.removeItem(storageKey); // unknown token (e.g. database reset or withdrawn): start afresh
      state.token = null;
    } catch (e) {
      fail(`The study server cannot be reached (${e.message}).`, boot);
      return;
    }
  }
  show('consent');
}

async function start(questionnaire, error, button) {
  const data = await postStart(config.api.start, questionnaire, { error, button, test: config.test });
  if (!data) return;
  state.token = data.token;
  saveToken(storageKey, state.token);
  if (data.answered > 0) await nextTrial(); else show('instructions');
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

  buildOptions(trial.options, trial.options_after_playback);
  if (!state.player) {
    state.player = new SkeletonPlayer($('player'), { bones: trial.skeleton.bones, views: motions.length,
                                                   up: trial.skeleton.up || 'y' });
  } else {
    state.player.bones = trial.skeleton.bones.map(([a, b]) => [a, b]);
  }
  state.player.setMotions(motions);
  readyToPlay('Press Play (or the space bar) to watch.');
}

function buildOptions(options, hideUntilPlayed = false) {
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
  // Deceitfulness shows its two labels only after the motion (the paper's order), so
  // they cannot steer what the participant looks for while watching.
  box.hidden = Boolean(hideUntilPlayed);
  $('key-hint').hidden = Boolean(hideUntilPlayed);
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
  const plan = state.trial.playback;
  status(`Playing (${formatSeconds(Math.round(plan.total_seconds * 10) / 10)})…`);
  try {
    const log = await state.player.play(plan);
    state.log = { ...log, page_hidden: state.pageHidden, replays: state.interruptions };
    play.hidden = true;
    $('options').hidden = false;
    $('key-hint').hidden = false;
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

const OUTCOME_TEXT = {
  completed: ['Thank you!', 'All your answers are saved.'],
  screened_out: ['Thank you for taking part', 'The study has ended for you: your answers to the check questions '
    + 'were below the level this study needs, so they will not be used. Please return with the code below.'],
  timed_out: ['The time for this study has run out', 'This study no longer accepts your answers because too '
    + 'much time passed. Please return with the code below.'],
};

async function finish() {
  let r;
  try {
    r = await api(url(config.api.complete), { method: 'POST' });
  } catch (e) {
    fail(`Your completion could not be confirmed (${e.message}).`, finish);
    return;
  }
  if (r.status === 409 && r.data && r.data.remaining) {
    await nextTrial(); // something is still unanswered
    return;
  }
  if (!r.ok) {
    fail(apiMessage(r.data) || `Completion failed (HTTP ${r.status}).`, finish);
    return;
  }
  const d = r.data;
  if (d.series && d.series.next && !d.completion_code) {
    showNextPart(d.series);
    return;
  }
  const [title, text] = OUTCOME_TEXT[d.outcome] || OUTCOME_TEXT.completed;
  document.body.dataset.outcome = d.outcome;
  $('complete-title').textContent = title;
  $('complete-text').textContent = text;
  $('completion-code').textContent = d.completion_code;
  $('code-box').hidden = !d.completion_code;
  $('debrief').hidden = !d.debrief_text;
  $('debrief-text').textContent = d.debrief_text || '';
  show('complete');
  countdownRedirect(d.redirect_url, $('redirect-box'), $('redirect-text'), $('redirect-link'));
}

/** A series goes on: the next study's page, with its participation token kept for it. */
function showNextPart(series) {
  $('next-part-text').textContent = `Part ${series.part - 1} of ${series.parts} is done. `
    + `Part ${series.part} starts on the next page; you do not need to agree again.`;
  $('next-part-continue').onclick = () => {
    const slug = series.next.page_url.split('/').filter(Boolean).pop();
    saveToken(`smart-study:${slug}`, series.next.token);
    window.location.assign(`${series.next.page_url}${window.location.search}`);
  };
  show('next-part');
}

/** Delete my data: the participation and its answers (a series' whole participation). */
async function withdraw() {
  if (!window.confirm('Delete all your answers from this study? This cannot be undone.')) return;
  const button = $('withdraw');
  button.disabled = true;
  try {
    const r = await api(url(config.api.participation), { method: 'DELETE' });
    if (!r.ok && r.status !== 404) throw new ApiError(r.status, r.data);
    localStorage.removeItem(storageKey);
    show('withdrawn');
  } catch (e) {
    $('withdraw-error').textContent = `Your data could not be deleted (${e.message}). Please try again.`;
    $('withdraw-error').hidden = false;
  } finally {
    button.disabled = false;
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

wireConsent({ questionnaire: config.questionnaire, show, start });
$('withdraw').addEventListener('click', () => withdraw());
$('instructions-continue').addEventListener('click', () => nextTrial());
$('play').addEventListener('click', () => startPlayback());
$('feedback-continue').addEventListener('click', () => nextTrial());
document.addEventListener('keydown', onKey);
boot();
