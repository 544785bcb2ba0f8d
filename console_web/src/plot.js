// The curve plot: chosen blendshape curves over the whole clip (2D canvas) with a playhead at the audio's time.
const COLORS = ['#2f6fde', '#d1495b', '#00a878', '#edae49', '#8e44ad', '#30638e', '#e07a5f', '#3d405b'];

export class CurvePlot {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.times = [];
    this.series = []; // [{name, values}]
    this.duration = 0;
    this.points = 0;
    this.draw(0);
  }

  set(times, series) {
    this.times = times;
    this.series = series;
    this.duration = times.length ? times[times.length - 1] : 0;
    this.points = series.reduce((n, s) => n + s.values.length, 0);
    this.canvas.dataset.points = String(this.points);
    this._bg = null;
    this.draw(0);
  }

  // The curves are drawn once into an offscreen canvas; each call only adds the playhead.
  draw(t) {
    const { ctx, canvas } = this;
    const W = canvas.width, H = canvas.height, pad = 24;
    if (!this._bg) {
      const bg = document.createElement('canvas');
      bg.width = W; bg.height = H;
      const g = bg.getContext('2d');
      g.fillStyle = '#fff'; g.fillRect(0, 0, W, H);
      g.strokeStyle = '#e3e6ec'; g.lineWidth = 1;
      for (let k = 0; k <= 4; k++) {
        const y = pad / 2 + ((H - pad) * k) / 4;
        g.beginPath(); g.moveTo(pad, y); g.lineTo(W - 4, y); g.stroke();
      }
      g.fillStyle = '#687083'; g.font = '10px sans-serif';
      g.fillText('1', 4, pad / 2 + 4); g.fillText('0', 4, H - pad / 2 + 4);
      if (this.duration > 0) {
        g.fillText(`${this.duration.toFixed(2)} s`, W - 44, H - 2);
        this.series.forEach((s, si) => {
          g.strokeStyle = COLORS[si % COLORS.length]; g.lineWidth = 1.5;
          g.beginPath();
          s.values.forEach((v, i) => {
            const x = pad + ((W - pad - 4) * this.times[i]) / this.duration;
            const y = pad / 2 + (H - pad) * (1 - Math.max(0, Math.min(1, v)));
            if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
          });
          g.stroke();
          g.fillStyle = COLORS[si % COLORS.length];
          g.fillText(s.name, pad + 6 + si * 92, 10);
        });
      } else {
        g.fillText('no curves yet: animate a clip', pad + 8, H / 2);
      }
      this._bg = bg;
    }
    ctx.drawImage(this._bg, 0, 0);
    if (this.duration > 0) {
      const x = pad + ((W - pad - 4) * Math.min(t, this.duration)) / this.duration;
      ctx.strokeStyle = '#111'; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x, 2); ctx.lineTo(x, H - pad / 2); ctx.stroke();
    }
  }
}
