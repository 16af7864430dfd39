/**
 * Skeleton player for the perceptual studies (and the admin preview).
 *
 * Why it is built this way:
 * - Any skeleton: bodies are drawn from the bone list the API sends (pairs of joint
 *   indices), as thick cylinders with spheres at the joints, never as 1-pixel lines.
 * - Fair side-by-side comparison: one WebGLRenderer draws one or two viewports (scissor
 *   rectangles) with ONE camera framed on a bounding box computed over every motion
 *   shown, so both motions appear at the same scale and size never hints at an attack;
 *   both advance from the same clock.
 * - Natural speed: each motion plays at its own frame rate (its `fps`), slowed by the
 *   plan's slow-motion factor; the clip repeats `showings` times with a still pause on
 *   its last frame between repeats (studies/core/playback.py decides the plan). The pose
 *   shown at a requestAnimationFrame timestamp is interpolated between the two nearest
 *   motion frames, so timing follows the clock on any refresh rate; the log reports what
 *   the browser really did (duration, frames drawn, late frames, showing starts).
 * - The canvas carries `data-frame` (motion frame shown, first motion) and
 *   `data-showing` (0-based repeat), so tests can follow the clock frame by frame.
 *
 * Public API:
 *   decodeMotion(payload) -> Promise<Motion>      (studies.core.payloads format)
 *   motionBounds(motions) -> {min:[x,y,z], max:[x,y,z]}
 *   schedule(motions, plan) -> {clipMs, periodMs, totalMs, showings, pauseMs, slow}
 *   new SkeletonPlayer(canvas, {bones, views, up})
 *     .setMotions([motion] or [left, right])   .renderPhase(phase)   .renderTime(seconds)
 *     .play(plan) -> Promise<log>   .stop()   .resize()   .dispose()
 *   PlaybackInterrupted (rejection of play() when the page is hidden mid-playback)
 */
import * as THREE from 'three';

export const MOTION_FORMAT = 'int16-tdelta-deflate-base64';

/** A playback stopped because the page was hidden (the caller replays the trial). */
export class PlaybackInterrupted extends Error {
  constructor(reason) {
    super(`playback interrupted: ${reason}`);
    this.name = 'PlaybackInterrupted';
    this.reason = reason;
  }
}

/**
 * Decode a motion payload of `studies.core.payloads.encode_motion`: base64 -> zlib-inflate ->
 * little-endian int16 (M, T, V, 3) time differences -> running sum -> offset + q * scale.
 * Resolves to {persons, frames, joints, fps, positions: Float32Array(M*T*V*3), valid: Uint8Array(M*T)}.
 */
