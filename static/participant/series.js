/**
 * The series page: one consent (and questionnaire) for several studies, then each
 * study's own page in turn. The server creates the current study's participation; this
 * page keeps its token for that study's page (app.js then resumes it without asking
 * for consent again) and goes there. A kept series token resumes the series.
 */
import { $, api, apiMessage, countdownRedirect, loadToken, postStart, saveToken, wireConsent } from './common.js';

const config = JSON.parse(document.getElementById('series-config').textContent);
const storageKey = `smart-series:${config.slug}`;

function show(name) {
  for (const section of document.querySelectorAll('[data-screen-name]')) {
    section.hidden = section.dataset.screenName !== name;
  }
  document.body.dataset.screen = name;
}

/** Go to the series' current study, or show how the series ended. */
function follow(state) {
  if (state.next) {
    const slug = state.next.page_url.split('/').filter(Boolean).pop();
    saveToken(`smart-study:${slug}`, state.next.token);
    window.location.assign(`${state.next.page_url}${window.location.search}`);
    return;
  }
  document.body.dataset.outcome = state.status;
  $('ended-text').textContent = state.status === 'completed'
    ? 'You have completed every part. Thank you!'
    : 'Your answers to the check questions were below the level this study needs, so the remaining parts are '
      + 'not shown and your answers will not be used. Thank you for taking part.';
  $('completion-code').textContent = state.completion_code || '';
  $('code-box').hidden = !state.completion_code;
  show('ended');
  countdownRedirect(state.redirect_url, $('redirect-box'), $('redirect-text'), $('redirect-link'));
}

function fail(message) {
  $('error-text').textContent = message;
  show('error');
}

async function boot() {
  const token = loadToken(storageKey);
  if (token) {
    try {
      const r = await api(config.api.state.replace(config.api.token_placeholder, encodeURIComponent(token)));
      if (r.ok) { follow(r.data); return; }
      if (r.status !== 404) { fail(apiMessage(r.data) || `HTTP ${r.status}`); return; }
      localStorage.removeItem(storageKey);
    } catch (e) {
      fail(`The study server cannot be reached (${e.message}).`);
      return;
    }
  }
  show('consent');
}

async function start(questionnaire, error, button) {
  const data = await postStart(config.api.start, questionnaire, { error, button, test: config.test });
  if (!data) return;
  saveToken(storageKey, data.token);
  follow(data);
}

wireConsent({ questionnaire: config.questionnaire, show, start });
boot();
