"""Stage 2 of train-expression: a jaw head fitted on real talking-head video.

Stage 1 (train.py) learns visemes and a jaw opening from synthetic espeak-ng
speech, whose jaw target is a per-viseme table. Real mouths move differently
(they stay parted through short pauses, open ahead of the sound, close slowly),
so this stage fits a linear map from the frozen network's features ([GRU, conv],
256 values per 10 ms, exactly what the streaming engine computes) to the
speaker's own mouth, measured on every video frame by the Capture module:
the mean of the z-scored inner-lip aperture and MediaPipe jawOpen.

* Targets are re-synced per clip by the clip's engine-free A/V offset
  (evaluate.av_offset: RMS envelope vs lip aperture, within +-1 s), because the
  available clips are demo inputs of lip-sync projects whose sound and picture
  are not always aligned (docs/quality.md).
* Ridge regression in closed form (seconds, numpy only, no torch).
* The fitted output is mapped onto the synthetic jaw's range (mean and spread
  on the same audio), so the face keeps its calibrated amplitude.
* Leave-one-clip-out cross-validation: for every clip, a head fitted on the
  other clips drives the full streaming engine over that clip, scored exactly as
  eval-expression scores engines. Those are the numbers reported for these clips;
  the shipped head is fitted on all of them and lists them (sha256) in its
  config, so eval-expression does not count them for it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.expression.base import SAMPLE_RATE
from engine.expression.learned_runtime import VIDEO_HEAD_B, VIDEO_HEAD_W, LogMel, NumpyExpressionNet, load_pretrained, save_pretrained

DEFAULT_LAMBDA = 1e4  # chosen by the cross-validation below (1e3 / 1e4 compared), see docs/learned_engine.md


@dataclass
class Clip:
    name: str
    sha256: str
    feats: np.ndarray  # (n, D) network features; row t describes the face at t * 10 ms
    synth_jaw: np.ndarray  # (n,) the stage-1 jaw output on the same rows
    target: np.ndarray  # (n,) z-scored mouth opening at t * 10 ms + offset
    mask: np.ndarray  # (n,) rows with a measured face
    offset: float
    truth: object  # evaluate.FaceTruth
    audio: np.ndarray


def clip_features(net: NumpyExpressionNet, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features, synthetic jaw) per 10 ms face: the streaming network over the whole clip, with its
    look-ahead delay removed (row t describes time t * 10 ms)."""
    from engine.expression.learned_runtime import _sigmoid

    feats = LogMel(net.cfg).whole(audio)
    z, _ = net.features(feats, net.initial_state())
    jaw = _sigmoid((z @ net.w_out + net.b_out)[:, -1])
    d = net.cfg.delay
    return z[d:], jaw[d:]


