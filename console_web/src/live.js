// Live mode: microphone -> PCM16 over the console's WebSocket -> StreamExpression -> frames shown as they come.
// Latency shown = when a frame is drawn minus when the microphone delivered the audio sample it describes
// (it includes the engine's look-ahead, the server, the console's relay and the wait for the next repaint).

const WORKLET = `
class Tap extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('tap', Tap);`;

export class LiveSession {
  constructor({ settings, onError, onLatency, onState, micError }) {
    Object.assign(this, { settings, onError, onLatency, onState, micError });
    this.active = false;
    this.pending = [];   // frames waiting for the next repaint
    this.marks = [];     // [sampleEnd, performance.now()] per chunk sent
    this.latencies = [];
    this.relay = [];
    this.stats = { chunks: 0, frames: 0, worklet: 0 }; // what flowed, for the page's state and the tests
  }

  async start() {
    // Made inside the click, before any await, so the browser counts it as started by the user (else Firefox
    // keeps it suspended and no audio flows).
    this.ctx = new AudioContext();
    let stream;
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error('no microphone access on this page'), { name: 'SecurityError' });
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false } });
    } catch (e) {
      this.ctx.close();
      this.onError(this.micError(e));
      return;
    }
    this.stream = stream;
    await Promise.race([this.ctx.resume(), new Promise((r) => setTimeout(r, 2000))]);
    this.stats.audio = this.ctx.state; // 'running' when the browser has an audio device to clock it
    if (this.ctx.state !== 'running') {
      stream.getTracks().forEach((t) => t.stop());
      this.ctx.close();
      this.onError(`The browser's audio engine did not start (Web Audio is ${this.ctx.state}: no sound device, or ` +
        'the browser blocked it), so live mode cannot read the microphone. Upload or record a clip instead.');
      return;
    }
    const rate = this.ctx.sampleRate;
    const url = URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' }));
    await this.ctx.audioWorklet.addModule(url);
    const src = this.ctx.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(this.ctx, 'tap');
    src.connect(this.node);
    // Into the output at zero gain: Firefox only runs a worklet whose output reaches the destination.
    const mute = this.ctx.createGain();
    mute.gain.value = 0;
    this.node.connect(mute).connect(this.ctx.destination);
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/live`);
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    let sent = 0;
    let buf = [];
    let n = 0;
    const chunk = Math.round(rate * 0.02); // 20 ms per message
    ws.onopen = () => {
      ws.send(JSON.stringify({ sample_rate: rate, ...this.settings() }));
      this.active = true;
      this.onState(true);
      this.onError('');
      this.node.port.onmessage = (ev) => {
        this.stats.worklet += 1;
        buf.push(ev.data);
        n += ev.data.length;
        if (n < chunk || ws.readyState !== WebSocket.OPEN) return;
        const pcm = new Int16Array(n);
        let o = 0;
        for (const b of buf) for (let i = 0; i < b.length; i++) pcm[o++] = Math.max(-1, Math.min(1, b[i])) * 32767;
        buf = []; n = 0;
        sent += pcm.length;
        this.stats.chunks += 1;
        this.marks.push([sent, performance.now()]);
        if (this.marks.length > 500) this.marks.splice(0, 250);
        ws.send(pcm.buffer);
      };
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'header') this.header = m;
      else if (m.type === 'frames') {
        for (const [index, sampleIndex, w, r] of m.frames) this.pending.push({ index, sampleIndex, w, r, relay: m.relay_ms });
        this.stats.frames += m.frames.length;
      } else if (m.type === 'error') {
        this.failed = true; // the close that follows says nothing new
        this.onError(`Live stream stopped: ${m.message}`);
      }
    };
    ws.onclose = (ev) => {
      if (this.active && !this.stopping && !this.failed) {
        this.onError(`Live stream ended: the connection closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''}); ` +
          'the console or the server may have stopped. Press Live microphone to try again.');
      }
      this.teardown();
    };
    ws.onerror = () => {};
  }

  // The newest frame that has arrived, and its latency measured now (called just before a repaint).
  frameToShow(nowMs) {
    if (!this.pending.length) return null;
    const f = this.pending[this.pending.length - 1];
    this.pending = [];
    const captured = this.captureTime(f.sampleIndex);
    if (captured !== null) {
      this.latencies.push(nowMs - captured);
      this.relay.push(f.relay || 0);
      if (this.latencies.length > 60) { this.latencies.shift(); this.relay.shift(); }
      const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      this.onLatency(med(this.latencies), med(this.relay));
    }
    return f;
  }

  // When the microphone delivered sample s: the end of the chunk holding it, minus the samples after it.
  captureTime(s) {
    const rate = this.ctx?.sampleRate;
    for (const [end, t] of this.marks) {
      if (end >= s) return t - ((end - s) / rate) * 1000;
    }
    return null;
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
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.ctx?.close();
    this.onState(false);
  }
}
