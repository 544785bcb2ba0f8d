// The console page: tabs, the speech tab (upload / record / text -> frames -> avatar + curves + downloads),
// live microphone mode, the video tab and the status panel. All computing happens on the bridge server.
import { AvatarView, ARKIT_NAMES, BONE_NAMES } from './avatar.js';
import { CurvePlot } from './plot.js';
import { LiveSession } from './live.js';
import { setupVideo } from './video.js';
import { setupCapture, CameraSession } from './capture.js';

const $ = (id) => document.getElementById(id);
// What the page shows, for people and for the browser tests (read through window.consoleState).
const state = (window.consoleState = {
  ready: false, status: null, result: null, avatar: null, error: '', playing: false,
  renderFps: 0, liveLatencyMs: null, framesShown: 0,
});

export function showError(msg) {
  state.error = msg || '';
  const box = $('error');
  box.textContent = msg || '';
  box.hidden = !msg;
  if (msg && /not reachable|UNAVAILABLE/.test(msg)) refreshStatus(); // the health pill follows at once
}

// fetch + JSON with readable failures: the server's {"error"} sentence, or why the console did not answer.
export async function api(url, opts) {
  let r;
  try {
    r = await fetch(url, opts);
  } catch (e) {
    throw new Error(`the console at ${location.host} is not reachable (${e.message}); is avatar-bridge console still running?`);
  }
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (!r.ok) throw new Error(body?.error || `${r.status} ${r.statusText}: ${text.slice(0, 200)}`);
  return body;
}

// ---------------------------------------------------------------- tabs
for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => {
    for (const x of document.querySelectorAll('#tabs button')) x.classList.toggle('active', x === b);
    for (const s of document.querySelectorAll('.tab')) s.classList.toggle('active', s.id === `tab-${b.dataset.tab}`);
    // One avatar view: it moves to the capture tab while that tab is shown.
    $(b.dataset.tab === 'capture' ? 'capture-view' : 'viewer-home').append($('viewer'));
    if (b.dataset.tab === 'status') refreshStatus();
  });
}

// ---------------------------------------------------------------- avatar + plot
const view = new AvatarView($('avatar-canvas'));
const plot = new CurvePlot($('plot'));
const player = $('player');
let frames = null; // {times: Float64Array, weights: [[52]], rotations: [[16]]}
let clock = null;  // {start: ms, audio: bool}

function reportAvatar(rep) {
  state.avatar = rep;
  $('morph-summary').textContent =
    `${rep.label}: ${rep.found.length}/52 ARKit morph targets, bones ` +
    BONE_NAMES.map((b) => `${b} ${rep.bones[b] ? '✓' : '✗'}`).join(' ');
  const list = $('morph-list');
  list.innerHTML = '';
  const add = (cls, text) => { const p = document.createElement('p'); p.className = cls; p.textContent = text; list.append(p); };
  add('', `Morph targets in the file (${rep.morphTargets.length}): ${rep.morphTargets.join(', ') || 'none'}`);
  add(rep.missing.length ? 'missing' : '', rep.missing.length
    ? `Missing ARKit names (${rep.missing.length}; the avatar cannot show these): ${rep.missing.join(', ')}`
    : 'All 52 ARKit names found.');
  const noBones = BONE_NAMES.filter((b) => !rep.bones[b]);
  if (noBones.length) add('missing', `Bones not found (rotations skipped): ${noBones.join(', ')}`);
  if (!rep.found.length) $('morph-report').open = true;
}

async function loadAvatar(source, label) {
  try {
    reportAvatar(await view.load(source, label));
    showError('');
  } catch (e) {
    showError(`Could not load the avatar ${label}: ${e.message || e}. Use a .glb or .vrm file (glTF 2.0 binary).`);
  }
}
$('avatar-file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) await loadAvatar(await f.arrayBuffer(), f.name);
});
$('avatar-default').addEventListener('click', () => loadAvatar('/static/head.glb', 'default head'));
const viewer = $('viewer');
viewer.addEventListener('dragover', (e) => { e.preventDefault(); viewer.classList.add('drag'); });
viewer.addEventListener('dragleave', () => viewer.classList.remove('drag'));
viewer.addEventListener('drop', async (e) => {
  e.preventDefault();
  viewer.classList.remove('drag');
  const f = e.dataTransfer.files[0];
  if (f) await loadAvatar(await f.arrayBuffer(), f.name);
});

for (const n of ARKIT_NAMES) $('curve-pick').append(new Option(n, n, false,
  ['jawOpen', 'mouthFunnel', 'mouthClose', 'eyeBlinkLeft', 'browInnerUp'].includes(n)));
