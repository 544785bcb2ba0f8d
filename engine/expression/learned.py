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
from engine.expression.input_checks import InputMonitor
from engine.expression.learned_runtime import HOP, WIN, LogMel, NumpyExpressionNet, lookahead_s, windows
from engine.expression.secondary import DEG, Blinks, HeadDrift, Saccades, rng_for
from engine.expression.visemes import NUM_VISEMES, VISEME_INDEX, VISEMES, pose_matrix
from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES
from engine.rig.emotions import EMOTIONS
from engine.rig.head import NECK_SHARE, VOR
from engine.rig.rotation import quat_from_rotvec

WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"
WEIGHTS_DIR = WEIGHTS_ROOT / "learned-v1"
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
_EYE_YAW_FULL, _EYE_PITCH_FULL = 30.0 * DEG, 25.0 * DEG
_PEAK_DECAY_DB_S = 3.0  # the speaker's recent peak level falls this fast

_A_MOUTH = 1.0 - math.exp(-_STEP_S / _TAU_MOUTH)  # per-step smoothing gains (attack A, release R)
# The mouth low-pass over m steps as a matrix: y_t = sum_j a c^(t-j) x_j + c^(t+1) y_-1 (c = 1 - a).
_LP_BLOCK = 256
_LP_DECAY = (1.0 - _A_MOUTH) ** np.arange(1, _LP_BLOCK + 1)
_LP_MIX = np.tril(_A_MOUTH * (1.0 - _A_MOUTH) ** np.maximum(np.subtract.outer(np.arange(_LP_BLOCK), np.arange(_LP_BLOCK)), 0))
_A_ACT, _R_ACT = (1.0 - math.exp(-_STEP_S / t) for t in _TAU_ACT)
_A_EMPH, _R_EMPH = (1.0 - math.exp(-_STEP_S / t) for t in _TAU_EMPH)


def _idx(*names: str) -> list[int]:
    return [_I[n] for n in names]


# ARKit columns (lists, for fancy indexing of the (frames, 52) weight array).
_JAW = _I["jawOpen"]
_YIELD_TO_OPEN = _idx("mouthPressLeft", "mouthPressRight", "mouthClose")
_YIELD_TO_ROUND = _idx("mouthSmileLeft", "mouthSmileRight", "mouthDimpleLeft", "mouthDimpleRight")
_YIELD_TO_BLINK = _idx("eyeWideLeft", "eyeWideRight")
_BLINK = _idx("eyeBlinkLeft", "eyeBlinkRight")
_LOOK_LEFT_OF_SUBJECT = _idx("eyeLookOutLeft", "eyeLookInRight")  # gaze yaw > 0
_LOOK_RIGHT_OF_SUBJECT = _idx("eyeLookInLeft", "eyeLookOutRight")
_LOOK_UP = _idx("eyeLookUpLeft", "eyeLookUpRight")  # gaze pitch < 0
_LOOK_DOWN = _idx("eyeLookDownLeft", "eyeLookDownRight")
_ZERO2, _ZERO3 = (0.0, 0.0), (0.0, 0.0, 0.0)


def _to_weights(*rows: list[tuple[list[int], float]]) -> np.ndarray:
    """(len(rows), 52): row i puts its value on the listed ARKit columns."""
    m = np.zeros((len(rows), NUM_BLENDSHAPES))
    for i, row in enumerate(rows):
        for cols, v in row:
            m[i, cols] = v
    return m


# (gaze left, right, up, down) -> eyeLook*; (blink, emphasis) -> eyeBlink*, brows; how far the base (emotion)
# pose yields where the jaw opens, the lips round and the eyes blink.
_GAZE_TO_W = _to_weights([(_LOOK_LEFT_OF_SUBJECT, 1.0)], [(_LOOK_RIGHT_OF_SUBJECT, 1.0)], [(_LOOK_UP, 1.0)],
                         [(_LOOK_DOWN, 1.0)])
_BLINK_BROWS_TO_W = _to_weights([(_BLINK, 1.0)], [([_I[n]], v) for n, v in _EMPH_BROWS.items()])
_YIELDS = _to_weights([(_YIELD_TO_OPEN, 1.0)], [(_YIELD_TO_ROUND, 0.7)], [(_YIELD_TO_BLINK, 1.0)])
_BONE_SHARE = np.array([1.0 - NECK_SHARE, NECK_SHARE, 1.0])[None, :, None]  # head, neck, eyes