export async function decodeMotion(payload) {
  if (!payload || payload.format !== MOTION_FORMAT) {
    throw new Error(`unknown motion format ${payload && payload.format}`);
  }
  const [persons, frames, joints, dims] = payload.shape;
  if (dims !== 3) throw new Error(`motion must have 3 coordinates per joint, got ${dims}`);
  const binary = atob(payload.data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  const buffer = await new Response(inflated).arrayBuffer();
  const count = persons * frames * joints * 3;
  if (buffer.byteLength !== count * 2) {
    throw new Error(`motion data has ${buffer.byteLength} bytes, expected ${count * 2}`);
  }
  const view = new DataView(buffer);
  const q = new Int16Array(count);
  for (let i = 0; i < count; i++) q[i] = view.getInt16(2 * i, true);
  const frameSize = joints * 3;
  for (let m = 0; m < persons; m++) {
    const base = m * frames * frameSize;
    for (let t = 1; t < frames; t++) {
      const row = base + t * frameSize;
      for (let k = 0; k < frameSize; k++) q[row + k] += q[row + k - frameSize]; // wraps like the encoder
    }
  }
  const positions = new Float32Array(count);
  const { offset, scale } = payload;
  for (let i = 0; i < count; i++) positions[i] = offset[i % 3] + q[i] * scale[i % 3];
  // A person-frame whose joints all sit at the origin (to within one quantisation step)
  // is padding, e.g. an absent second person.
  const valid = new Uint8Array(persons * frames);
  const step = [0, 1, 2].map((axis) => Math.abs(scale[axis]) + 1e-6);
  for (let mt = 0; mt < persons * frames; mt++) {
    let any = false;
    for (let k = 0; k < frameSize && !any; k++) any = Math.abs(positions[mt * frameSize + k]) > step[k % 3];
    valid[mt] = any ? 1 : 0;
  }
  return { persons, frames, joints, fps: payload.fps, positions, valid };
}

/** Axis-aligned box over every valid joint of every frame of every motion. */
export function motionBounds(motions) {
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (const motion of motions) {
    const frameSize = motion.joints * 3;
    for (let mt = 0; mt < motion.persons * motion.frames; mt++) {
      if (!motion.valid[mt]) continue;
      for (let k = 0; k < frameSize; k++) {
        const v = motion.positions[mt * frameSize + k];
        const axis = k % 3;
        if (v < min[axis]) min[axis] = v;
        if (v > max[axis]) max[axis] = v;
      }
    }
  }
  if (!Number.isFinite(min[0])) return { min: [-0.5, 0, -0.5], max: [0.5, 1.8, 0.5] };
  return { min, max };
}

const BONE_COLOR = 0xc8553d;
const JOINT_COLOR = 0x2f4858;
const BACKGROUND = 0xeef1f4;
const GAP_PX = 8; // between side-by-side viewports
const VIEW_DIRECTION = new THREE.Vector3(0.45, 0.3, 1).normalize(); // front-right, slightly above
const LATE_FACTOR = 1.5;

/** Natural duration of a motion, first to last frame (a single frame lasts one frame). */
function clipSeconds(motion) {
  if (!(motion.fps > 0)) throw new Error(`motion has no frame rate (fps ${motion.fps})`);
  return Math.max(motion.frames - 1, 1) / motion.fps;
}

/**
 * The timeline of a plan ({showings, pause_seconds, slow_motion}) for these motions, in
 * ms on screen: each showing lasts the longest clip x slow motion, then the last frame
 * stays still for the pause (none after the last showing).
 */
export function schedule(motions, plan = {}) {
  const slow = plan.slow_motion || 1;
  const showings = Math.max(1, Math.round(plan.showings || 1));
  const pauseMs = 1000 * (plan.pause_seconds || 0);
  const clipMs = 1000 * slow * Math.max(...motions.map(clipSeconds));
  return { clipMs, pauseMs, periodMs: clipMs + pauseMs, showings, slow,
           totalMs: showings * clipMs + (showings - 1) * pauseMs };
}

export class SkeletonPlayer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{bones: number[][], views?: number, up?: string}} options
   *   bones: [child, parent] joint index pairs; views: 1 or 2 viewports (setMotions
   *   resets it to the number of motions given); up: 'y' or 'z'.
   */
  constructor(canvas, { bones, views = 1, up = 'y' }) {
    if (views !== 1 && views !== 2) throw new Error('views must be 1 or 2');
    this.canvas = canvas;
    this.bones = bones.map(([a, b]) => [a, b]);
    this.views = views;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.setClearColor(BACKGROUND, 1);
    this.renderer.setScissorTest(true);
    this.scene = new THREE.Scene();
    this.world = new THREE.Group(); // holds floor and bodies; rotated when the data is z-up
    if (up === 'z') this.world.rotation.x = -Math.PI / 2;
    this.scene.add(this.world);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x8d8a84, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(2, 4, 3);
    this.scene.add(sun);
    this.camera = new THREE.PerspectiveCamera(32, 1, 0.05, 100);
    this.boneGeometry = new THREE.CylinderGeometry(1, 1, 1, 14, 1); // unit radius and height, along +y
    this.jointGeometry = new THREE.SphereGeometry(1, 16, 12);
    this.boneMaterial = new THREE.MeshStandardMaterial({ color: BONE_COLOR, roughness: 0.55, metalness: 0.0 });
    this.jointMaterial = new THREE.MeshStandardMaterial({ color: JOINT_COLOR, roughness: 0.5, metalness: 0.0 });
    this.bodies = [];
    this.floor = null;
    this.motions = [];
    this.phase = 0;
    this._raf = 0;
    this._abort = null;
    this._tmp = { a: new THREE.Vector3(), b: new THREE.Vector3(), d: new THREE.Vector3(),
                  q: new THREE.Quaternion(), s: new THREE.Vector3(), m: new THREE.Matrix4(),
                  yAxis: new THREE.Vector3(0, 1, 0) };
    this._resizeObserver = new ResizeObserver(() => this.resize());
    this._resizeObserver.observe(canvas);
  }

  /** Show these motions (one per viewport), framed together, at their first pose. */
  setMotions(motions) {
    if (motions.length !== 1 && motions.length !== 2) throw new Error(`expected 1 or 2 motions, got ${motions.length}`);
    this.views = motions.length;
    for (const motion of motions) {
      for (const [a, b] of this.bones) {
        if (a >= motion.joints || b >= motion.joints) throw new Error(`bone (${a}, ${b}) outside ${motion.joints} joints`);
      }
    }
    this._clearBodies();
    this.motions = motions;
    const bounds = motionBounds(motions);
    const height = Math.max(bounds.max[1] - bounds.min[1], bounds.max[0] - bounds.min[0],
                            bounds.max[2] - bounds.min[2], 0.3);
    this.boneRadius = 0.015 * height;
    this.jointRadius = 0.022 * height;
    for (const motion of motions) {
      const group = new THREE.Group();
      const boneMesh = new THREE.InstancedMesh(this.boneGeometry, this.boneMaterial, motion.persons * this.bones.length);
      const jointMesh = new THREE.InstancedMesh(this.jointGeometry, this.jointMaterial, motion.persons * motion.joints);
      boneMesh.frustumCulled = false;
      jointMesh.frustumCulled = false;
      group.add(boneMesh, jointMesh);
      this.world.add(group);
      this.bodies.push({ group, boneMesh, jointMesh, motion, pose: new Float32Array(motion.joints * 3) });
    }
    this._buildFloor(bounds);
    this._frame(bounds);
    this.resize();
    this.renderPhase(0);
  }

  /** Draw every viewport at `phase` in [0, 1] of the motions (0 = first frame, 1 = last). */
  renderPhase(phase) {
    this.phase = Math.min(Math.max(phase, 0), 1);
    this._draw(this.bodies.map((body) => this.phase * (body.motion.frames - 1)));
  }

  /** Draw every motion as it is `seconds` (natural time) after its first frame, at its
   * own frame rate; a motion that has ended holds its last frame. */
  renderTime(seconds) {
    const t = Math.max(seconds, 0);
    this._draw(this.bodies.map((body) => Math.min(t * body.motion.fps, body.motion.frames - 1)));
  }

  /** Pose each body at its (fractional) frame index and draw every viewport. */
  _draw(frames) {
    this.bodies.forEach((body, i) => this._pose(body, frames[i]));
    if (frames.length) {
      const first = this.bodies[0].motion;
      this.phase = first.frames > 1 ? frames[0] / (first.frames - 1) : 0;
      this.canvas.dataset.frame = String(Math.round(frames[0] * 1000) / 1000);
    }
    const size = this.renderer.getSize(new THREE.Vector2());
    const width = (size.x - GAP_PX * (this.views - 1)) / this.views;
    this.renderer.setScissor(0, 0, size.x, size.y);
    this.renderer.setViewport(0, 0, size.x, size.y);
    this.renderer.setClearColor(0xffffff, 1);
    this.renderer.clear();
    this.renderer.setClearColor(BACKGROUND, 1);
    this.bodies.forEach((body, i) => {
      this.bodies.forEach((other) => { other.group.visible = other === body; });
      const x = Math.round(i * (width + GAP_PX));
      this.renderer.setViewport(x, 0, Math.floor(width), size.y);
      this.renderer.setScissor(x, 0, Math.floor(width), size.y);
      this.renderer.render(this.scene, this.camera);
    });
    if (!this.bodies.length) this.renderer.render(this.scene, this.camera);
  }

  /**
   * Play the motions by the plan (studies/core/playback.py: showings, pause_seconds,
   * slow_motion), timed by requestAnimationFrame timestamps. Resolves to the playback
   * log; rejects with PlaybackInterrupted when the page is hidden (visibilitychange) or
   * stop() is called.
   */
  play(plan = {}) {
    if (!this.bodies.length) return Promise.reject(new Error('no motion loaded'));
    this.stop();
    const motions = this.bodies.map((body) => body.motion);
    const timeline = schedule(motions, plan);
    return new Promise((resolve, reject) => {
      let t0 = null;
      let wall0 = 0;
      let last = 0;
      let frames = 0;
      const intervals = [];
      const starts = [];
      const cleanup = () => {
        cancelAnimationFrame(this._raf);
        this._raf = 0;
        this._abort = null;
        document.removeEventListener('visibilitychange', onVisibility);
      };
      const onVisibility = () => {
        if (document.visibilityState === 'hidden') {
          cleanup();
          reject(new PlaybackInterrupted('page hidden'));
        }
      };
      this._abort = (reason) => { cleanup(); reject(new PlaybackInterrupted(reason)); };
      const step = (now) => {
        if (t0 === null) {
          t0 = now;
          wall0 = performance.now();
        } else {
          intervals.push(now - last);
        }
        last = now;
        const elapsed = now - t0;
        frames += 1;
        const showing = Math.min(Math.floor(elapsed / timeline.periodMs), timeline.showings - 1);
        if (starts.length <= showing) starts.push(elapsed);
        this.canvas.dataset.showing = String(showing);
        if (elapsed >= timeline.totalMs) {
          this.renderTime(Infinity);
          cleanup();
          resolve(playbackLog({ elapsed, frames, intervals, starts, timeline, motions, plan,
                                wall: performance.now() - wall0 }));
          return;
        }
        // Within a showing: natural time since its start; in the pause: the last frame.
        const within = elapsed - showing * timeline.periodMs;
        this.renderTime(within >= timeline.clipMs ? Infinity : within / timeline.slow / 1000);
        this._raf = requestAnimationFrame(step);
      };
      document.addEventListener('visibilitychange', onVisibility);
      if (document.visibilityState === 'hidden') {
        onVisibility();
        return;
      }
      this._raf = requestAnimationFrame(step);
    });
  }

  /** Stop a running playback (its promise rejects with PlaybackInterrupted('stopped')). */
  stop() {
    if (this._abort) this._abort('stopped');
  }

  /** Match the drawing buffer to the canvas' CSS size and redraw. */
  resize() {
    const width = Math.max(1, Math.floor(this.canvas.clientWidth));
    const height = Math.max(1, Math.floor(this.canvas.clientHeight));
    this.renderer.setSize(width, height, false);
    const viewWidth = (width - GAP_PX * (this.views - 1)) / this.views;
    this.camera.aspect = viewWidth / height;
    if (this._bounds) this._frame(this._bounds);
    this.camera.updateProjectionMatrix();
    if (!this._raf) this.renderPhase(this.phase);
  }

  dispose() {
    this.stop();
    this._resizeObserver.disconnect();
    this._clearBodies();
    this.boneGeometry.dispose();
    this.jointGeometry.dispose();
    this.boneMaterial.dispose();
    this.jointMaterial.dispose();
    this.renderer.dispose();
  }

  _clearBodies() {
    for (const body of this.bodies) {
      this.world.remove(body.group);
      body.boneMesh.dispose();
      body.jointMesh.dispose();
    }
    this.bodies = [];
  }

  _buildFloor(bounds) {
    if (this.floor) {
      this.world.remove(this.floor);
      this.floor.geometry.dispose();
      this.floor.material.dispose();
    }
    const spanX = bounds.max[0] - bounds.min[0];
    const spanZ = bounds.max[2] - bounds.min[2];
    const size = Math.max(4, Math.ceil(2 * Math.max(spanX, spanZ) + 2));
    this.floor = new THREE.GridHelper(size, size * 2, 0x9aa5b1, 0xc9d0d8);
    this.floor.position.set((bounds.min[0] + bounds.max[0]) / 2, bounds.min[1] - this.jointRadius,
                            (bounds.min[2] + bounds.max[2]) / 2);
    this.world.add(this.floor);
  }

  /** Place the single shared camera so that the whole box fits every viewport. */
  _frame(bounds) {
    this._bounds = bounds;
    this.world.updateMatrixWorld(true);
    const corners = [];
    for (const x of [bounds.min[0], bounds.max[0]]) {
      for (const y of [bounds.min[1], bounds.max[1]]) {
        for (const z of [bounds.min[2], bounds.max[2]]) {
          corners.push(new THREE.Vector3(x, y, z).applyMatrix4(this.world.matrixWorld));
        }
      }
    }
    const box = new THREE.Box3().setFromPoints(corners);
    const center = box.getCenter(new THREE.Vector3());
    const forward = VIEW_DIRECTION.clone().negate(); // from the camera towards the centre
    const right = new THREE.Vector3().crossVectors(forward, new THREE.Vector3(0, 1, 0)).normalize();
    const up = new THREE.Vector3().crossVectors(right, forward).normalize();
    const tanV = Math.tan(THREE.MathUtils.degToRad(this.camera.fov) / 2);
    const tanH = tanV * this.camera.aspect;
    const margin = 1.08;
    const pad = this.jointRadius * 2; // joints stick out of the box of their centres
    let distance = 0.5;
    for (const corner of corners) {
      const rel = corner.clone().sub(center);
      const depth = rel.dot(forward); // positive = farther from the camera
      const needX = (Math.abs(rel.dot(right)) + pad) / tanH - depth;
      const needY = (Math.abs(rel.dot(up)) + pad) / tanV - depth;
      distance = Math.max(distance, needX, needY);
    }
    distance *= margin;
    this.camera.position.copy(center).addScaledVector(VIEW_DIRECTION, distance);
    this.camera.lookAt(center);
    this.camera.near = Math.max(0.01, distance / 100);
    this.camera.far = distance * 10 + 10;
    this.camera.updateProjectionMatrix();
  }

  /** Write one body's instance matrices at fractional frame `u`, interpolating between frames. */
  _pose(body, u) {
    const { motion, pose, boneMesh, jointMesh } = body;
    const { a, b, d, q, s, m, yAxis } = this._tmp;
    u = Math.min(Math.max(u, 0), motion.frames - 1);
    const i0 = Math.floor(u);
    const i1 = Math.min(i0 + 1, motion.frames - 1);
    const f = u - i0;
    const frameSize = motion.joints * 3;
    const hidden = new THREE.Matrix4().makeScale(0, 0, 0);
    for (let p = 0; p < motion.persons; p++) {
      const valid0 = motion.valid[p * motion.frames + i0];
      const valid1 = motion.valid[p * motion.frames + i1];
      const visible = valid0 || valid1;
      const base0 = (p * motion.frames + (valid0 ? i0 : i1)) * frameSize;
      const base1 = (p * motion.frames + (valid1 ? i1 : i0)) * frameSize;
      for (let k = 0; k < frameSize; k++) {
        pose[k] = motion.positions[base0 + k] * (1 - f) + motion.positions[base1 + k] * f;
      }
      for (let j = 0; j < motion.joints; j++) {
        const index = p * motion.joints + j;
        if (!visible) { jointMesh.setMatrixAt(index, hidden); continue; }
        a.set(pose[3 * j], pose[3 * j + 1], pose[3 * j + 2]);
        m.compose(a, q.identity(), s.setScalar(this.jointRadius));
        jointMesh.setMatrixAt(index, m);
      }
      this.bones.forEach(([child, parent], k) => {
        const index = p * this.bones.length + k;
        a.set(pose[3 * child], pose[3 * child + 1], pose[3 * child + 2]);
        b.set(pose[3 * parent], pose[3 * parent + 1], pose[3 * parent + 2]);
        d.subVectors(a, b);
        const length = d.length();
        if (!visible || length < 1e-6) { boneMesh.setMatrixAt(index, hidden); return; }
        q.setFromUnitVectors(yAxis, d.divideScalar(length));
        a.add(b).multiplyScalar(0.5);
        m.compose(a, q, s.set(this.boneRadius, length, this.boneRadius));
        boneMesh.setMatrixAt(index, m);
      });
    }
    boneMesh.instanceMatrix.needsUpdate = true;
    jointMesh.instanceMatrix.needsUpdate = true;
  }
}

