"""learned-v1: a small trained network (log-mel -> causal convs -> GRU) for audio -> ARKit-52.

Per 10 ms of audio the network gives the posteriors of the 15 OVR visemes and
a jaw opening; the mouth is the posterior-weighted mix of the viseme poses
(visemes.py) with the predicted jaw, smoothed lightly. Secondary motion
(blinks, saccades, bounded head drift, brow raises and nods on emphasis)
follows the dsp-v1 rules (secondary.py), driven by the network's speech
activity and the loudness relative to the speaker's recent peak.

Streaming: per-stream state is the audio tail of one analysis window, the
convolution caches and the GRU state; the output does not depend on how the
audio is chunked. Frame k (time k / fps) is emitted once the audio reaches
the feature step that describes it plus ``delay`` steps (the look-ahead,
docs/learned_engine.md). Weights ship in the package
(engine/expression/weights/learned-v1, fp16 npz, < 1 MB), read with numpy.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.expression.base import SAMPLE_RATE, ExpressionEngine, ExpressionStream, Frames, Style
from engine.expression.dsp import EMOTIONS
from engine.expression.input_checks import InputMonitor
from engine.expression.learned_model import HOP, WIN, LogMel, NumpyExpressionNet, lookahead_s
from engine.expression.secondary import DEG, Blinks, HeadDrift, Saccades, quat, rng_for
from engine.expression.visemes import NUM_VISEMES, VISEME_INDEX, VISEMES, pose_matrix
from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES, NUM_BONES

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "learned-v1"
_I = ARKIT_INDEX
_SIL = VISEME_INDEX["sil"]
_SILENCE_MS = 1e-9  # a window with mean square below this (-90 dBFS) is digital silence: exact rest
_STEP_S = HOP / SAMPLE_RATE

# Smoothing of the 10 ms face controls (attack, release time constants in s).
_TAU_MOUTH = 0.015
_TAU_ACT = (0.03, 0.35)
_TAU_EMPH = (0.06, 0.25)

# Emphasis and head motion at head_motion = 1 (as dsp-v1).
_EMPH_BROWS = {"browInnerUp": 0.15, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25}
_DRIFT = (1.5 * DEG, 2.5 * DEG, 1.2 * DEG)
_NOD = 3.5 * DEG
_NECK_SHARE = 0.3
_VOR = 0.6
_EYE_YAW_FULL, _EYE_PITCH_FULL = 30.0 * DEG, 25.0 * DEG
_PEAK_DECAY_DB_S = 3.0  # the speaker's recent peak level falls this fast

_YIELD_TO_OPEN = ("mouthPressLeft", "mouthPressRight", "mouthClose")
_YIELD_TO_ROUND = ("mouthSmileLeft", "mouthSmileRight", "mouthDimpleLeft", "mouthDimpleRight")
_YIELD_TO_BLINK = ("eyeWideLeft", "eyeWideRight")
_IDENT = np.array([0.0, 0.0, 0.0, 1.0], np.float32)


class LearnedExpressionEngine(ExpressionEngine):
    name = "learned-v1"
    viseme_names = VISEMES

    def __init__(self, weights_dir: str | Path | None = None):
        # numpy only: a worker never imports torch for this engine.
        d = Path(weights_dir or WEIGHTS_DIR)
        self.fast = NumpyExpressionNet.from_pretrained(d)
        self.cfg = self.fast.cfg
        # Clips the video jaw head was fitted on (sha256): eval-expression does not count them for this engine.
        head = json.loads((d / "config.json").read_text()).get("video_head") or {}
        self.trained_on = frozenset(c["sha256"] for c in head.get("clips", ()))
        self.mel = LogMel(self.cfg)
        self.poses = pose_matrix()
        self.lookahead_s = lookahead_s(self.cfg)
        self.description = (
            "Trained network (log-mel -> causal convs -> GRU, %d k parameters, fp16 weights in the "
            "package) that recognises the 15 OVR visemes and the jaw opening every 10 ms with %d ms of "
            "look-ahead; the mouth is the viseme-posterior mix of a viseme -> ARKit pose table. Trained "
            "on espeak-ng speech in 15 languages with exact phone timings and noise/reverb/telephone "
            "augmentation%s (avatar-bridge train-expression). Secondary motion (blinks, saccades, "
            "emphasis brows and nods, bounded head drift) as dsp-v1."
            % (self.fast.n_params // 1000, round(self.lookahead_s * 1000),
               "; jaw fitted on %d real talking-head clips" % len(self.trained_on) if self.fast.video_head else ""))

    def open(self, fps: int, style: Style) -> "LearnedExpressionStream":
        return LearnedExpressionStream(self, fps, style)

    def push_many(self, streams: list["LearnedExpressionStream"], audio: list[np.ndarray]) -> list[Frames]:
        """One batched network step for every stream's new feature steps (NumpyExpressionNet.step_batch)."""
        jobs = [s.prepare(a) for s, a in zip(streams, audio)]
        due = [i for i, j in enumerate(jobs) if j[1] is not None]
        outs = dict(zip(due, self.fast.step_batch([jobs[i][1] for i in due], [streams[i]._state for i in due])
                        if due else []))
        return [s.complete(j, outs.get(i)) for i, (s, j) in enumerate(zip(streams, jobs))]


