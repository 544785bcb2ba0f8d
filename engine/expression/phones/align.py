"""Forced alignment of a known transcript to 16 kHz mono speech with pocketsphinx 5 (US English).

Steps (docs/transcript.md):
1. normalise the text into dictionary words (lowercase, punctuation out, hyphens split, small numbers
   spelled out); words missing from CMUdict get an espeak-ng pronunciation (IPA -> ARPAbet) or are
   dropped with a warning;
2. word alignment of the whole clip (pocketsphinx's align search: an FSG of the words with optional
   silences), fed in 10 s pieces so its cost stays linear in the audio (measured: one call on 600 s took
   80 s, piecewise 16 s per 300 s);
3. phone alignment (the state-level second pass) per piece of at most PIECE_S, cut in the pauses between
   the words found in 2: that pass keeps a frames x states table, which fails outright on a 100 s clip;
4. checks that the transcript fits the audio (AlignmentError with a reason otherwise): the aligned speech
   must cover most of the audio's voiced frames, and its acoustic score per frame (pocketsphinx scores
   each frame relative to its best-matching senone, so 0 is a perfect fit) must not be far off: a wrong
   transcript forces phones the audio does not hold. Only gross mismatches are caught: a transcript
   with a few words changed still aligns (docs/transcript.md).
"""
from __future__ import annotations

import enum
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np

from engine.expression.phones.arpabet import ipa_to_arpabet
from engine.expression.phones.timing import Phone

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
FRAME_S = 0.01  # pocketsphinx's frame rate: 100 frames per second
FEED_SAMPLES = 4 * SAMPLE_RATE  # audio handed to the decoder per call (and between two heartbeat ticks)
PIECE_S = 20.0  # longest span given to the phone-level pass
# Failure thresholds (measured on 5 matched and 6 mismatched clip/text pairs, docs/transcript.md): matched
# clips cost 6..28 per frame and cover >= 0.86 of the voiced frames; another sentence cost 34..52 or
# covered <= 0.45.
MAX_COST_PER_FRAME = 45.0  # pocketsphinx's scaled log units, relative to each frame's best senone
MIN_VOICED_COVERAGE = 0.6
MAX_WORDS_PER_S = 8.0  # fast speech is ~4-5 words/s; more words than this cannot be in the audio
VOICED_OVER_FLOOR_DB = 15.0
ENGLISH = ("en", "en-us", "en-gb", "en-au", "en-ca", "en-in", "en-nz", "en-ie", "en-za")

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


class FailureReason(enum.Enum):
    NO_WORDS = "the transcript holds no words that can be pronounced"
    TOO_MANY_WORDS = "the transcript has far more words than the audio could hold"
    NO_RESULT = "the recogniser found no alignment of the transcript in the audio"
    LOW_COVERAGE = "the aligned words cover too little of the audio's speech"
    POOR_SCORE = "the audio does not sound like the transcript (acoustic score far too low)"


