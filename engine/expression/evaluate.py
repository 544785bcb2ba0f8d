"""Quality evaluation of expression engines on real speech (``avatar-bridge eval-expression``).

Two measurements, both on media no engine was trained on:

1. **Talking-head clips** (a directory of videos with speech): the speaker's
   own face is measured per video frame with the Capture module
   (engine.capture, MediaPipe FaceLandmarker, unsmoothed): jawOpen, and the
   inner-lip aperture = distance of landmarks 13/14 over face height =
   distance of landmarks 10/152, in pixels. Each
   engine animates the clip's audio at the video's frame rate; per clip we
   report Pearson r between the predicted jawOpen and each truth at the best
   lag within +-100 ms (positive lag: the truth comes later than the
   prediction).
2. **Phone-aligned speech** (Praat TextGrids beside wavs): AUC of the
   predicted jawOpen separating open-vowel frames from closure / fricative
   frames.

Rows: every registered engine plus ``rms-flap`` (the RMS envelope as jawOpen,
the amplitude lip-flap baseline).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.expression.base import SAMPLE_RATE, Style
from engine.rig import ARKIT_INDEX

JAW = ARKIT_INDEX["jawOpen"]
VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
MAX_LAG_S = 0.1
SYNC_SEARCH_S = 1.0  # the engine-free audio/picture offset search range
RMS_BASELINE = "rms-flap"
PRED_FPS = 60  # engines run at this rate; predictions are interpolated to each video frame's time
LAG_STEP_S = 0.01
_CAPTURE_VERSION = b"engine.capture unsmoothed v1"


# ---------------------------------------------------------------- engines and the baseline
def rms_flap(x: np.ndarray, fps: int, n: int) -> np.ndarray:
    """Amplitude lip-flap: RMS of a 40 ms window centred on each frame (scale is irrelevant to r/AUC)."""
    out = np.zeros(n)
    for k in range(n):
        c = int(round(k * SAMPLE_RATE / fps))
        seg = x[max(0, c - 320): c + 320]
        out[k] = np.sqrt(np.mean(seg ** 2)) if seg.size else 0.0
    return out


def engine_jaw(engine, x: np.ndarray, fps: int, n: int) -> np.ndarray:
    """jawOpen per frame from an engine, streamed in 40 ms chunks as a client would."""
    s = engine.open(fps, Style(head_motion=0.0))
    parts = [s.push(x[i:i + 640]).weights for i in range(0, x.size, 640)]
    parts.append(s.finish().weights)
    w = np.concatenate(parts)[:, JAW]
    if w.size < n:
        w = np.concatenate([w, np.full(n - w.size, w[-1] if w.size else 0.0)])
    return w[:n].astype(np.float64)


def predictions(x: np.ndarray, fps: int, n: int, engines: dict) -> dict[str, np.ndarray]:
    out = {RMS_BASELINE: rms_flap(x, fps, n)}
    for name, eng in engines.items():
        out[name] = engine_jaw(eng, x, fps, n)
    return out


# ---------------------------------------------------------------- statistics
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def best_lag_r(pred: np.ndarray, pred_fps: int, truth: np.ndarray, times: np.ndarray, ok: np.ndarray,
               center: float = 0.0, max_lag: float = MAX_LAG_S) -> tuple[float, float]:
    """Max Pearson r over lags in center +- max_lag (10 ms steps) of r(pred(t - lag), truth(t)) at the
    truth's frame times; pred is sampled at k / pred_fps. -> (r, lag seconds); (nan, 0) without enough faces."""
    best = (float("nan"), 0.0)
    grid = np.arange(pred.size) / pred_fps
    steps = int(round(max_lag / LAG_STEP_S))
    for j in range(-steps, steps + 1):
        lag = center + j * LAG_STEP_S
        tq = times - lag
        m = ok & (tq >= 0) & (tq <= grid[-1])
        if m.sum() < 10:
            continue
        r = pearson(np.interp(tq[m], grid, pred), truth[m])
        if not r <= best[0]:  # also replaces the initial nan
            best = (r, lag)
    return best


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(random positive > random negative), ties count half."""
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


# ---------------------------------------------------------------- audio
def load_audio(path: str | Path) -> np.ndarray:
    """Any file ffmpeg/libsndfile reads -> mono float32 at 16 kHz."""
    from engine.audio import decode_file, resample

    data = Path(path).read_bytes()
    x, sr, _ = decode_file(data, Path(path).suffix.lstrip("."))
    return resample(x, sr, SAMPLE_RATE).astype(np.float32)


# ---------------------------------------------------------------- capture (ground truth from the face)
@dataclass
class FaceTruth:
    fps: float  # nominal
    times: np.ndarray  # (n,) seconds of each video frame on the audio's clock
    jaw: np.ndarray  # (n,) MediaPipe jawOpen
    aperture: np.ndarray  # (n,) inner-lip gap / face height
    found: np.ndarray  # (n,) bool


def capture_clip(path: Path, model: Path, cache_dir: Path | None) -> tuple[FaceTruth, np.ndarray]:
    """(truth, 16 kHz audio) for one video, measured with engine.capture; cached by file content.

    MediaPipe runs unsmoothed here (CaptureSettings(smoothing=False)): the One Euro filter the
    live capture uses would add lag and flatten the very motion being measured.
    """
    key = hashlib.sha256(path.read_bytes() + _CAPTURE_VERSION).hexdigest()[:16]
    cached = cache_dir / f"{path.stem}-{key}.npz" if cache_dir else None
    if cached and cached.exists():
        z = np.load(cached)
        return FaceTruth(float(z["fps"]), z["times"], z["jaw"], z["aperture"], z["found"]), z["audio"]
    from engine.audio import resample
    from engine.capture import CaptureSettings, capture_video_file, lip_aperture

    cap = capture_video_file(str(path), model_path=str(model), settings=CaptureSettings(smoothing=False))
    found = np.asarray(cap.found, bool)
    ap = lip_aperture(cap.landmarks, cap.info.width, cap.info.height)
    found &= np.isfinite(ap)
    truth = FaceTruth(float(cap.fps), np.asarray(cap.times, np.float64) - float(cap.audio_start),
                      np.where(found, np.asarray(cap.weights, np.float64)[:, JAW], 0.0),
                      np.where(found, ap, 0.0), found)
    audio = resample(np.asarray(cap.audio, np.float32), int(cap.sample_rate), SAMPLE_RATE).astype(np.float32)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cached, fps=truth.fps, times=truth.times, jaw=truth.jaw, aperture=truth.aperture,
                            found=truth.found, audio=audio)
    return truth, audio


def av_offset(truth: FaceTruth, audio: np.ndarray) -> float:
    """The clip's own audio/picture offset in seconds, estimated without any engine: the lag within
    +-SYNC_SEARCH_S at which the RMS envelope best matches the lip aperture (sign as best_lag_r)."""
    rms = rms_flap(audio, PRED_FPS, -(-audio.size * PRED_FPS // SAMPLE_RATE))
    return best_lag_r(rms, PRED_FPS, truth.aperture, truth.times, truth.found, max_lag=SYNC_SEARCH_S)[1]


def score_clip(pred: np.ndarray, truth: FaceTruth, offset: float) -> dict:
    """Both protocols for one prediction (sampled at PRED_FPS): +-100 ms around 0, and around the offset."""
    r_ap, lag_ap = best_lag_r(pred, PRED_FPS, truth.aperture, truth.times, truth.found)
    r_jaw, lag_jaw = best_lag_r(pred, PRED_FPS, truth.jaw, truth.times, truth.found)
    r_ap_s, _ = best_lag_r(pred, PRED_FPS, truth.aperture, truth.times, truth.found, center=offset)
    r_jaw_s, _ = best_lag_r(pred, PRED_FPS, truth.jaw, truth.times, truth.found, center=offset)
    return {"r_aperture": r_ap, "lag_aperture_ms": lag_ap * 1000, "r_jaw": r_jaw, "lag_jaw_ms": lag_jaw * 1000,
            "av_offset_ms": offset * 1000, "r_aperture_synced": r_ap_s, "r_jaw_synced": r_jaw_s}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def eval_videos(directory: Path, engines: dict, model: Path, cache_dir: Path | None, log=print) -> list[dict]:
    """Rows per clip and engine. A clip an engine was trained on (its weights list the file's sha256,
    ``engine.trained_on``) is scored but marked ``trained_on`` and left out of that engine's means."""
    rows = []
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_EXT):
        truth, audio = capture_clip(path, model, cache_dir)
        sha = file_sha256(path)
        fps = truth.fps
        n = truth.jaw.size
        preds = predictions(audio, PRED_FPS, -(-audio.size * PRED_FPS // SAMPLE_RATE), engines)
        # The second protocol applies the +-100 ms rule around the clip's own A/V offset for every row
        # (the baseline row is favoured by it: it defined the offset).
        offset = av_offset(truth, audio)
        for name, pred in preds.items():
            seen = sha in getattr(engines.get(name), "trained_on", ())
            rows.append({"clip": path.name, "engine": name, "frames": int(n), "fps": fps,
                         "face_found": float(truth.found.mean()), "trained_on": seen,
                         **score_clip(pred, truth, offset)})
        if log:
            log(f"  {path.name}: {n} frames @ {fps:g} fps, face in {truth.found.mean():.0%} "
                + ", ".join(f"{r['engine']} r_ap={r['r_aperture']:.2f}{' (trained on)' if r['trained_on'] else ''}"
                            for r in rows[-len(preds):]))
    return rows


# ---------------------------------------------------------------- phone-aligned speech
OPEN_VOWELS = re.compile(r"^(AA|AE|AH|AO|AW|AY|EH|ER|OW|OY)\d?$|^[aɑæɐʌɛœɔoəɜ]")
# Closures (lips or tongue sealed) and fricatives: the mouth is nearly closed.
CLOSED = re.compile(r"^(B|P|M|PT|F|V|TH|DH|S|Z|SH|ZH|T|D|K|G|CH|JH)\d?$|^[bpmfvθðszʃʒtdkg]$")


def parse_textgrid(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Interval tiers of a Praat TextGrid, long ("item [1]:") or short format."""
    txt = path.read_text(encoding="utf-8")
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    if re.search(r"item \[\d+\]:", txt):
        for block in re.split(r"item \[\d+\]:", txt)[1:]:
            if 'class = "IntervalTier"' not in block:
                continue
            name = re.search(r'name = "([^"]*)"', block).group(1)
            iv = re.findall(r'xmin = (\S+)\s+xmax = (\S+)\s+text = "([^"]*)"', block)
            tiers[name] = [(float(a), float(b), c) for a, b, c in iv]
        return tiers
    tok = [ln.strip() for ln in txt.splitlines() if ln.strip()]
    i = tok.index("<exists>") + 2
    while i < len(tok):
        cls, name, count = tok[i].strip('"'), tok[i + 1].strip('"'), int(tok[i + 4])
        i += 5
        if cls == "IntervalTier":
            tiers[name] = [(float(tok[i + 3 * j]), float(tok[i + 3 * j + 1]), tok[i + 3 * j + 2].strip('"'))
                           for j in range(count)]
            i += 3 * count
        else:
            i += 2 * count
    return tiers


def eval_aligned(directory: Path, engines: dict, fps: int = 30, tier: str = "phone") -> list[dict]:
    """Pooled AUC over every <name>.wav with a <name>_phones.TextGrid or <name>.TextGrid beside it."""
    pooled: dict[str, tuple[list, list, list]] = {}
    clips = []
    for wav in sorted(directory.glob("*.wav")):
        grid = next((g for g in (wav.with_name(wav.stem + "_phones.TextGrid"), wav.with_suffix(".TextGrid"))
                     if g.exists()), None)
        if grid is None:
            continue
        tiers = parse_textgrid(grid)
        if tier not in tiers:
            continue
        clips.append(wav.name)
        x = load_audio(wav)
        n = -(-x.size * fps // SAMPLE_RATE)
        t = np.arange(n) / fps
        labels = np.full(n, "", dtype=object)
        for a, b, lab in tiers[tier]:
            labels[(t >= a) & (t < b)] = lab.strip()
        is_open = np.array([bool(OPEN_VOWELS.match(s)) for s in labels])
        is_closed = np.array([bool(CLOSED.match(s)) for s in labels])
        is_sil = labels == ""
        for name, pred in predictions(x, fps, n, engines).items():
            o, c, s = pooled.setdefault(name, ([], [], []))
            o.append(pred[is_open])
            c.append(pred[is_closed])
            s.append(pred[is_sil])
    rows = []
    for name, (o, c, s) in pooled.items():
        o, c, s = np.concatenate(o), np.concatenate(c), np.concatenate(s)
        rows.append({"engine": name, "clips": clips, "open_frames": int(o.size), "closed_frames": int(c.size),
                     "auc_open_vs_closed": auc(o, c), "auc_open_vs_closed_or_silence": auc(o, np.concatenate([c, s]))})
    return rows


# ---------------------------------------------------------------- report
def load_engines(names: list[str] | None) -> dict:
    from engine.expression.registry import ENGINES, load_engine

    return {n: load_engine(n) for n in (names or list(ENGINES))}


def markdown(video_rows: list[dict], align_rows: list[dict]) -> str:
    out = []
    if video_rows:
        out.append("| clip | engine | r vs lip aperture (lag ms) | r vs MediaPipe jawOpen (lag ms) |")
        out.append("|---|---|---|---|")
        for r in video_rows:
            seen = " (trained on: not counted)" if r.get("trained_on") else ""
            out.append(f"| {r['clip']} | {r['engine']}{seen} | {r['r_aperture']:.2f} ({r['lag_aperture_ms']:+.0f}) "
                       f"| {r['r_jaw']:.2f} ({r['lag_jaw_ms']:+.0f}) |")
        out.append("")
        out.append("| engine | mean r vs aperture | mean r vs jawOpen | after A/V offset: aperture | jawOpen "
                   "| held-out clips |")
        out.append("|---|---|---|---|---|---|")
        for name in dict.fromkeys(r["engine"] for r in video_rows):
            rs = [r for r in video_rows if r["engine"] == name and not r.get("trained_on")]
            if not rs:
                out.append(f"| {name} | - | - | - | - | 0 (trained on every clip here) |")
                continue
            out.append(f"| {name} | {np.mean([r['r_aperture'] for r in rs]):.2f} "
                       f"| {np.mean([r['r_jaw'] for r in rs]):.2f} "
                       f"| {np.mean([r['r_aperture_synced'] for r in rs]):.2f} "
                       f"| {np.mean([r['r_jaw_synced'] for r in rs]):.2f} | {len(rs)} |")
        out.append("")
        out.append("A/V offset per clip (engine-free, lag of the RMS envelope vs lip aperture within +-1 s): "
                   + ", ".join(f"{r['clip']} {r['av_offset_ms']:+.0f} ms"
                               for r in video_rows if r["engine"] == RMS_BASELINE))
        out.append("")
    if align_rows:
        out.append("| engine | AUC open vowel vs closure/fricative | AUC vs closure/fricative/silence | frames (open/closed) |")
        out.append("|---|---|---|---|")
        for r in align_rows:
            out.append(f"| {r['engine']} | {r['auc_open_vs_closed']:.3f} | {r['auc_open_vs_closed_or_silence']:.3f} "
                       f"| {r['open_frames']}/{r['closed_frames']} |")
    return "\n".join(out)


def run(video_dir: Path | None, align_dir: Path | None, engines: list[str] | None, model: Path,
        cache_dir: Path | None, out_json: Path | None, log=print) -> dict:
    engs = load_engines(engines)
    video_rows = eval_videos(video_dir, engs, model, cache_dir, log) if video_dir else []
    align_rows = eval_aligned(align_dir, engs) if align_dir and align_dir.exists() else []
    result = {"videos": video_rows, "aligned": align_rows}
    if out_json:
        out_json.write_text(json.dumps(result, indent=1))
    log(markdown(video_rows, align_rows))
    return result
