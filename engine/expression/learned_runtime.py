"""learned-v1 without torch: config, features, weights I/O and the network in numpy.

The network (log-mel -> causal convs -> GRU -> visemes + jaw) is defined for
training in torch (train/torch_net.py); a pretrained directory holds
``config.json`` and ``model.npz`` (the state dict, fp16). Serving reads both
without importing torch (torch costs a worker ~190 MB and seconds to import).
Everything is causal:
the network at feature step j sees features 0..j only; the *look-ahead* comes
from training it to describe the face ``delay`` steps in the past, so the
output at step j is the face at time (j - delay) * hop (docs/learned_engine.md).

Features (numpy, identical in training and streaming): 25 ms Hann windows
centred every 10 ms on 16 kHz audio (frame j covers samples
[160 j - 200, 160 j + 200)), |FFT|^2 on 512 points, 40 mel bands
60-7600 Hz, natural log with a -23 floor (1e-10), then a per-band affine
normalisation stored with the weights.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.config import ConfigMixin

SAMPLE_RATE = 16000
HOP = 160
WIN = 400
NFFT = 512
LOG_FLOOR = 1e-10
VIDEO_HEAD_W, VIDEO_HEAD_B = "video_head.weight", "video_head.bias"
VIDEO_HEAD_GATE = 0.2  # synthetic jaw at which the video head passes fully


@dataclass
class ModelConfig(ConfigMixin):
    n_mels: int = 40
    f_min: float = 60.0
    f_max: float = 7600.0
    channels: int = 128
    kernel: int = 3
    n_conv: int = 2
    hidden: int = 128
    delay: int = 5  # output step j describes time (j - delay) * 10 ms
    n_visemes: int = 15


def mel_matrix(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(NFFT//2+1, n_mels) triangular HTK-mel filterbank, float32."""
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.arange(NFFT // 2 + 1) * SAMPLE_RATE / NFFT
    pts = mel2hz(np.linspace(hz2mel(f_min), hz2mel(f_max), n_mels + 2))
    fb = np.zeros((freqs.size, n_mels))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[:, i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0.0, None)
    return fb.astype(np.float32)


_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(WIN) + 0.5) / WIN)).astype(np.float32)
_IDX = np.arange(64)[:, None] * HOP + np.arange(WIN)[None, :]  # window indices of up to 64 steps


def windows(padded: np.ndarray, n: int) -> np.ndarray:
    """(n, WIN) analysis windows of frames 0..n-1; ``padded`` starts 200 samples before frame 0's centre."""
    return padded[_IDX[:n]] if n <= _IDX.shape[0] else padded[np.arange(n)[:, None] * HOP + _IDX[0]]