class LearnedExpressionStream(ExpressionStream):
    def __init__(self, engine: LearnedExpressionEngine, fps: int, style: Style):
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if style.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {style.emotion!r}; expected one of {sorted(EMOTIONS)}")
        self.e = engine
        self.fps = int(fps)
        self.delay = engine.cfg.delay
        self._look = int(round(engine.lookahead_s * SAMPLE_RATE))
        # Audio buffer; frame j's window is samples [160 j - 200, 160 j + 200): start with 200 zeros.
        self._buf = np.zeros(WIN // 2, np.float32)
        self._buf0 = -(WIN // 2)  # absolute sample index of _buf[0]
        self._total = 0
        self._nfeat = 0  # feature steps computed so far
        self._state = None
        self._finished = False
        self._next = 0  # next output frame index
        # 10 ms face controls: columns 0..14 visemes, 15 jaw, 16 activity, 17 emphasis.
        self._faces = np.zeros((0, NUM_VISEMES + 3), np.float32)
        self._face0 = 0  # step index of _faces[0] and _levels[0]
        self._levels = np.zeros(0)
        self._y = np.zeros(NUM_VISEMES + 3, np.float64)
        self._y[_SIL] = 1.0
        self._peak_db = -60.0
        self._input = InputMonitor()
        self._speaking = False

        self.intensity = float(np.clip(style.intensity, 0.0, 2.0))
        self.hm = float(np.clip(style.head_motion, 0.0, 2.0))
        strength = float(np.clip(style.emotion_strength, 0.0, 1.0))
        self.base = np.zeros(NUM_BLENDSHAPES, np.float32)
        for name, w in EMOTIONS[style.emotion].items():
            self.base[_I[name]] = w * strength
        self._blinks = Blinks(rng_for(style.seed, 0))
        self._saccades = Saccades(rng_for(style.seed, 1))
        self._drift = HeadDrift(rng_for(style.seed, 2))

    # ------------------------------------------------------------------ API
    def push(self, audio: np.ndarray) -> Frames:
        job = self.prepare(audio)
        return self.complete(job, self.e.fast.step(job[1], self._state) if job[1] is not None else None)

    def prepare(self, audio: np.ndarray) -> tuple:
        """First half of push(): buffer the audio and compute the feature steps it completes.
        -> a job for complete(); job[1] is the (T, n_mels) network input (None when no step is due)."""
        if self._finished:
            raise RuntimeError("push() after finish()")
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        warnings: list[str] = []
        if x.size:
            if not np.isfinite(x).all():
                x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
            self._buf = np.concatenate((self._buf, x))
            self._total += x.size
            warnings = self._input.check(x)
        # Feature step j needs samples < 160 j + 200.
        n_ready = (self._total - WIN // 2) // HOP + 1 if self._total >= WIN // 2 else 0
        feats, ms = self._features(n_ready)
        return warnings, feats, ms, n_ready

    def complete(self, job: tuple, net_out: tuple | None) -> Frames:
        """Second half of push(): the network's (logits, jaw, new state) for job's features -> frames."""
        warnings, feats, ms, n_ready = job
        if feats is not None:
            self._consume(*net_out, ms, n_ready)
        out = self._emit(self._frames_ready(), final=False)
        out.warnings = warnings
        return out

    def finish(self) -> Frames:
        if self._finished:
            return Frames.empty(self._next)
        self._finished = True
        n_total = -(-self._total * self.fps // SAMPLE_RATE)
        if n_total <= self._next:
            return Frames.empty(self._next)
        # Every remaining frame, as if silence followed the audio.
        last_face = math.ceil((n_total - 1) * 100 / self.fps)
        need_steps = last_face + self.delay + 1
        need_samples = (need_steps - 1) * HOP + WIN // 2
        pad = need_samples - self._total
        if pad > 0:
            self._buf = np.concatenate((self._buf, np.zeros(pad, np.float32)))
        self._advance(need_steps)
        return self._emit(n_total, final=True)

    # ------------------------------------------------------------ internals
    def _advance(self, n_ready: int) -> None:
        """Compute feature steps _nfeat..n_ready-1, run the network, append 10 ms faces."""
        feats, ms = self._features(n_ready)
        if feats is not None:
            self._consume(*self.e.fast.step(feats, self._state), ms, n_ready)

    def _features(self, n_ready: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(log-mel of steps _nfeat..n_ready-1, their windows' mean square); (None, None) if none is due."""
        n = n_ready - self._nfeat
        if n <= 0:
            return None, None
        off = self._nfeat * HOP - (WIN // 2) - self._buf0  # buffer offset of step _nfeat's window start
        seg = self._buf[off: off + (n - 1) * HOP + WIN]
        if self._state is None:
            self._state = self.e.fast.initial_state()
        return self.e.mel.frames(seg, n, mean_square=True)

    def _consume(self, logits: np.ndarray, jaw: np.ndarray, state: list, ms: np.ndarray, n_ready: int) -> None:
        """The network's outputs for the steps _features gave -> smoothed 10 ms faces."""
        n = n_ready - self._nfeat
        self._state = state
        logits = logits - logits.max(axis=1, keepdims=True)
        post = np.exp(logits)
        post /= post.sum(axis=1, keepdims=True)
        level_db = 10.0 * np.log10(ms + 1e-12)
        faces = np.empty((n, NUM_VISEMES + 3), np.float32)
        y = self._y
        a_m = 1.0 - math.exp(-_STEP_S / _TAU_MOUTH)
        a_act, r_act = (1.0 - math.exp(-_STEP_S / t) for t in _TAU_ACT)
        a_em, r_em = (1.0 - math.exp(-_STEP_S / t) for t in _TAU_EMPH)
        peak = self._peak_db
        for i in range(n):
            # Step j describes face j - delay; the silence gate uses that face's own window.
            p, jw = post[i], jaw[i]
            act = 1.0 - p[_SIL]
            peak = max(level_db[i], peak - _PEAK_DECAY_DB_S * _STEP_S)
            emph = act * min(1.0, max(0.0, (level_db[i] - peak + 7.0) / 6.0))
            y[:NUM_VISEMES] += a_m * (p - y[:NUM_VISEMES])
            y[NUM_VISEMES] += a_m * (jw - y[NUM_VISEMES])
            y[NUM_VISEMES + 1] += (a_act if act > y[NUM_VISEMES + 1] else r_act) * (act - y[NUM_VISEMES + 1])
            y[NUM_VISEMES + 2] += (a_em if emph > y[NUM_VISEMES + 2] else r_em) * (emph - y[NUM_VISEMES + 2])
            faces[i] = y
        self._peak_db = peak
        # Window levels by step: step i's window is centred on face i's time (digital-silence gate).
        self._levels = np.concatenate((self._levels, ms))
        self._faces = np.concatenate((self._faces, faces))
        self._nfeat = n_ready
        keep = self._nfeat * HOP - (WIN // 2) - self._buf0  # next window start
        if keep > 0:
            self._buf = self._buf[keep:]
            self._buf0 += keep

    def _frames_ready(self) -> int:
        """Frames k whose interpolation faces ceil(100 k / fps) exist (network step + delay)."""
        n_faces = self._nfeat - self.delay  # faces 0..n_faces-1 are known
        if n_faces <= 0:
            return 0
        # largest k with ceil(100 k / fps) <= n_faces - 1  <=>  100 k <= (n_faces - 1) * fps
        ready = (n_faces - 1) * self.fps // 100 + 1
        # ...held to exactly k / fps + lookahead (a constant latency, as the contract promises):
        # ceil(k SR / fps) + L <= total  <=>  k <= (total - L) fps / SR.
        look = self._look
        contract = (self._total - look) * self.fps // SAMPLE_RATE + 1 if self._total >= look else 0
        return min(ready, contract)

    def _emit(self, stop: int, final: bool) -> Frames:
        k0 = self._next
        if stop <= k0:
            return Frames.empty(k0)
        n = stop - k0
        t = np.arange(k0, stop) / self.fps
        u = t * 100.0
        i0 = np.floor(u).astype(np.int64)
        frac = (u - i0)[:, None]
        # face i lives at step i + delay of _faces (indexed from face0 = step index)
        s0 = i0 + self.delay - self._face0
        s1 = np.minimum(s0 + 1, self._faces.shape[0] - 1)
        f = (1.0 - frac) * self._faces[s0] + frac * self._faces[s1]
        lv = self._levels
        silent = (lv[np.minimum(i0 - self._face0, lv.size - 1)] < _SILENCE_MS) & (
            lv[np.minimum(i0 + 1 - self._face0, lv.size - 1)] < _SILENCE_MS)
        vis = f[:, :NUM_VISEMES].copy()
        jaw, act, emph = f[:, NUM_VISEMES], f[:, NUM_VISEMES + 1], f[:, NUM_VISEMES + 2]
        # Dead zone: a faint speech posterior (noise, breath) does not move the mouth.
        gate = np.clip((1.0 - vis[:, _SIL] - 0.15) / 0.25, 0.0, 1.0)
        gate[silent] = 0.0
        vis[silent] = 0.0
        vis[silent, _SIL] = 1.0
        mouth = (vis @ self.e.poses) * (gate * self.intensity)[:, None]
        mouth[:, _I["jawOpen"]] = np.clip(jaw - 0.02, 0.0, None) * gate * self.intensity
        emph = emph * gate
        w = mouth + self.base[None, :]
        jo = np.minimum(2.0 * mouth[:, _I["jawOpen"]], 1.0)
        rnd = np.minimum(1.0, mouth[:, _I["mouthPucker"]] + mouth[:, _I["mouthFunnel"]])
        for name in _YIELD_TO_OPEN:
            w[:, _I[name]] -= jo * self.base[_I[name]]
        for name in _YIELD_TO_ROUND:
            w[:, _I[name]] -= 0.7 * rnd * self.base[_I[name]]
        for name, v in _EMPH_BROWS.items():
            w[:, _I[name]] += v * self.intensity * emph

        rot = np.empty((n, NUM_BONES, 4), np.float32)
        hm = self.hm
        for i in range(n):
            ti = float(t[i])
            a = float(act[i]) * (0.0 if silent[i] else 1.0)
            pause = self._speaking and a < 0.3
            if pause:
                self._speaking = False
            elif a > 0.6:
                self._speaking = True
            b = self._blinks.step(ti, pause)
            for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                w[i, _I[name]] += b
            for name in _YIELD_TO_BLINK:
                w[i, _I[name]] -= b * self.base[_I[name]]
            if hm <= 0.0:
                rot[i] = _IDENT
                continue
            dp, dy, dr = self._drift.step(ti)
            live = 0.5 + 0.5 * a
            hp = live * hm * _DRIFT[0] * dp + hm * _NOD * float(emph[i])
            hy = live * hm * _DRIFT[1] * dy
            hr = live * hm * _DRIFT[2] * dr
            gy, gp = self._saccades.step(ti)
            ey, ep = hm * gy - _VOR * hy, hm * gp - _VOR * hp
            h, nk = 1.0 - _NECK_SHARE, _NECK_SHARE
            eye = quat(ep, ey, 0.0)
            rot[i, 0], rot[i, 1], rot[i, 2], rot[i, 3] = (quat(h * hp, h * hy, h * hr),
                                                          quat(nk * hp, nk * hy, nk * hr), eye, eye)
            yn, pn = ey / _EYE_YAW_FULL, ep / _EYE_PITCH_FULL
            if yn > 0:
                w[i, _I["eyeLookOutLeft"]] += yn
                w[i, _I["eyeLookInRight"]] += yn
            else:
                w[i, _I["eyeLookInLeft"]] -= yn
                w[i, _I["eyeLookOutRight"]] -= yn
            if pn < 0:
                w[i, _I["eyeLookUpLeft"]] -= pn
                w[i, _I["eyeLookUpRight"]] -= pn
            else:
                w[i, _I["eyeLookDownLeft"]] += pn
                w[i, _I["eyeLookDownRight"]] += pn
        np.clip(w, 0.0, 1.0, out=w)
        self._next = stop
        # Drop faces no later frame needs (frame `stop` interpolates from face floor(100 stop / fps)).
        drop = int(math.floor(stop * 100 / self.fps)) - self._face0
        if drop > 0 and not final:
            self._faces = self._faces[drop:]
            self._levels = self._levels[drop:]
            self._face0 += drop
        vis = vis * gate[:, None]
        vis[:, _SIL] = 1.0 - vis[:, 1:].sum(1)
        return Frames(k0, w.astype(np.float32), rot, visemes=vis.astype(np.float32))