class AlignmentError(Exception):
    def __init__(self, reason: FailureReason, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(reason.value + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str


@dataclass
class Alignment:
    phones: list[Phone]  # ARPAbet labels ('SIL' in pauses), on the audio's clock
    words: list[Word]
    cost_per_frame: float  # acoustic cost per 10 ms against each frame's best senone (0 = perfect fit)
    coverage: float  # share of voiced frames inside aligned words
    warnings: list[str] = field(default_factory=list)


def is_english(language: str) -> bool:
    return (language or "en").strip().lower().replace("_", "-") in ENGLISH


def number_words(n: int) -> list[str]:
    """0..999999 as English words; larger numbers digit by digit."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    if n < 1000:
        return number_words(n // 100) + ["hundred"] + (number_words(n % 100) if n % 100 else [])
    if n < 1_000_000:
        return number_words(n // 1000) + ["thousand"] + (number_words(n % 1000) if n % 1000 else [])
    return [_ONES[int(d)] for d in str(n)]


def normalise(text: str) -> list[str]:
    """Transcript -> lowercase words: punctuation out (apostrophes inside words kept), hyphens and
    slashes split, digit runs spelled out."""
    out: list[str] = []
    for token in re.split(r"[\s\-/–—]+", text.lower()):
        for part in re.findall(r"\d+|[^\W\d_]+(?:'[^\W\d_]+)*", token):
            if not part.isdigit():
                out.append(part)
            else:  # int() refuses runs over 4300 digits; 7+ digits are read digit by digit anyway
                digits = part.lstrip("0") or "0"
                out.extend(number_words(int(digits)) if len(digits) <= 6 else [_ONES[int(d)] for d in digits])
    return out


def espeak_arpabet(word: str) -> list[str]:
    """A word's pronunciation from espeak-ng (en-us), as ARPAbet; [] if espeak-ng is missing or fails."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return []
    try:
        r = subprocess.run([exe, "-q", "--ipa", "--sep= ", "-v", "en-us", word], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ipa_to_arpabet(r.stdout) if r.returncode == 0 else []


_DECODER = None


def decoder():
    """One decoder per process (loading the model takes ~0.4 s); words added by add_word stay."""
    global _DECODER
    if _DECODER is None:
        from pocketsphinx import Decoder

        _DECODER = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False)
    return _DECODER


def pronounceable(words: list[str], warnings: list[str]) -> list[str]:
    """Words the decoder can pronounce; missing ones get an espeak-ng pronunciation or are dropped."""
    d = decoder()
    out = []
    for w in words:
        if d.lookup_word(w) is None:
            phones = espeak_arpabet(w)
            try:
                if not phones:
                    raise RuntimeError("no pronunciation")
                # update=False: the alignment search built next (set_align_text) reads the dictionary as it is;
                # update=True rebuilt the active search for every word, ~0.15 s each (a 100 kB transcript of
                # unknown words took an hour)
                d.add_word(w, " ".join(phones), False)
            except RuntimeError:
                warnings.append(f"transcript word {w!r} has no pronunciation; it was left out of the alignment")
                continue
        out.append(w)
    return out


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _decode(d, pcm: bytes, tick=None) -> None:
    d.start_utt()
    for i in range(0, len(pcm), 2 * FEED_SAMPLES):
        d.process_raw(pcm[i:i + 2 * FEED_SAMPLES], full_utt=False)
        if tick:
            tick()
    d.end_utt()


def _word_pass(words: list[str], pcm: bytes, tick=None) -> list[tuple[str, int, int]]:
    """(word, first frame, last frame) of each transcript word over the whole clip."""
    d = decoder()
    d.set_align_text(" ".join(words))
    _decode(d, pcm, tick)
    if d.hyp() is None:
        return []
    return [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame) for s in d.seg()
            if not s.word.startswith(("<", "[", "+"))]


def _pieces(segs: list[tuple[str, int, int]], n_frames: int) -> list[tuple[int, int, list[str]]]:
    """Cut the word sequence into spans of <= PIECE_S, each from the middle of the pause before its first
    word to the middle of the pause after its last: (first frame, end frame, words)."""
    out, cur, start = [], [], 0
    limit = int(PIECE_S / FRAME_S)
    for i, (w, s, e) in enumerate(segs):
        cur.append(w)
        nxt = segs[i + 1][1] if i + 1 < len(segs) else n_frames
        cut = (e + 1 + nxt) // 2
        long_pause = nxt - e > 15
        span = e - start
        if i + 1 == len(segs) or span > limit * 0.8 or (span > limit * 0.4 and long_pause):
            end = n_frames if i + 1 == len(segs) else cut
            out.append((start, end, cur))
            cur, start = [], end
    return out


def _phone_pass(words: list[str], pcm: bytes, offset: int, tick=None) -> tuple[list[Phone], list[Word], int]:
    """State-level alignment of one piece -> phones, words (on the clip's clock), summed acoustic score."""
    d = decoder()
    d.set_align_text(" ".join(words))
    _decode(d, pcm, tick)
    if d.hyp() is None:
        raise AlignmentError(FailureReason.NO_RESULT, f"at {offset * FRAME_S:.1f} s")
    d.set_alignment()
    _decode(d, pcm, tick)
    phones, out_words, score = [], [], 0
    for w in d.get_alignment():
        t0, t1 = (offset + w.start) * FRAME_S, (offset + w.start + w.duration) * FRAME_S
        score += w.score
        name = re.sub(r"\(\d+\)$", "", w.name)
        if not name.startswith(("<", "[", "+")):
            out_words.append(Word(t0, t1, name))
        for p in w:
            phones.append(Phone((offset + p.start) * FRAME_S, (offset + p.start + p.duration) * FRAME_S, p.name))
    return phones, out_words, score


def voiced_frames(audio: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: louder than the noise floor (10th percentile) by VOICED_OVER_FLOOR_DB and no more
    than 35 dB below the clip's 95th-percentile level (a rough speech mask)."""
    n = audio.shape[0] // 160
    if n == 0:
        return np.zeros(0, bool)
    e = 10.0 * np.log10((audio[:n * 160].reshape(n, 160) ** 2).mean(1) + 1e-10)
    floor, peak = np.percentile(e, 10), np.percentile(e, 95)
    return e > max(floor + VOICED_OVER_FLOOR_DB, peak - 35.0, -60.0)


def align(audio: np.ndarray, transcript: str, check: bool = True, tick=None) -> Alignment:
    """Force-align `transcript` to `audio` (16 kHz mono float32). Raises AlignmentError.

    ``tick``, if given, is called after every FEED_SAMPLES of audio decoded (well under a second of CPU):
    a worker passes its heartbeat, so a long clip's alignment never looks like a hung engine."""
    warnings: list[str] = []
    words = pronounceable(normalise(transcript), warnings)
    if not words:
        raise AlignmentError(FailureReason.NO_WORDS)
    audio = np.asarray(audio, np.float32).reshape(-1)
    seconds = audio.shape[0] / SAMPLE_RATE
    if len(words) > MAX_WORDS_PER_S * seconds + 3:  # checked before the search, which would grind on it
        raise AlignmentError(FailureReason.TOO_MANY_WORDS, f"{len(words)} words for {seconds:.1f} s")
    pcm = pcm16(audio)
    n_frames = audio.shape[0] // 160
    try:
        segs = _word_pass(words, pcm, tick)
        if not segs:
            raise AlignmentError(FailureReason.NO_RESULT)
        phones, out_words, score = [], [], 0
        for f0, f1, ws in _pieces(segs, n_frames):
            p, w, s = _phone_pass(ws, pcm[f0 * 320:f1 * 320], f0, tick)
            phones += p
            out_words += w
            score += s
    except RuntimeError as exc:  # pocketsphinx reports a failed search as RuntimeError
        raise AlignmentError(FailureReason.NO_RESULT, str(exc)) from None
    voiced = voiced_frames(audio)
    covered = np.zeros(voiced.shape[0], bool)
    for w in out_words:
        covered[int(w.start_s / FRAME_S):int(w.end_s / FRAME_S) + 1] = True
    coverage = float((voiced & covered[:voiced.shape[0]]).sum() / max(1, voiced.sum()))
    cost = -score / max(1, n_frames)
    result = Alignment(phones, out_words, float(cost), coverage, warnings)
    if check and coverage < MIN_VOICED_COVERAGE:
        raise AlignmentError(FailureReason.LOW_COVERAGE, f"{coverage:.0%} of the voiced frames")
    if check and cost > MAX_COST_PER_FRAME:
        raise AlignmentError(FailureReason.POOR_SCORE, f"cost {cost:.0f} per frame, over {MAX_COST_PER_FRAME:.0f}")
    return result
