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
SYNC_TOLERANCE_S = 0.15  # clips further off than this (with clear evidence) are left out of the +-100 ms means
SYNC_EVIDENCE = 0.15  # how much better (in r) a far lag must fit than the best near 0 to call a clip out of sync
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


def engine_jaw(engine, x: np.ndarray, fps: int, n: int, track=None) -> np.ndarray:
    """jawOpen per frame from an engine, streamed in 40 ms chunks as a client would (with ``track``, a
    phones.timing.MouthTrack: the transcript mode)."""
    s = engine.open(fps, Style(head_motion=0.0))
    if track is not None:
        s.set_mouth_track(track)
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


def capture_clip(path: Path, model: Path, cache_dir: Path | None, audio_path: Path | None = None
                 ) -> tuple[FaceTruth, np.ndarray]:
    """(truth, 16 kHz audio) for one video, measured with engine.capture; cached by file content. With
    ``audio_path`` (a video without sound, its speech in a separate file) the audio comes from that file and
    starts with the first video frame.

    MediaPipe runs unsmoothed here (CaptureSettings(smoothing=False)): the One Euro filter the
    live capture uses would add lag and flatten the very motion being measured.
    """
    key = hashlib.sha256(path.read_bytes() + _CAPTURE_VERSION).hexdigest()[:16]
    cached = cache_dir / f"{path.stem}-{key}.npz" if cache_dir else None
    if cached and cached.exists():
        z = np.load(cached)
        audio = load_audio(audio_path) if audio_path else z["audio"]
        return FaceTruth(float(z["fps"]), z["times"], z["jaw"], z["aperture"], z["found"]), audio
    from engine.audio import resample
    from engine.capture import CaptureSettings, capture_video_file, lip_aperture

    cap = capture_video_file(str(path), model_path=str(model), settings=CaptureSettings(smoothing=False))
    found = np.asarray(cap.found, bool)
    ap = lip_aperture(cap.landmarks, cap.info.width, cap.info.height)
    found &= np.isfinite(ap)
    start = float(cap.times[0]) if audio_path and len(cap.times) else float(cap.audio_start)
    truth = FaceTruth(float(cap.fps), np.asarray(cap.times, np.float64) - start,
                      np.where(found, np.asarray(cap.weights, np.float64)[:, JAW], 0.0),
                      np.where(found, ap, 0.0), found)
    audio = (resample(np.asarray(cap.audio, np.float32), int(cap.sample_rate), SAMPLE_RATE).astype(np.float32)
             if len(cap.audio) and cap.sample_rate else np.zeros(0, np.float32))
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cached, fps=truth.fps, times=truth.times, jaw=truth.jaw, aperture=truth.aperture,
                            found=truth.found, audio=audio)
    return truth, (load_audio(audio_path) if audio_path else audio)


def av_offset(truth: FaceTruth, audio: np.ndarray) -> float:
    """The clip's own audio/picture offset in seconds, estimated without any engine: the lag within
    +-SYNC_SEARCH_S at which the RMS envelope best matches the lip aperture (sign as best_lag_r)."""
    return av_sync(truth, audio)[0]