/** The log sent with an answer (field names as the studies API stores them). */
function playbackLog({ elapsed, frames, intervals, starts, timeline, motions, plan, wall }) {
  const sorted = intervals.slice().sort((x, y) => x - y);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  const late = median > 0 ? intervals.filter((v) => v > LATE_FACTOR * median).length : 0;
  const fps = motions[0].fps;
  return {
    measured_duration_ms: round3(elapsed),
    frames_drawn: frames,
    late_frames: late,
    page_hidden: false,
    expected_duration_ms: round3(timeline.totalMs),
    median_frame_interval_ms: round3(median),
    max_frame_interval_ms: round3(sorted.length ? sorted[sorted.length - 1] : 0),
    // The frame that crossed the end: playback stops on the first frame at or after the
    // planned duration, so the overshoot is less than this interval.
    final_frame_interval_ms: round3(intervals.length ? intervals[intervals.length - 1] : 0),
    wall_duration_ms: round3(wall),
    motion_fps: fps,
    effective_fps: round3(fps / timeline.slow),
    clip_seconds: round3(timeline.clipMs / timeline.slow / 1000),
    showings: timeline.showings,
    pause_seconds: round3(timeline.pauseMs / 1000),
    showing_starts_ms: starts.map(round3),
    seconds: plan.seconds, repeats: plan.repeats, slow_motion: timeline.slow, // undefined ones are left out
  };
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