$('curve-pick').addEventListener('change', () => frames && plotCurves());

function plotCurves() {
  const picked = [...$('curve-pick').selectedOptions].map((o) => o.value);
  plot.set(Array.from(frames.times), picked.map((name) => {
    const i = frames.names.indexOf(name);
    return { name, values: frames.weights.map((w) => w[i] ?? 0) };
  }));
  $('plot').dataset.curves = picked.join(',');
}

// Frame k for time t: the last frame whose time code is <= t (time codes are on the audio's clock).
function frameAt(t) {
  const ts = frames.times;
  let lo = 0, hi = ts.length - 1;
  if (t <= ts[0]) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ts[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

function nowT(nowMs) {
  if (!clock) return player.currentTime || 0;
  if (clock.audio && !player.paused) return player.currentTime;
  return (nowMs - clock.start) / 1000;
}

let live = null;
view.onFrame = (nowMs) => {
  if (live?.active) {
    const f = live.frameToShow(nowMs);
    if (f) { view.apply(f.w, f.r); state.framesShown += 1; }
  } else if (frames) {
    const t = nowT(nowMs);
    const k = frameAt(t);
    // Index order = ARKit order here: the server's header names are the canonical list (checked on load).
    view.apply(frames.weights[k], frames.rotations[k]);
    plot.draw(t);
    if (state.playing) state.framesShown += 1;
    if (clock && t >= frames.times[frames.times.length - 1] + 0.1) stopPlayback();
  }
  state.renderFps = view.fps;
  $('render-fps').textContent = `${view.fps.toFixed(0)} fps`;
};

function stopPlayback() {
  clock = null;
  state.playing = false;
  player.pause();
  $('play').textContent = '▶ Play';
}

async function startPlayback() {
  if (!frames) return;
  player.currentTime = 0;
  state.playing = true;
  $('play').textContent = '■ Stop';
  try {
    await player.play();
    clock = { start: performance.now(), audio: true };
  } catch (e) {
    // No audio output (or autoplay refused): play the frames on the wall clock so the face still moves.
    clock = { start: performance.now(), audio: false };
    $('result-info').textContent += ` (audio could not play: ${e.message}; animating silently)`;
  }
}
$('play').addEventListener('click', () => (state.playing ? stopPlayback() : startPlayback()));

function useResult(res, audioUrl, label) {
  const j = res.frames;
  if (j.blendshape_names.join() !== ARKIT_NAMES.join()) {
    showError('The server sent blendshapes in an unexpected order; this console expects avatarbridge.v1.');
    return;
  }
  frames = {
    names: j.blendshape_names,
    times: Float64Array.from(j.frames.map((f) => f.time)),
    weights: j.frames.map((f) => j.blendshape_names.map((n) => f.blendshapes[n])),
    rotations: j.frames.map((f) => j.bone_names.flatMap((b) => f.rotations[b])),
  };
  state.result = { id: res.id, frames: j.frames.length, fps: j.fps, engine: j.engine,
                   warnings: j.status?.warnings || [] };
  player.src = audioUrl;
  plotCurves();
  const dur = frames.times[frames.times.length - 1] || 0;
  $('result-info').textContent = `${label}: ${j.frames.length} frames at ${j.fps} fps (${dur.toFixed(2)} s), ` +
    `engine ${j.engine}` + (state.result.warnings.length ? `; warnings: ${state.result.warnings.join('; ')}` : '');
  for (const [id, what] of [['dl-json', 'frames.json'], ['dl-csv', 'frames.csv'], ['dl-mp4', 'video.mp4']]) {
    $(id).href = `/api/result/${res.id}/${what}`;
    $(id).classList.remove('disabled');
  }
  $('play').disabled = false;
  showError('');
}

function styleFields(fd) {
  for (const k of ['engine', 'emotion', 'emotion_strength', 'intensity', 'head_motion', 'fps']) fd.append(k, $(k).value);
  return fd;
}

function checkSize(file) {
  const max = state.status?.console?.max_upload_bytes;
  if (max && file.size > max) {
    throw new Error(`${file.name || 'the recording'} is ${(file.size / 1048576).toFixed(0)} MB; the console accepts ` +
      `uploads up to ${(max / 1048576).toFixed(0)} MB. Trim or compress it.`);
  }
}

async function animateFile(file, label) {
  stopPlayback();
  $('result-info').textContent = `animating ${label}…`;
  try {
    checkSize(file);
    const fd = styleFields(new FormData());
    fd.append('audio', file, file.name || 'recording.webm');
    const res = await api('/api/animate', { method: 'POST', body: fd });
    useResult(res, URL.createObjectURL(file), label);
  } catch (e) {
    $('result-info').textContent = 'Nothing animated.';
    showError(`Could not animate ${label}: ${e.message}`);
  }
}

$('audio-file').addEventListener('change', (e) => {
  const f = e.target.files[0];
  if (f) animateFile(f, f.name);
});
$('sample').addEventListener('click', async () => {
  const r = await fetch('/api/sample');
  const name = (r.headers.get('Content-Disposition') || '').match(/filename="(.+)"/)?.[1] || 'sample.wav';
  animateFile(new File([await r.blob()], name), name);
});

$('speak').addEventListener('click', async () => {
  stopPlayback();
  $('result-info').textContent = 'speaking…';
  try {
    const fd = styleFields(new FormData());
    fd.append('text', $('speak-text').value);
    fd.append('voice', $('voice').value);
    const res = await api('/api/speak', { method: 'POST', body: fd });
    useResult(res, res.audio_url, `"${$('speak-text').value.slice(0, 40)}" (${res.voice})`);
    startPlayback();
  } catch (e) {
    $('result-info').textContent = 'Nothing spoken.';
    showError(`Could not speak: ${e.message}`);
  }
});

// ---------------------------------------------------------------- recording (browser microphone -> a clip)
function micError(e) {
  if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
    return 'Microphone permission denied: allow the microphone for this page (the icon in the address bar), ' +
      'or upload a file instead.';
  }
  if (e.name === 'NotFoundError') return 'No microphone found: plug one in, or upload a file instead.';
  return `The microphone could not start: ${e.message || e.name}`;
}
export { micError };

let recorder = null;
$('record').addEventListener('click', async () => {
  if (recorder) { recorder.stop(); return; }
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error('this page has no microphone access (use http://127.0.0.1 or https)'), { name: 'SecurityError' });
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (ev) => chunks.push(ev.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      $('record').textContent = '● Record';
      $('record').classList.remove('on');
      const blob = new Blob(chunks, { type: chunks[0]?.type || 'audio/webm' });
      animateFile(new File([blob], 'recording.webm', { type: blob.type }), 'your recording');
    };
    recorder.start();
    $('record').textContent = '■ Stop recording';
    $('record').classList.add('on');
    showError('');
  } catch (e) {
    recorder = null;
    showError(micError(e));
  }
});

