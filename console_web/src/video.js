// Video tab: portrait + speech + prompt + preset -> a GenerateVideo job; progress, frame preview, then the MP4.
const $ = (id) => document.getElementById(id);

export function setupVideo({ api, state, checkSize }) {
  state.video = { state: 'idle', percent: 0, error: '' };
  api('/api/video/options').then((o) => {
    for (const name of Object.keys(o.presets)) {
      const p = o.presets[name];
      $('video-preset').append(new Option(`${name} — ${p.model} ${p.size}, ${p.sample_steps} steps`, name, name === 'preview', name === 'preview'));
    }
    $('video-prompt').placeholder = o.prompt_hint;
    $('video-prompt').title = `Prompt template: ${o.prompt_hint}`;
  }).catch(() => {});

  const show = (p) => {
    Object.assign(state.video, p);
    $('video-progress').value = p.percent;
    $('video-percent').textContent = `${p.percent.toFixed(0)} %`;
    const eta = p.eta_s == null ? '–' : `${p.eta_s.toFixed(0)} s`;
    $('video-stats').textContent = `${p.state}: frames ${p.frames_done}/${p.frames_total}, blocks ${p.blocks_done}/` +
      `${p.blocks_total}, ${p.gen_fps.toFixed(2)} fps, ETA ${eta}, elapsed ${p.elapsed_s} s` +
      (p.width ? ` · ${p.width}×${p.height} ${p.model}` : '') + (p.warnings.length ? `\nwarnings: ${p.warnings.join('; ')}` : '');
  };

  $('video-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const box = $('video-error');
    box.hidden = true;
    $('video-out').hidden = true;
    $('video-dl').hidden = true;
    $('video-preview').hidden = true;
    const fd = new FormData($('video-form'));
    for (const k of [...fd.keys()]) if (fd.get(k) === '') fd.delete(k);
    let id;
    try {
      for (const f of [$('video-image').files[0], $('video-audio').files[0]]) if (f) checkSize(f);
      id = (await api('/api/video', { method: 'POST', body: fd })).id;
    } catch (err) {
      box.textContent = err.message;
      box.hidden = false;
      state.video = { state: 'error', percent: 0, error: err.message };
      return;
    }
    $('video-go').disabled = true;
    let shown = -1;
    for (;;) {
      let p;
      try {
        p = await api(`/api/video/${id}`);
      } catch (err) {
        p = { state: 'error', error: err.message, percent: 0, frames_done: 0, frames_total: 0, blocks_done: 0,
              blocks_total: 0, gen_fps: 0, eta_s: null, elapsed_s: 0, warnings: [] };
      }
      show(p);
      if (p.frames_done > 0 && p.frames_done !== shown) {
        shown = p.frames_done;
        $('video-preview').src = `/api/video/${id}/frame.jpg?n=${shown}`;
        $('video-preview').hidden = false;
      }
      if (p.state === 'done') {
        const v = $('video-out');
        v.src = `/api/video/${id}/video.mp4`;
        v.hidden = false;
        $('video-dl').href = v.src;
        $('video-dl').hidden = false;
        break;
      }
      if (p.state === 'error') {
        box.textContent = p.error;
        box.hidden = false;
        break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    $('video-go').disabled = false;
  });
}