class LogMel:
    """Log-mel frames of 16 kHz audio; frame j is centred on sample 160 j."""

    def __init__(self, cfg: ModelConfig):
        self.fb = mel_matrix(cfg.n_mels, cfg.f_min, cfg.f_max)

    def frames(self, padded: np.ndarray, n: int, mean_square: bool = False):
        """``padded`` starts 200 samples before frame 0's centre; -> (n, n_mels) float32
        (and each window's mean square, unwindowed, when ``mean_square``)."""
        logmel, ms = self.of_windows(windows(padded, n))
        return (logmel, ms) if mean_square else logmel

    def of_windows(self, fr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, WIN) raw windows (of any number of streams, stacked) -> (log-mel (n, n_mels), mean squares (n,)):
        one FFT and one matrix product for all of them."""
        spec = np.fft.rfft(fr * _WINDOW, NFFT, axis=1)
        p = (spec.real ** 2 + spec.imag ** 2).astype(np.float32) @ self.fb
        return np.log(p + LOG_FLOOR), np.einsum("ij,ij->i", fr, fr) * (1.0 / WIN)

    def whole(self, x: np.ndarray) -> np.ndarray:
        """Offline: every frame j with 160 j < len(x) (audio past the end reads as zeros)."""
        n = -(-x.size // HOP)
        padded = np.concatenate([np.zeros(WIN // 2, np.float32), x.astype(np.float32),
                                 np.zeros(WIN, np.float32)])
        return self.frames(padded, n)


def lookahead_s(cfg: ModelConfig) -> float:
    """Audio needed past a frame's time: delay steps, half a window, and up to one hop of
    interpolation onto the output fps grid."""
    return cfg.delay * HOP / SAMPLE_RATE + (WIN // 2) / SAMPLE_RATE + HOP / SAMPLE_RATE


MAX_DELAY = 20  # feature steps of look-ahead a model may be trained with (222.5 ms)


def delay_for_lookahead(ms: float) -> int:
    """The training delay (10 ms steps) whose look-ahead (lookahead_s) is `ms`, rounded to the 10 ms grid."""
    fixed = (WIN // 2 + HOP) * 1000.0 / SAMPLE_RATE  # half a window + one step of interpolation: 22.5 ms
    d = round((ms - fixed) / (HOP * 1000.0 / SAMPLE_RATE))
    if not 0 <= d <= MAX_DELAY:
        raise ValueError(f"a look-ahead of {ms:g} ms is out of range: use {fixed:g}..{fixed + 10 * MAX_DELAY:g} ms "
                         f"({fixed:g} ms of analysis window and interpolation plus 0..{MAX_DELAY} steps of 10 ms)")
    return d


def save_pretrained(directory: str | Path, cfg: ModelConfig, arrays: dict[str, np.ndarray],
                    extra: dict | None = None) -> None:
    """config.json + model.npz (floating arrays stored as fp16: the network is tiny, the package small)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({**asdict(cfg), **(extra or {})}, indent=1) + "\n")
    np.savez(d / "model.npz", **{k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in arrays.items()})


class ModelFileError(ValueError):
    """A weights folder (config.json + model.npz) that cannot be served; the message names the file and the fix."""


# config.json fields: (type, lowest, highest); far past any network this engine trains, short of a huge allocation
CONFIG_RANGES = {"n_mels": (int, 1, 256), "f_min": (float, 0.0, 8000.0), "f_max": (float, 1.0, 8000.0),
                 "channels": (int, 1, 4096), "kernel": (int, 1, 32), "n_conv": (int, 1, 32),
                 "hidden": (int, 1, 4096), "delay": (int, 0, 1000), "n_visemes": (int, 1, 256)}
_FIX = "restore the folder from the package or retrain it (`avatar-bridge train-expression`)"


