"""Real speech for training: clips from a media manifest, labelled by the pocketsphinx teacher, augmented.

The manifest (bench/data/media_sources.json, docs/data_manifest.md) lists
public real-speech clips with their source, speaker and use; only entries
with ``use == "train"`` and ``kind == "speech"`` are read here. Labels come
from forced alignment of the clip's transcript when one is known and aligns
(engine.expression.phones.align), otherwise from phone decoding
(teacher.PhoneTeacher). Each clip is used several times with the same
augmentation as the synthetic data (level, tilt, reverb, noise, telephone
band, clipping) and random leading silence on the 10 ms grid.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.expression.learned_runtime import HOP, SAMPLE_RATE, LogMel, ModelConfig
from engine.expression.train.data import Example, augment
from engine.expression.train.teacher import SIL, PhoneTeacher, frame_labels


@dataclass
class RealClip:
    id: str
    path: Path
    language: str
    speaker: str
    transcript: str | None


def load_manifest(manifest: str | Path, media_root: str | Path, use: str = "train") -> list[RealClip]:
    """Speech clips of the manifest with the given use whose files exist under media_root."""
    from engine.expression.evaluate import read_manifest

    rows = read_manifest(manifest)
    out = []
    for r in rows:
        if r.get("kind") != "speech" or r.get("use") != use:
            continue
        p = Path(media_root) / r["local"]
        if p.exists():
            out.append(RealClip(r["id"], p, r.get("language") or "unknown", r.get("speaker") or r["id"],
                                r.get("transcript")))
    return out


def provenance_of(clips: list[RealClip], manifest: str | Path) -> dict:
    """What the weights were trained on, stored in their config.json."""
    import hashlib

    from engine.expression.evaluate import load_audio

    minutes = sum(load_audio(c.path).size for c in clips) / SAMPLE_RATE / 60
    return {"manifest": Path(manifest).name,
            "manifest_sha256": hashlib.sha256(Path(manifest).read_bytes()).hexdigest(),
            "clips": [c.id for c in clips], "speakers": len({c.speaker for c in clips}),
            "minutes": round(minutes, 1), "languages": sorted({c.language for c in clips}),
            "labels": "pocketsphinx en-us: forced alignment of the transcript, else phone decoding"}


def clip_labels(x: np.ndarray, clip: RealClip, teacher: PhoneTeacher, log=None) -> tuple[np.ndarray, str]:
    """Per-10 ms viseme labels of a clip and how they were made ('aligned' or 'decoded')."""
    n = -(-x.size // HOP)
    if clip.transcript and clip.language.startswith("en"):
        from engine.expression.phones.align import AlignmentError, align

        try:
            phones = align(x, clip.transcript).phones
        except AlignmentError as exc:  # the clip keeps its audio; only its transcript is not trusted
            if log:
                log(f"  {clip.id}: alignment failed ({exc}); phone decoding instead")
        else:
            return frame_labels(phones, n), "aligned"
    return frame_labels(teacher.phones(x), n), "decoded"


def build_real(clips: list[RealClip], cfg: ModelConfig, copies: int = 4, seed: int = 7, log=print,
               cache: str | Path | None = None) -> list[Example]:
    """Labelled, augmented examples of every clip; cached as a pickle under ``cache`` (same clips and
    arguments -> same data)."""
    import hashlib
    import pickle

    key = hashlib.sha256(repr(([(c.id, c.transcript) for c in clips], copies, seed, cfg.n_mels)).encode())
    path = Path(cache) / f"real-{key.hexdigest()[:16]}.pkl" if cache else None
    if path and path.exists():
        if log:
            log(f"real speech from cache {path}")
        return pickle.loads(path.read_bytes())
    out = _build_real(clips, cfg, copies, seed, log)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


def _build_real(clips: list[RealClip], cfg: ModelConfig, copies: int, seed: int, log) -> list[Example]:
    from engine.expression.evaluate import load_audio

    teacher = PhoneTeacher()
    mel = LogMel(cfg)
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    out: list[Example] = []
    prev = None
    how: dict[str, int] = {}
    for c in clips:
        x = load_audio(c.path)
        if x.size < SAMPLE_RATE // 2:
            continue
        labels, kind = clip_labels(x, c, teacher, log)
        how[kind] = how.get(kind, 0) + 1
        for k in range(copies):
            lead = rnd.randint(0, 40)  # steps of leading silence
            xx = np.concatenate([np.zeros(lead * HOP, np.float32), x])
            lab = np.concatenate([np.full(lead, SIL, np.int64), labels])
            aug = xx * np.float32(10 ** (rnd.uniform(-30, -1) / 20) / (np.abs(xx).max() + 1e-9)) if k == 0 \
                else augment(xx, rng, prev)
            n = -(-aug.size // HOP)
            lab = np.concatenate([lab, np.full(max(0, n - lab.size), SIL, np.int64)])[:n]
            out.append(Example(mel.whole(aug.astype(np.float32)), lab, c.language))
        prev = x
    if log:
        mins = sum(len(e.labels) for e in out) / 6000
        log(f"  real speech: {len(clips)} clips x {copies} copies, {mins:.1f} min; labels {how}")
    return out