// ---------------------------------------------------------------- live microphone
$('live').addEventListener('click', async () => {
  if (live?.active) { live.stop(); return; }
  stopPlayback();
  live = new LiveSession({
    settings: () => Object.fromEntries(['engine', 'emotion', 'emotion_strength', 'intensity', 'head_motion', 'fps']
      .map((k) => [k, $(k).value])),
    onError: (msg) => showError(msg),
    onLatency: (ms, relayMs) => {
      state.liveLatencyMs = ms;
      $('live-latency').textContent = `live latency ${ms.toFixed(0)} ms (console relay ${relayMs.toFixed(1)} ms)`;
    },
    onState: (on) => {
      $('live').textContent = on ? '■ Stop live' : 'Live microphone';
      $('live').classList.toggle('on', on);
      if (!on) { $('live-latency').textContent = ''; view.rest(); }
    },
    micError,
  });
  state.liveStats = live.stats;
  await live.start();
});

// ---------------------------------------------------------------- webcam (capture tab)
$('webcam').addEventListener('click', async () => {
  if (live?.active) { live.stop(); return; }
  stopPlayback();
  live = new CameraSession({
    preview: $('webcam-preview'),
    onError: (msg) => showError(msg),
    onLatency: (ms) => {
      state.liveLatencyMs = ms;
      $('live-latency').textContent = `camera latency ${ms.toFixed(0)} ms`;
    },
    onState: (on) => {
      $('webcam').textContent = on ? '■ Stop webcam' : 'Start webcam';
      $('webcam').classList.toggle('on', on);
      $('webcam-preview').hidden = !on;
      if (!on) { $('live-latency').textContent = ''; view.rest(); }
    },
    onFace: (lost) => { state.faceLost = lost; $('capture-info').textContent = lost ? 'no face in view' : 'face found'; },
  });
  state.camera = live; // its sent / received / waiting counts, for the page's own checks
  await live.start();
});