def av_sync(truth: FaceTruth, audio: np.ndarray) -> tuple[float, str]:
    """(offset s, verdict). Engine-free: the RMS envelope against the lip aperture. 'yes': the best lag within
    +-1 s is within SYNC_TOLERANCE_S; 'no': it is further off *and* fits clearly better (by SYNC_EVIDENCE in r)
    than the best lag near 0; 'unclear': further off, but the evidence is weak (short or low-motion clips,
    where the envelope fits several lags about equally). 'no' clips are left out of the +-100 ms means."""
    rms = rms_flap(audio, PRED_FPS, -(-audio.size * PRED_FPS // SAMPLE_RATE))
    r_best, offset = best_lag_r(rms, PRED_FPS, truth.aperture, truth.times, truth.found, max_lag=SYNC_SEARCH_S)
    if abs(offset) <= SYNC_TOLERANCE_S:
        return offset, "yes"
    r_near, _ = best_lag_r(rms, PRED_FPS, truth.aperture, truth.times, truth.found)
    if not np.isfinite(r_near) or r_best - r_near >= SYNC_EVIDENCE:
        return offset, "no"
    return offset, "unclear"


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


@dataclass
class AVClip:
    """A talking-head clip to score, with what is known about it."""

    path: Path
    language: str = "unknown"
    speaker: str = ""
    transcript: str | None = None
    audio: Path | None = None  # the clip's speech when the video file has no audio track

    @property
    def name(self) -> str:
        return self.path.name


def clips_in_dir(directory: Path) -> list[AVClip]:
    return [AVClip(p, speaker=p.stem) for p in sorted(Path(directory).iterdir()) if p.suffix.lower() in VIDEO_EXT]


def read_manifest(path: str | Path) -> list[dict]:
    """A media manifest (bench/data/*.json): a JSON list of objects, each with an 'id' and a 'local' path.
    ValueError naming the file and what is wrong otherwise."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"manifest {path} cannot be read as JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                                             and isinstance(r.get("local"), str) for r in rows):
        raise ValueError(f"manifest {path} must be a JSON list of objects with string 'id' and 'local' "
                         "(bench/data/media_sources.json is an example)")
    return rows


def clips_in_manifest(manifest: Path, media_root: Path | None) -> list[AVClip]:
    """The ``kind == "av"`` entries of a media manifest (bench/data/*.json) whose files exist. An entry's
    ``local`` path is relative to its own ``root`` (relative to the manifest's folder), else to media_root."""
    rows = read_manifest(manifest)
    by_id = {r["id"]: r for r in rows}
    out = []
    for r in rows:
        if r.get("kind") != "av":
            continue
        root = (Path(manifest).parent / r["root"]) if r.get("root") else media_root
        if root is None:
            continue
        p = Path(root) / r["local"]
        paired = by_id.get(r.get("paired_audio") or "")
        audio = Path(root) / paired["local"] if paired else None
        if p.exists() and (audio is None or audio.exists()):
            out.append(AVClip(p, r.get("language") or "unknown", r.get("speaker") or p.stem,
                              r.get("transcript") or (paired or {}).get("transcript"), audio))
    return out


def eval_videos(clips, engines: dict, model: Path, cache_dir: Path | None, log=print,
                extra: dict | None = None) -> list[dict]:
    """Rows per clip and predictor. ``clips``: AVClips or a directory. ``extra``: more rows, name ->
    f(audio16k, clip, fps, n) -> jawOpen per frame (peers such as Rhubarb, offline references, the transcript
    mode). A clip an engine was trained on (its weights list the file's sha256, ``engine.trained_on``) is
    scored but marked ``trained_on`` and left out of that engine's means; a clip whose engine-free A/V offset
    is clearly off (av_sync) is marked ``synced: False`` and left out of the +-100 ms means."""
    if isinstance(clips, (str, Path)):
        clips = clips_in_dir(Path(clips))
    rows = []
    for clip in clips:
        path = clip.path
        truth, audio = capture_clip(path, model, cache_dir, clip.audio)
        sha = file_sha256(path)
        fps = truth.fps
        n = truth.jaw.size
        n_pred = -(-audio.size * PRED_FPS // SAMPLE_RATE)
        preds = predictions(audio, PRED_FPS, n_pred, engines)
        for name, fn in (extra or {}).items():
            jaw = fn(audio, clip, PRED_FPS, n_pred)
            if jaw is not None:
                preds[name] = np.asarray(jaw, np.float64)
        # The second protocol applies the +-100 ms rule around the clip's own A/V offset for every row
        # (the baseline row is favoured by it: it defined the offset).
        offset, verdict = av_sync(truth, audio)
        for name, pred in preds.items():
            seen = sha in getattr(engines.get(name), "trained_on", ())
            rows.append({"clip": path.name, "engine": name, "frames": int(n), "fps": fps,
                         "language": clip.language, "speaker": clip.speaker, "synced": verdict != "no", "sync": verdict,
                         "face_found": float(truth.found.mean()), "trained_on": seen,
                         **score_clip(pred, truth, offset)})
        if log:
            log(f"  {path.name}: {n} frames @ {fps:g} fps, face in {truth.found.mean():.0%}, A/V offset "
                f"{offset * 1000:+.0f} ms (in sync: {verdict}{'; not in the means' if verdict == 'no' else ''}): "
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


def eval_aligned(directory, engines: dict, fps: int = 30, tier: str = "phone", extra: dict | None = None
                 ) -> list[dict]:
    """Pooled AUC over every <name>.wav with a <name>_phones.TextGrid or <name>.TextGrid beside it, in one
    directory or several."""
    dirs = [Path(directory)] if isinstance(directory, (str, Path)) else [Path(d) for d in directory]
    pooled: dict[str, tuple[list, list, list]] = {}
    clips = []
    for wav in sorted(w for d in dirs for w in d.glob("*.wav")):
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
        preds = predictions(x, fps, n, engines)
        for name, fn in (extra or {}).items():
            jaw = fn(x, None, fps, n)
            if jaw is not None:
                preds[name] = np.asarray(jaw, np.float64)
        for name, pred in preds.items():
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


def transcript_row(engine_names: list[str] | None = None) -> dict:
    """{'<engine>+transcript': f}: the transcript mode of the default engine (or the first named engine
    that has one) on clips whose transcript is known; where alignment fails the row gets the audio-only
    output, as a user would."""
    from engine.expression.phones.align import AlignmentError, align
    from engine.expression.phones.timing import mouth_track
    from engine.expression.registry import DEFAULT_ENGINE, load_engine

    names = [n for n in (engine_names or [DEFAULT_ENGINE])]
    eng = next((e for e in map(load_engine, names) if hasattr(e.open(30, Style()), "set_mouth_track")), None)
    if eng is None:
        return {}

    def predict(x, clip, fps, n):
        if clip is None or not clip.transcript or not clip.language.startswith("en"):
            return None
        try:
            track = mouth_track(align(x, clip.transcript).phones, -(-x.size // 160))
        except AlignmentError:
            track = None
        return engine_jaw(eng, x, fps, n, track)

    return {f"{eng.name}+transcript": predict}


# ---------------------------------------------------------------- report
def load_engines(names: list[str] | None) -> dict:
    from engine.expression.registry import ENGINES, load_engine

    return {n: load_engine(n) for n in (names or list(ENGINES))}


def _mean(rows: list[dict], key: str) -> float:
    v = [r[key] for r in rows if np.isfinite(r[key])]
    return float(np.mean(v)) if v else float("nan")


def summary(video_rows: list[dict]) -> list[dict]:
    """Per predictor: means over the synced clips it was not trained on (headline), per language, and over
    every clip after each clip's own A/V offset."""
    out = []
    for name in dict.fromkeys(r["engine"] for r in video_rows):
        mine = [r for r in video_rows if r["engine"] == name and not r.get("trained_on")]
        synced = [r for r in mine if r.get("synced", True)]
        langs = {}
        for lang in sorted({r.get("language", "unknown") for r in synced}):
            rs = [r for r in synced if r.get("language", "unknown") == lang]
            langs[lang] = {"clips": len(rs), "r_aperture": _mean(rs, "r_aperture"), "r_jaw": _mean(rs, "r_jaw")}
        out.append({"engine": name, "clips": len(synced), "speakers": len({r.get("speaker") for r in synced}),
                    "r_aperture": _mean(synced, "r_aperture"), "r_jaw": _mean(synced, "r_jaw"),
                    "median_lag_ms": float(np.median([r["lag_aperture_ms"] for r in synced])) if synced else 0.0,
                    "all_clips": len(mine), "r_aperture_synced_all": _mean(mine, "r_aperture_synced"),
                    "by_language": langs})
    return out


def markdown(video_rows: list[dict], align_rows: list[dict]) -> str:
    out = []
    if video_rows:
        names = list(dict.fromkeys(r["engine"] for r in video_rows))
        out.append("Per clip: r of predicted jawOpen vs the speaker's inner-lip aperture, best lag within +-100 ms "
                   "(* = trained on, not counted; clips out of sync are listed but not in the means)")
        out.append("")
        out.append("| clip | language | A/V offset ms | synced | " + " | ".join(names) + " |")
        out.append("|---|---|---|---|" + "---|" * len(names))
        for clip in dict.fromkeys(r["clip"] for r in video_rows):
            rs = {r["engine"]: r for r in video_rows if r["clip"] == clip}
            r0 = next(iter(rs.values()))
            cells = [f"{rs[n]['r_aperture']:.2f}{'*' if rs[n].get('trained_on') else ''}" if n in rs else "-"
                     for n in names]
            out.append(f"| {clip} | {r0.get('language', '')} | {r0['av_offset_ms']:+.0f} | "
                       f"{r0.get('sync', 'yes')} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("| engine | synced clips (speakers) | mean r vs aperture | mean r vs jawOpen | median lag ms "
                   "| per language (r vs aperture) | all clips after A/V offset |")
        out.append("|---|---|---|---|---|---|---|")
        for m in summary(video_rows):
            if not m["all_clips"]:
                out.append(f"| {m['engine']} | 0 (trained on every clip here) | - | - | - | - | - |")
                continue
            langs = ", ".join(f"{k} {v['r_aperture']:.2f} ({v['clips']})" for k, v in m["by_language"].items())
            out.append(f"| {m['engine']} | {m['clips']} ({m['speakers']}) | {m['r_aperture']:.3f} | {m['r_jaw']:.3f} "
                       f"| {m['median_lag_ms']:+.0f} | {langs} | {m['r_aperture_synced_all']:.3f} ({m['all_clips']}) |")
        out.append("")
    if align_rows:
        out.append("| engine | AUC open vowel vs closure/fricative | AUC vs closure/fricative/silence | frames (open/closed) |")
        out.append("|---|---|---|---|")
        for r in align_rows:
            out.append(f"| {r['engine']} | {r['auc_open_vs_closed']:.3f} | {r['auc_open_vs_closed_or_silence']:.3f} "
                       f"| {r['open_frames']}/{r['closed_frames']} |")
    return "\n".join(out)


def run(clips, align_dir: Path | None, engines: list[str] | None, model: Path,
        cache_dir: Path | None, out_json: Path | None, log=print, extra: dict | None = None) -> dict:
    engs = load_engines(engines)
    video_rows = eval_videos(clips, engs, model, cache_dir, log, extra) if clips else []
    dirs = [align_dir] if isinstance(align_dir, (str, Path)) else list(align_dir or [])
    dirs = [Path(d) for d in dirs if d and Path(d).is_dir()]
    align_rows = eval_aligned(dirs, engs, extra=extra) if dirs else []
    result = {"videos": video_rows, "summary": summary(video_rows), "aligned": align_rows}
    if out_json:
        out_json.write_text(json.dumps(result, indent=1))
    log(markdown(video_rows, align_rows))
    return result