def _zscore_at(times: np.ndarray, values: np.ndarray, ok: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.interp(t, times[ok], values[ok])
    m = (t >= times[ok][0]) & (t <= times[ok][-1])
    sd = y[m].std()
    return (y - y[m].mean()) / (sd if sd > 0 else 1.0), m


def load_clips(video_dir: Path, face_model: Path, cache_dir: Path | None, net: NumpyExpressionNet, log=print) -> list[Clip]:
    from engine.expression.evaluate import VIDEO_EXT, av_offset, capture_clip, file_sha256

    clips = []
    for path in sorted(p for p in Path(video_dir).iterdir() if p.suffix.lower() in VIDEO_EXT):
        try:
            truth, audio = capture_clip(path, face_model, cache_dir)
        except ValueError as exc:  # VideoError / AudioError: one broken file does not stop the others
            log(f"  {path.name}: skipped, {exc}")
            continue
        if audio.size < SAMPLE_RATE:
            log(f"  {path.name}: skipped, less than 1 s of audio (a talking-head clip needs its speech track)")
            continue
        if truth.found.sum() < 20:
            log(f"  {path.name}: skipped, a face in only {int(truth.found.sum())} frames")
            continue
        offset = av_offset(truth, audio)
        z, sj = clip_features(net, audio)
        t = np.arange(z.shape[0]) / 100.0 + offset
        ap, m = _zscore_at(truth.times, truth.aperture, truth.found, t)
        jw, _ = _zscore_at(truth.times, truth.jaw, truth.found, t)
        clips.append(Clip(path.name, file_sha256(path), z, sj, 0.5 * (ap + jw), m, offset, truth, audio))
        log(f"  {path.name}: {truth.found.mean():.0%} face, A/V offset {offset * 1000:+.0f} ms, {m.sum() / 100:.1f} s used")
    return clips


def fit(clips: list[Clip], lam: float = DEFAULT_LAMBDA) -> tuple[np.ndarray, float]:
    """Ridge on standardised features, then scaled onto the synthetic jaw's mean/spread over the same
    frames; folded into one (w, b) on raw features: jaw = clip(z @ w + b, 0, 1)."""
    X = np.concatenate([c.feats[c.mask] for c in clips]).astype(np.float64)
    y = np.concatenate([c.target[c.mask] for c in clips])
    sj = np.concatenate([c.synth_jaw[c.mask] for c in clips]).astype(np.float64)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xn = (X - mu) / sd
    beta = np.linalg.solve(Xn.T @ Xn + lam * np.eye(X.shape[1]), Xn.T @ (y - y.mean()))
    p = Xn @ beta
    scale = sj.std() / max(p.std(), 1e-9)
    w = beta / sd * scale
    b = sj.mean() - scale * ((mu / sd) @ beta + p.mean())
    return w.astype(np.float32), float(b)


def _engine_with_head(base_dir: Path, head: tuple[np.ndarray, float] | None):
    from engine.expression.learned import LearnedExpressionEngine

    eng = LearnedExpressionEngine(base_dir)
    eng.net.video_head = head
    return eng


def cross_validate(clips: list[Clip], base_dir: Path, lam: float, log=print) -> list[dict]:
    """Leave one clip out: the held-out clip is animated by the full streaming engine with a head fitted
    on the others, next to the stage-1 engine (no head), both scored as eval-expression does."""
    from engine.expression.evaluate import PRED_FPS, engine_jaw, score_clip

    rows = []
    for c in clips:
        head = fit([o for o in clips if o is not c], lam)
        n = -(-c.audio.size * PRED_FPS // SAMPLE_RATE)
        for label, h in (("stage 1 (synthetic jaw)", None), ("with video head (clip held out)", head)):
            pred = engine_jaw(_engine_with_head(base_dir, h), c.audio, PRED_FPS, n)
            rows.append({"clip": c.name, "model": label, **score_clip(pred, c.truth, c.offset)})
        log(f"  held out {c.name}: r vs aperture {rows[-2]['r_aperture']:.2f} -> {rows[-1]['r_aperture']:.2f}, "
            f"after A/V offset {rows[-2]['r_aperture_synced']:.2f} -> {rows[-1]['r_aperture_synced']:.2f}")
    return rows


def summary(rows: list[dict]) -> dict:
    out = {}
    for label in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == label]
        out[label] = {k: round(float(np.mean([r[k] for r in rs])), 3)
                      for k in ("r_aperture", "r_jaw", "r_aperture_synced", "r_jaw_synced")}
    return out


def train_video_head(weights_dir: str | Path, video_dir: str | Path, face_model: str | Path,
                     cache_dir: str | Path | None = None, lam: float = DEFAULT_LAMBDA, log=print) -> dict:
    """Fit the head on every clip in video_dir and write it into weights_dir (model.npz + config.json)."""
    if not lam > 0:
        raise ValueError(f"--video-lambda must be a positive ridge strength (got {lam}); the default is {DEFAULT_LAMBDA:g}")
    t0 = time.monotonic()
    log = log or (lambda *_: None)
    d = Path(weights_dir)
    cfg, arrays = load_pretrained(d)
    arrays = {k: v for k, v in arrays.items() if not k.startswith("video_head.")}
    net = NumpyExpressionNet(cfg, arrays)  # stage 1 only, whatever head the directory had
    log(f"measuring the talking-head clips in {video_dir} (MediaPipe, cached) ...")
    clips = load_clips(Path(video_dir), Path(face_model), Path(cache_dir) if cache_dir else None, net, log)
    if len(clips) < 2:
        raise ValueError(f"need at least 2 talking-head clips with a visible face in {video_dir}, found {len(clips)}")
    base = d / ".stage1"
    save_pretrained(base, cfg, arrays)
    log(f"leave-one-clip-out cross-validation over {len(clips)} clips (lambda {lam:g}) ...")
    cv = cross_validate(clips, base, lam, log)
    w, b = fit(clips, lam)
    arrays[VIDEO_HEAD_W] = w
    arrays[VIDEO_HEAD_B] = np.array([b], np.float32)
    extra = json.loads((d / "config.json").read_text())
    extra["video_head"] = {
        "target": "mean of z-scored inner-lip aperture and MediaPipe jawOpen, re-synced by each clip's A/V offset",
        "lambda": lam, "features": int(w.size),
        "clips": [{"name": c.name, "sha256": c.sha256, "av_offset_ms": round(c.offset * 1000),
                   "seconds": round(float(c.mask.sum()) / 100, 1)} for c in clips],
        "cross_validation": {"protocol": "leave one clip out; eval-expression scoring", "mean": summary(cv),
                             "per_clip": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                                          for r in cv]},
    }
    save_pretrained(d, cfg, arrays, {k: v for k, v in extra.items() if k not in cfg.__dataclass_fields__})
    for f in base.iterdir():
        f.unlink()
    base.rmdir()
    log(f"video head written to {d} ({time.monotonic() - t0:.0f} s); leave-one-clip-out means: {summary(cv)}")
    return extra["video_head"]
