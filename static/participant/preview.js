/**
 * Staff preview of one adversarial sample: original (left) and adversarial (right)
 * played side by side by the participant player, so researchers see exactly what
 * participants would see (same framing, same clock, same timing).
 */
import { SkeletonPlayer, decodeMotion } from './player.js';

const data = JSON.parse(document.getElementById('preview-data').textContent);
const root = document.getElementById('preview');
const play = document.getElementById('preview-play');
const statusLine = document.getElementById('preview-status');
const labels = document.getElementById('view-labels');

async function main() {
  const motions = await Promise.all(data.motions.map(decodeMotion));
  const player = new SkeletonPlayer(document.getElementById('preview-canvas'),
                                    { bones: data.skeleton.bones, views: motions.length, up: data.skeleton.up });
  player.setMotions(motions);
  labels.replaceChildren(...data.view_labels.map((text) => {
    const span = document.createElement('span');
    span.textContent = text;
    return span;
  }));
  labels.dataset.views = String(motions.length);
  root.dataset.state = 'ready';
  statusLine.textContent = 'Ready.';
  play.disabled = false;
  play.addEventListener('click', async () => {
    play.disabled = true;
    root.dataset.state = 'playing';
    statusLine.textContent = 'Playing…';
    try {
      const log = await player.play(data.playback);
      statusLine.textContent = `Played in ${(log.measured_duration_ms / 1000).toFixed(3)} s, `
        + `${log.frames_drawn} frames, ${log.late_frames} late (${log.showings} × ${log.clip_seconds} s `
        + `at ${log.effective_fps} fps).`;
    } catch (e) {
      statusLine.textContent = `Playback stopped (${e.message}).`;
    }
    root.dataset.state = 'ready';
    play.disabled = false;
  });
}

main().catch((e) => {
  root.dataset.state = 'error';
  statusLine.textContent = `The motions could not be shown: ${e.message}`;
});