def load_pretrained(directory: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """-> (config, float32 arrays by state-dict key). ModelFileError when either file is missing or damaged."""
    d = Path(directory)
    try:
        raw = json.loads((d / "config.json").read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON {type(raw).__name__}, not an object")
        for k, (kind, lo, hi) in CONFIG_RANGES.items():
            v = raw.get(k, getattr(ModelConfig, k))
            if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int) or not lo <= v <= hi:
                raise ValueError(f"{k}={v!r} is not {'a number' if kind is float else 'an integer'} in {lo}..{hi}")
        cfg = ModelConfig.from_dict(raw)
        if cfg.f_min >= cfg.f_max:
            raise ValueError(f"f_min={cfg.f_min} is not below f_max={cfg.f_max}")
    except (OSError, ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
        raise ModelFileError(f"{d / 'config.json'} is not a usable model config ({type(exc).__name__}: "
                             f"{str(exc)[:200]}); {_FIX}") from None
    try:
        with np.load(d / "model.npz") as z:  # allow_pickle=False: object arrays are refused
            arrays = {k: z[k].astype(np.float32) if z[k].dtype.kind == "f" else z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"{d / 'model.npz'} is not a readable weights file ({type(exc).__name__}: "
                             f"{str(exc)[:200]}); {_FIX}") from None
    return cfg, arrays


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict arrays NumpyExpressionNet needs, by key, with their shapes for `cfg`."""
    C, H, V = cfg.channels, cfg.hidden, cfg.n_visemes
    out = {"mean": (cfg.n_mels,), "std": (cfg.n_mels,), "gru.weight_ih_l0": (3 * H, C), "gru.bias_ih_l0": (3 * H,),
           "gru.weight_hh_l0": (3 * H, H), "gru.bias_hh_l0": (3 * H,), "head.weight": (V + 1, H + C),
           "head.bias": (V + 1,)}
    for i in range(cfg.n_conv):
        out[f"convs.{i}.conv.weight"] = (C, cfg.n_mels if i == 0 else C, cfg.kernel)
        out[f"convs.{i}.conv.bias"] = (C,)
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * 0.7071067811865476))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyExpressionNet:
    """The same network as ExpressionNet for streaming inference in numpy (float32).

    A push completes ~4 feature steps of one stream; at that size torch's
    per-operator dispatch costs more than the arithmetic, and these dozen
    numpy calls are several times cheaper. tests/test_learned_engine.py checks
    that both give the same outputs.
    """

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "NumpyExpressionNet":
        return cls(*load_pretrained(directory))

    def __init__(self, cfg: ModelConfig, sd: dict[str, np.ndarray]):
        want = expected_shapes(cfg)
        if VIDEO_HEAD_W in sd:
            want.update({VIDEO_HEAD_W: (cfg.hidden + cfg.channels,), VIDEO_HEAD_B: (1,)})
        bad = [f"{k} {'missing' if k not in sd else list(sd[k].shape)} (needs {list(shape)})"
               for k, shape in want.items() if k not in sd or sd[k].shape != shape or sd[k].dtype.kind != "f"]
        if bad:
            raise ModelFileError(f"model.npz does not fit its config.json: {'; '.join(bad[:4])}"
                                 f"{' ...' if len(bad) > 4 else ''}; {_FIX}")
        self.cfg = cfg
        self.n_params = int(sum(v.size for k, v in sd.items() if k not in ("mean", "std")))
        self.mean, self.inv_std = sd["mean"], 1.0 / sd["std"]
        self.convs = []
        for i in range(cfg.n_conv):
            w = sd[f"convs.{i}.conv.weight"]  # (cout, cin, k)
            # Row block k of the flattened matrix multiplies input time offset k.
            self.convs.append((np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0])),
                               sd[f"convs.{i}.conv.bias"]))
        self.w_ih, self.b_ih = np.ascontiguousarray(sd["gru.weight_ih_l0"].T), sd["gru.bias_ih_l0"]
        self.w_hh, self.b_hh = np.ascontiguousarray(sd["gru.weight_hh_l0"].T), sd["gru.bias_hh_l0"]
        self.w_out, self.b_out = np.ascontiguousarray(sd["head.weight"].T), sd["head.bias"]
        # Optional jaw head fitted on real talking-head video (train/video_head.py): a linear map of the
        # same features ([GRU, conv]) that replaces the synthetic jaw output when present.
        self.video_head = ((sd[VIDEO_HEAD_W].astype(np.float32), float(sd[VIDEO_HEAD_B][0]))
                           if VIDEO_HEAD_W in sd else None)

    def initial_state(self) -> list:
        c = self.cfg
        caches = [np.zeros((c.kernel - 1, c.n_mels if i == 0 else c.channels), np.float32)
                  for i in range(c.n_conv)]
        return caches + [np.zeros(c.hidden, np.float32)]

    def step(self, feats: np.ndarray, state: list) -> tuple[np.ndarray, np.ndarray, list]:
        """feats (T, n_mels) -> (logits (T, 15), jaw (T,), new state); state as initial_state()."""
        logits, jaw, new = self.step_packed(feats, [feats.shape[0]], [state])
        return logits, jaw, new[0]

    def step_packed(self, x: np.ndarray, lens: list[int], states: list[list]
                    ) -> tuple[np.ndarray, np.ndarray, list[list]]:
        """step() for B streams whose features are stacked in x (lens[s] rows for stream s, in order):
        one matrix product per layer (and per GRU time step) for all of them, which is what makes many
        streams per core affordable. Same results as separate steps. -> (logits, jaw, new states), rows stacked."""
        z, new = self.features_packed(x, lens, states)
        out = z @ self.w_out + self.b_out
        jaw = _sigmoid(out[:, -1])
        if self.video_head is not None:
            # Real mouths stay parted through pauses and the head learned that; the synthetic jaw, trained
            # to close on silence, noise and music, gates it so the face rests there (docs/learned_engine.md).
            w, b = self.video_head
            jaw = np.clip(z @ w + b, 0.0, 1.0) * np.clip(jaw / VIDEO_HEAD_GATE, 0.0, 1.0)
        return out[:, :-1], jaw, new

    def features(self, feats: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """feats (T, n_mels) -> (the heads' input [GRU, conv] (T, hidden + channels), new state)."""
        z, new = self.features_packed(feats, [feats.shape[0]], [state])
        return z, new[0]

    def features_packed(self, x: np.ndarray, lens: list[int], states: list[list]) -> tuple[np.ndarray, list[list]]:
        """features() for B streams stacked as in step_packed: -> (their rows stacked, new states).

        Computed on a (streams, steps) grid with each stream's rows left-aligned: a stream with fewer steps
        than the longest has padding rows after its own, which causal layers never read back into its rows
        and the GRU leaves out of its state. Few, large numpy calls: at a push's few steps per stream the
        per-call cost, not the arithmetic, is what counts."""
        k, H = self.cfg.kernel, self.cfg.hidden
        B, T = len(lens), max(lens)
        lens_a = np.asarray(lens, np.int64)
        ragged = bool((lens_a != T).any())
        if ragged:
            sid = np.repeat(np.arange(B), lens_a)
            tt = np.arange(sid.size) - np.repeat(np.cumsum(lens_a) - lens_a, lens_a)
            g = np.zeros((B, T, x.shape[1]), np.float32)
            g[sid, tt] = x
            x = g
        else:
            x = x.reshape(B, T, -1)
        x = (x - self.mean) * self.inv_std
        bi, ci = np.arange(B)[:, None], lens_a[:, None] + np.arange(k - 1)  # where each new cache sits
        new: list[list] = [[] for _ in range(B)]
        for i, (w, b) in enumerate(self.convs):
            xx = np.concatenate((np.stack([st[i] for st in states]), x), axis=1)  # (B, k - 1 + T, C)
            for s, c in enumerate(xx[bi, ci]):
                new[s].append(c)
            cols = np.concatenate([xx[:, j:j + T] for j in range(k)], axis=2)
            x = _gelu(cols.reshape(B * T, -1) @ w + b).reshape(B, T, -1)
        gi = (x.reshape(B * T, -1) @ self.w_ih + self.b_ih).reshape(B, T, -1)
        hs = np.empty((B, T, H), np.float32)
        h = np.stack([st[-1] for st in states])
        w_hh, b_hh = self.w_hh, self.b_hh
        shortest = int(lens_a.min())
        for t in range(T):
            g = gi[:, t]
            gh = h @ w_hh + b_hh
            rz = _sigmoid(g[:, :2 * H] + gh[:, :2 * H])
            n = np.tanh(g[:, 2 * H:] + rz[:, :H] * gh[:, 2 * H:])
            hn = n + rz[:, H:] * (h - n)  # (1 - z) n + z h
            h = hn if t < shortest else np.where((lens_a > t)[:, None], hn, h)
            hs[:, t] = hn
        for s in range(B):
            new[s].append(h[s])
        z = np.concatenate((hs, x), axis=2)
        return (z[sid, tt] if ragged else z.reshape(B * T, -1)), new