class LearnedExpressionEngine(ExpressionEngine):
    """One class for every trained version of the network; a version is a name and a folder of weights."""

    name = "learned-v1"
    weights = WEIGHTS_DIR
    viseme_names = VISEMES
    batches = True  # ~1 ms per push alone, ~0.15 ms per stream in a push of 50 (bench/engine_cost.py)

    def __init__(self, weights_dir: str | Path | None = None):
        # numpy only: a worker never imports torch for this engine. weights_dir: the server's learned_weights
        # setting (a model retrained, e.g. for another look-ahead), given to the default engine by the registry.
        d = Path(weights_dir or self.weights)
        self.net = NumpyExpressionNet.from_pretrained(d)
        self.cfg = self.net.cfg
        config = json.loads((d / "config.json").read_text())
        # Clips the video jaw head was fitted on (sha256): eval-expression does not count them for this engine.
        head = config.get("video_head") or {}
        self.trained_on = frozenset(c["sha256"] for c in head.get("clips", ()))
        self.mel = LogMel(self.cfg)
        self.poses = pose_matrix()
        self.lookahead_s = lookahead_s(self.cfg)
        self.description = (
            "Trained network (log-mel -> causal convs -> GRU, %d k parameters, fp16 weights in the "
            "package) that recognises the 15 OVR visemes and the jaw opening every 10 ms with %d ms of "
            "look-ahead; the mouth is the viseme-posterior mix of a viseme -> ARKit pose table. Trained "
            "on %s, with noise/reverb/telephone augmentation%s (avatar-bridge train-expression). Secondary "
            "motion (blinks, saccades, emphasis brows and nods, bounded head drift) as dsp-v1."
            % (self.net.n_params // 1000, round(self.lookahead_s * 1000), _training_data(config),
               "; jaw fitted on %d real talking-head clips" % len(self.trained_on) if self.net.video_head else ""))

    def open(self, fps: int, style: Style) -> "LearnedExpressionStream":
        return LearnedExpressionStream(self, fps, style)

    def push_many(self, streams: list["LearnedExpressionStream"], audio: list[np.ndarray]) -> list[Frames]:
        """Every stream's new audio through one batched pass: one FFT for all the new analysis windows,
        one network step (NumpyExpressionNet.step_packed), and the faces of every stream assembled as
        whole arrays (_advance, _emit). A stream gets the same frames as it would alone."""
        jobs = [s._take(a) for s, a in zip(streams, audio)]
        self._advance(streams, [j[1] for j in jobs], [j[2] for j in jobs])
        out = self._emit(streams, [s._frames_ready() for s in streams], final=False)
        for f, j in zip(out, jobs):
            f.warnings = j[0]
        return out

    def finish_many(self, streams: list["LearnedExpressionStream"]) -> list[Frames]:
        """Every stream's remaining frames through one batched pass, as push_many does for audio: when many
        live streams end together (a scene ends), one ~1.5 ms pass each would stall every other stream of
        the worker behind them."""
        plans = [s._finish_plan() for s in streams]
        due = [i for i, p in enumerate(plans) if p is not None]
        out = [Frames.empty(s._next) for s in streams]
        if due:
            live = [streams[i] for i in due]
            self._advance(live, [live[j]._windows(plans[i][0]) for j, i in enumerate(due)],
                          [plans[i][0] for i in due])
            for i, f in zip(due, self._emit(live, [plans[i][1] for i in due], final=True)):
                out[i] = f
        return out

    # ------------------------------------------------------------ batched internals
    def _advance(self, streams: list, wins: list, n_ready: list[int]) -> None:
        """Feature steps of every stream that has new windows -> network -> smoothed 10 ms faces."""
        due = [i for i, w in enumerate(wins) if w is not None]
        if not due:
            return
        streams = [streams[i] for i in due]
        lens = [wins[i].shape[0] for i in due]
        feats, ms = self.mel.of_windows(np.concatenate([wins[i] for i in due]))
        logits, jaw, states = self.net.step_packed(feats, lens, [s._state for s in streams])
        faces = self._smooth(streams, lens, logits, jaw, 10.0 * np.log10(ms + 1e-12))
        cut = np.cumsum(lens)[:-1]
        for s, st, f, m, n in zip(streams, states, faces, np.split(ms, cut), (n_ready[i] for i in due)):
            s._state = st
            s._faces = np.concatenate((s._faces, f))
            s._levels = np.concatenate((s._levels, m))  # step i's window is centred on face i's time
            s._nfeat = n
            keep = n * HOP - (WIN // 2) - s._buf0  # next window start
            if keep > 0:
                s._buf = s._buf[keep:]
                s._buf0 += keep

    @staticmethod
    def _smooth(streams: list, lens: list[int], logits: np.ndarray, jaw: np.ndarray, level_db: np.ndarray
                ) -> list[np.ndarray]:
        """Network outputs (rows of all streams stacked) -> each stream's new 10 ms face controls, smoothed
        with its own filter state. The mouth (visemes, jaw) is a one-pole low-pass, computed for every stream
        at once in closed form; activity and emphasis (attack/release, running peak) run as plain floats."""
        B, T = len(lens), max(lens)
        lens_a = np.asarray(lens)
        logits = logits - logits.max(axis=1, keepdims=True)
        post = np.exp(logits)
        post /= post.sum(axis=1, keepdims=True)
        x = np.concatenate((post, jaw[:, None]), axis=1)  # (N, 16)
        y0 = np.stack([s._y for s in streams])
        ragged = bool((lens_a != T).any())
        if ragged:
            sid = np.repeat(np.arange(B), lens_a)
            tt = np.arange(sid.size) - np.repeat(np.cumsum(lens_a) - lens_a, lens_a)
            X = np.zeros((B, T, x.shape[1]))
            X[sid, tt] = x
        else:
            X = x.reshape(B, T, -1)
        # y_t = c^(t+1) y_-1 + sum_{j<=t} a c^(t-j) x_j, in blocks of _LP_BLOCK steps (padding rows come after a
        # stream's own rows, so they never reach them).
        Y = np.empty((B, T, x.shape[1]))
        prev = y0[:, :NUM_VISEMES + 1]
        for t0 in range(0, T, _LP_BLOCK):
            m = min(_LP_BLOCK, T - t0)
            Y[:, t0:t0 + m] = np.matmul(_LP_MIX[:m, :m], X[:, t0:t0 + m]) + _LP_DECAY[:m, None] * prev[:, None, :]
            prev = Y[:, t0 + m - 1]
        lin = Y[sid, tt] if ragged else Y.reshape(B * T, -1)

        act = (1.0 - post[:, _SIL]).tolist()
        lv = level_db.tolist()
        slow = [0.0, 0.0] * len(act)  # activity and emphasis, row by row
        decay = _PEAK_DECAY_DB_S * _STEP_S
        start = 0
        for s, n in zip(streams, lens):
            ya, ye, peak = float(s._y[-2]), float(s._y[-1]), s._peak_db
            for r in range(start, start + n):
                ac, level = act[r], lv[r]
                peak = max(level, peak - decay)
                em = ac * min(1.0, max(0.0, (level - peak + 7.0) / 6.0))
                ya += (_A_ACT if ac > ya else _R_ACT) * (ac - ya)
                ye += (_A_EMPH if em > ye else _R_EMPH) * (em - ye)
                slow[2 * r], slow[2 * r + 1] = ya, ye
            start += n
            s._peak_db = peak
        faces = np.concatenate((lin, np.array(slow).reshape(-1, 2)), axis=1)
        ends = np.cumsum(lens_a) - 1
        last = faces[ends]
        for s, y in zip(streams, last):
            s._y = y
        return np.split(faces.astype(np.float32), ends[:-1] + 1)

    def _emit(self, streams: list, stops: list[int], final: bool) -> list[Frames]:
        """Frames _next..stop-1 of every stream, from its 10 ms faces: interpolated onto its fps grid, the
        viseme poses mixed, the style applied and secondary motion added, all streams' frames as one array."""
        k0 = np.array([s._next for s in streams], np.int64)
        n = np.maximum(np.array(stops, np.int64) - k0, 0)
        N = int(n.sum())
        if N == 0:
            return [Frames.empty(int(k)) for k in k0]
        B = len(streams)
        sid = np.repeat(np.arange(B), n)
        first = np.cumsum(n) - n  # row of each stream's first frame
        k = np.arange(N) - np.repeat(first, n) + k0[sid]
        fps = np.array([s.fps for s in streams])
        t = k / fps[sid]
        u = t * 100.0
        i0 = np.floor(u).astype(np.int64)
        frac = (u - i0)[:, None]
        # All streams' faces in one array: face i of stream s is row off[s] + i + delay - face0[s].
        nf = np.array([s._faces.shape[0] for s in streams], np.int64)
        off = np.cumsum(nf) - nf
        faces = np.concatenate([s._faces for s in streams])
        levels = np.concatenate([s._levels for s in streams])
        face0 = np.array([s._face0 for s in streams], np.int64)
        base_row, last_row = (off - face0)[sid], (off + nf - 1)[sid]
        s0 = i0 + self.cfg.delay + base_row
        f = (1.0 - frac) * faces[s0] + frac * faces[np.minimum(s0 + 1, last_row)]
        silent = ((levels[np.minimum(i0 + base_row, last_row)] < _SILENCE_MS)
                  & (levels[np.minimum(i0 + 1 + base_row, last_row)] < _SILENCE_MS))
        vis = f[:, :NUM_VISEMES].copy()
        jaw, act, emph = f[:, NUM_VISEMES], f[:, NUM_VISEMES + 1], f[:, NUM_VISEMES + 2]
        # Transcript mode (set_mouth_track): known phone timings replace the network's mouth at each frame's own
        # time (the track is on the audio clock, so no delay applies); activity, emphasis and all secondary
        # motion still come from the audio.
        for b, s in enumerate(streams):
            if s._track is not None and n[b]:
                r = slice(int(first[b]), int(first[b] + n[b]))
                vis[r], jaw[r] = s._track.at(t[r])
        intensity = np.array([s.intensity for s in streams])[sid]
        head_motion = np.array([s.head_motion for s in streams])[sid]
        base = np.stack([s.base for s in streams])[sid]
        # Dead zone: a faint speech posterior (noise, breath) does not move the mouth.
        gate = np.clip((1.0 - vis[:, _SIL] - 0.15) / 0.25, 0.0, 1.0)
        gate[silent] = 0.0
        vis[silent] = 0.0
        vis[silent, _SIL] = 1.0
        mouth = (vis @ self.poses) * (gate * intensity)[:, None]
        mouth[:, _JAW] = np.clip(jaw - 0.02, 0.0, None) * gate * intensity
        emph = emph * gate
        w = mouth + base
        jo = np.minimum(2.0 * mouth[:, _JAW], 1.0)
        rnd = np.minimum(1.0, mouth[:, _I["mouthPucker"]] + mouth[:, _I["mouthFunnel"]])

        # Blinks, saccades and drift are event generators with their own seeded random numbers, stepped
        # frame by frame per stream (plain floats); what they give is turned into the face below, vectorised.
        a = np.where(silent, 0.0, act)
        al, tl = a.tolist(), t.tolist()
        blink, drift, gaze = [0.0] * N, [_ZERO3] * N, [_ZERO2] * N
        for b, s in enumerate(streams):
            moving = s.head_motion > 0.0
            blinks, sacc, head = s._blinks, s._saccades, s._drift
            for r in range(int(first[b]), int(first[b] + n[b])):
                ti, ar = tl[r], al[r]
                pause = s._speaking and ar < 0.3
                if pause:
                    s._speaking = False
                elif ar > 0.6:
                    s._speaking = True
                blink[r] = blinks.step(ti, pause)
                if moving:
                    drift[r], gaze[r] = head.step(ti), sacc.step(ti)
        bl = np.array(blink)
        dp, dy, dr = np.array(drift).T
        gy, gp = np.array(gaze).T
        live = 0.5 + 0.5 * a
        hp = live * head_motion * _DRIFT[0] * dp + head_motion * _NOD * emph
        hy = live * head_motion * _DRIFT[1] * dy
        hr = live * head_motion * _DRIFT[2] * dr
        ey, ep = head_motion * gy - VOR * hy, head_motion * gp - VOR * hp  # zero where head_motion is 0: eyes and head at rest
        # Head, neck and eye rotation vectors -> quaternions in one call; both eyes share the gaze.
        head = np.stack((hp, hy, hr), 1)
        q = quat_from_rotvec(np.stack((head, head, np.stack((ep, ey, np.zeros(N)), 1)), 1) * _BONE_SHARE)
        rot = np.concatenate((q, q[:, 2:]), axis=1).astype(np.float32)
        # Weights driven by those (blinks, gaze, emphasis brows) and the base pose yielding to them.
        yn, pn = ey / _EYE_YAW_FULL, ep / _EYE_PITCH_FULL
        w += np.stack((yn, -yn, -pn, pn), 1).clip(0.0, None) @ _GAZE_TO_W
        w += np.stack((bl, intensity * emph), 1) @ _BLINK_BROWS_TO_W
        w -= base * (np.stack((jo, rnd, bl), 1) @ _YIELDS)
        np.clip(w, 0.0, 1.0, out=w)
        w = w.astype(np.float32)
        vis *= gate[:, None]
        vis[:, _SIL] = 1.0 - vis[:, 1:].sum(1)
        vis = vis.astype(np.float32)

        out = []
        for b, s in enumerate(streams):
            if n[b] == 0:
                out.append(Frames.empty(int(k0[b])))
                continue
            r = slice(int(first[b]), int(first[b] + n[b]))
            out.append(Frames(int(k0[b]), w[r], rot[r], visemes=vis[r]))
            s._next = stops[b]
            # Drop faces no later frame needs (frame `stop` interpolates from face floor(100 stop / fps)).
            drop = int(math.floor(stops[b] * 100 / s.fps)) - s._face0
            if drop > 0 and not final:
                s._faces = s._faces[drop:]
                s._levels = s._levels[drop:]
                s._face0 += drop
        return out


class RealSpeechEngine(LearnedExpressionEngine):
    """The same network trained mostly on real speech labelled by pocketsphinx (train/real.py)."""

    name = "learned-v2"
    weights = WEIGHTS_ROOT / "learned-v2"


def _training_data(config: dict) -> str:
    real = (config.get("training") or {}).get("real_speech")
    synthetic = "espeak-ng speech in 15 languages with exact phone timings"
    if not real:
        return synthetic
    return (f"{real['minutes']:.0f} min of real speech ({real['speakers']} speakers) labelled by pocketsphinx's "
            f"US-English acoustic model, mixed with {synthetic}")



class LearnedExpressionStream(ExpressionStream):
    def __init__(self, engine: LearnedExpressionEngine, fps: int, style: Style):
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if style.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {style.emotion!r}; expected one of {sorted(EMOTIONS)}")
        self.engine = engine
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
        self._track = None  # a MouthTrack from set_mouth_track, or None: the network's mouth

        self.intensity = float(np.clip(style.intensity, 0.0, 2.0))
        self.head_motion = float(np.clip(style.head_motion, 0.0, 2.0))
        strength = float(np.clip(style.emotion_strength, 0.0, 1.0))
        self.base = np.zeros(NUM_BLENDSHAPES, np.float32)
        for name, w in EMOTIONS[style.emotion].items():
            self.base[_I[name]] = w * strength
        self._blinks = Blinks(rng_for(style.seed, 0))
        self._saccades = Saccades(rng_for(style.seed, 1))
        self._drift = HeadDrift(rng_for(style.seed, 2))

    # ------------------------------------------------------------------ API
    def set_mouth_track(self, track) -> None:
        """Give the mouth (visemes, jaw) from known phone timings (phones.timing.MouthTrack, step i = time
        i * 10 ms on the audio clock) instead of the network's, for every frame emitted from now on."""
        self._track = track

    def push(self, audio: np.ndarray) -> Frames:
        return self.engine.push_many([self], [audio])[0]

    def finish(self) -> Frames:
        return self.engine.finish_many([self])[0]

    def _finish_plan(self) -> tuple[int, int] | None:
        """Mark the stream finished and pad its buffer so that every remaining frame can be made, as if silence
        followed the audio: -> (feature steps needed, frame count), or None when no frame remains."""
        if self._finished:
            return None
        self._finished = True
        n_total = -(-self._total * self.fps // SAMPLE_RATE)
        if n_total <= self._next:
            return None
        last_face = math.ceil((n_total - 1) * 100 / self.fps)
        need_steps = last_face + self.delay + 1
        need_samples = (need_steps - 1) * HOP + WIN // 2
        pad = need_samples - self._total
        if pad > 0:
            self._buf = np.concatenate((self._buf, np.zeros(pad, np.float32)))
        return need_steps, n_total

    # ------------------------------------------------------------ internals
    def _take(self, audio: np.ndarray) -> tuple[list[str], np.ndarray | None, int]:
        """Buffer new audio -> (input warnings, the analysis windows of the feature steps it completes
        (None when none is due), the feature step count then ready)."""
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
        return warnings, self._windows(n_ready), n_ready

    def _windows(self, n_ready: int) -> np.ndarray | None:
        """(n, WIN) windows of feature steps _nfeat..n_ready-1; None if none is due."""
        n = n_ready - self._nfeat
        if n <= 0:
            return None
        if self._state is None:
            self._state = self.engine.net.initial_state()
        off = self._nfeat * HOP - (WIN // 2) - self._buf0  # buffer offset of step _nfeat's window start
        return windows(self._buf[off: off + (n - 1) * HOP + WIN], n)

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
