// Capture tab: a video file -> CaptureVideo on the server -> the face's frames play on the avatar with its sound.
const $ = (id) => document.getElementById(id);

export function setupCapture({ api, state, useFrames }) {
  $('capture-file').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    $('capture-info').textContent = `capturing ${f.name}…`;
    try {
      const fd = new FormData();
      fd.append('video', f, f.name);
      const res = await api('/api/capture', { method: 'POST', body: fd });
      useFrames(res, `${f.name} (captured face)`);
      $('capture-info').textContent = `${res.frames.frames.length} frames; ${res.frames.status?.face_lost_frames ?? 0} ` +
        'without a face. Open the Speech tab and press Play.';
      state.capture = { frames: res.frames.frames.length };
    } catch (err) {
      $('capture-info').textContent = `Could not capture ${f.name}: ${err.message}`;
      state.capture = { error: err.message };
    }
  });
}

// Webcam -> JPEG images (15 a second) over /ws/capture -> CaptureStream -> the newest frame drives the avatar.
// Latency shown = frame drawn minus the moment its image was taken from the camera.
export class CameraSession {
  constructor({ preview, onError, onLatency, onState, onFace }) {
    Object.assign(this, { preview, onError, onLatency, onState, onFace });
    this.active = false;
    this.pending = [];
    this.latencies = [];
  }

  async start() {
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error('no camera access on this page'), { name: 'SecurityError' });
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    } catch (e) {
      this.onError(e.name === 'NotAllowedError' || e.name === 'SecurityError'
        ? 'Camera permission denied: allow the camera for this page (the icon in the address bar), or use a video file.'
        : e.name === 'NotFoundError' ? 'No camera found: plug one in, or use a video file.'
          : `The camera could not start: ${e.message || e.name}`);
      return;
    }
    this.preview.srcObject = this.stream;
    await this.preview.play().catch(() => {});
    const canvas = document.createElement('canvas');
    canvas.width = 320; canvas.height = 240;
    const g = canvas.getContext('2d');
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/capture`);
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      ws.send(JSON.stringify({ fps: 15 }));
      this.active = true;
      this.onState(true);
      this.onError('');
      // Capture times (ms) of the images sent whose frame has not come back yet. At most two wait: when the
      // server is slower than the camera, images are skipped here instead of queueing up (a queue would only
      // add latency). A frame settles every image taken up to its time, so an image the console dropped to keep
      // the face current (its queue was full) frees its slot with the next frame instead of wedging the sender.
      this.waiting = [];
      this.sent = 0;
      this.received = 0;
      this.timer = setInterval(() => {
        const t = performance.now();
        // An image whose frame never came (lost between page and server) stops counting after 5 s.
        this.waiting = this.waiting.filter((w) => t - w < 5000);
        if (ws.readyState !== WebSocket.OPEN || this.waiting.length >= 2) return;
        this.waiting.push(t); // reserved before the asynchronous encode, so a slow toBlob cannot overshoot
        g.drawImage(this.preview, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(async (blob) => {
          if (blob && ws.readyState === WebSocket.OPEN) {
            const head = new ArrayBuffer(8);
            new DataView(head).setFloat64(0, t, true);
            const body = await new Blob([head, blob]).arrayBuffer();
            if (ws.readyState === WebSocket.OPEN) {
              ws.send(body);
              this.sent += 1;
              return;
            }
          }
          this.waiting = this.waiting.filter((w) => w !== t); // never sent: free its slot
        }, 'image/jpeg', 0.8);
      }, 1000 / 15);
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'frames') {
        for (const [index, ts, w, r, lost] of m.frames) {
          this.pending.push({ index, ts, w, r, lost });
          // ts: the image's capture time in whole µs (the console truncates, then keeps them strictly increasing)
          this.waiting = this.waiting.filter((t) => Math.floor(t * 1000) > ts);
        }
        this.received += m.frames.length;
      } else if (m.type === 'error') {
        this.failed = true;
        this.onError(`Camera stream stopped: ${m.message}`);
      }
    };
    ws.onclose = (ev) => {
      if (this.active && !this.stopping && !this.failed) {
        this.onError(`Camera stream ended: the connection closed (${ev.code}); the console or the server may have stopped.`);
      }
      this.teardown();
    };
  }

  frameToShow(nowMs) {
    if (!this.pending.length) return null;
    const f = this.pending[this.pending.length - 1];
    this.pending = [];
    this.latencies.push(nowMs - f.ts / 1000);
    if (this.latencies.length > 30) this.latencies.shift();
    this.onLatency([...this.latencies].sort((a, b) => a - b)[this.latencies.length >> 1]);
    this.onFace(f.lost);
    return f;
  }

  stop() {
    this.stopping = true;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send('end');
    this.teardown();
    this.ws?.close();
  }

  teardown() {
    if (!this.active && !this.stream) return;
    this.active = false;
    clearInterval(this.timer);
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.onState(false);
  }
}
