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