// ---------------------------------------------------------------- status
async function refreshStatus() {
  let s;
  try {
    s = await api('/api/status');
  } catch (e) {
    s = { health: 'UNREACHABLE', error: e.message };
  }
  state.status = s;
  const pill = $('health');
  pill.textContent = s.health === 'SERVING' ? `server ${s.server} serving` : `server: ${s.health}`;
  pill.className = 'pill ' + (s.health === 'SERVING' ? 'ok' : 'bad');
  const body = $('status-body');
  const rows = (pairs) => pairs.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('');
  const esc = (x) => String(x ?? '').replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);
  if (s.health === 'SERVING' && state.ready) fillServerControls(s);
  if (s.health !== 'SERVING') {
    body.innerHTML = `<table>${rows([['server', esc(s.server)], ['health', esc(s.health)], ['error', esc(s.error)]])}</table>`;
    return s;
  }
  const m = s.metrics || {};
  const live = Object.entries(m.live_streams || {}).map(([k, v]) => `${esc(k)} ${v}`).join(', ') || '0';
  const gpu = m.gpu ? Object.entries(m.gpu).map(([k, v]) => `${esc(k)}: ${(v / 2 ** 30).toFixed(2)} GiB`).join('<br>')
    : 'not reported by this server';
  const murl = s.console.metrics_url;
  body.innerHTML = `<table id="status-table">${rows([
    ['server', `${esc(s.server)} (version ${esc(s.version)}, ${esc(s.api_version)})`],
    ['health', `${esc(s.health)} (${s.health_ms} ms)`],
    ['workers alive', m.workers_alive ?? 'unknown (no metrics endpoint)'],
    ['worker restarts', m.worker_restarts ?? '–'],
    ['live streams', live],
    ['GPU memory', gpu],
    ['metrics', murl ? `<a href="${esc(murl)}" target="_blank">${esc(murl)}</a>` : 'no metrics endpoint given (--metrics-url)'],
    ['limits', `audio ≤ ${s.limits.max_audio_seconds} s, message ≤ ${(s.limits.max_message_bytes / 1048576).toFixed(0)} MB, ` +
      `console upload ≤ ${(s.console.max_upload_bytes / 1048576).toFixed(0)} MB`],
  ])}</table>
  <table><tr><th>engine</th><th>kind</th><th>look-ahead</th><th>description</th></tr>${s.engines.map((e) =>
    `<tr><td>${esc(e.name)}${e.default ? ' (default)' : ''}</td><td>${esc(e.kind)}</td><td>${e.lookahead_ms} ms</td><td>${esc(e.description)}</td></tr>`).join('')}</table>
  <table><tr><th>voice</th><th>language</th><th>state</th></tr>${s.voices.map((v) =>
    `<tr><td>${esc(v.id)}</td><td>${esc(v.language)}</td><td>${v.missing ? esc(v.missing) : 'installed'}</td></tr>`).join('')}</table>`;
  return s;
}

// Engines, voices and limits from the server; filled once it answers (at start, or when it comes back).
function fillServerControls(s) {
  if ($('engine').options.length) return;
  for (const e of s.engines.filter((x) => x.kind === 'expression')) {
    $('engine').append(new Option(`${e.name}${e.default ? ' (default)' : ''}`, e.name, e.default, e.default));
  }
  const voices = s.voices.filter((v) => !v.missing);
  if (voices.length) {
    // Speak is there: show the text box (it stays hidden on servers without voices).
    for (const v of voices) $('voice').append(new Option(`${v.id} (${v.language})`, v.id));
    $('speak-box').hidden = false;
  }
  $('upload-limit').textContent = `Uploads up to ${(s.console.max_upload_bytes / 1048576).toFixed(0)} MB; ` +
    `clips up to ${s.limits.max_audio_seconds} s.`;
  $('sample').hidden = !s.console.sample_clip;
  if (/not reachable/.test(state.error)) showError('');
}

async function init() {
  await loadAvatar('/static/head.glb', 'default head');
  const s = await refreshStatus();
  if (s.health === 'SERVING') fillServerControls(s);
  else showError(s.error ? `${s.error[0].toUpperCase()}${s.error.slice(1)}` : `The bridge server is ${s.health}`);
  setupVideo({ api, state, checkSize });
  setupCapture({ api, state, useFrames: (res, label) => { useResult(res, res.audio_url || '', label); } });
  state.ready = true;
  document.body.dataset.ready = '1';
  if (s.console?.sample_clip) $('sample').click();
}
setInterval(() => { if (document.visibilityState === 'visible') refreshStatus(); }, 10000);
init();
