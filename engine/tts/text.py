"""Speak text -> the sentences a backend says one at a time (the first plays while the rest are synthesised).

Plain UTF-8 text, or an SSML subset: <speak>, <p>, <s> (sentence breaks), <break time="300ms"/> (a pause),
<prosody rate="..."> (its text spoken at that rate times the request's); any other element's text is read as
plain text and a warning names the element. SSML that does not parse is read as plain text with its tags
removed, and a warning says so.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

MAX_SENTENCE_CHARS = 300  # longer sentences are cut at a comma or space: a sentence is one synthesis call
MAX_BREAK_S = 10.0
SUPPORTED = {"speak", "p", "s", "break", "prosody"}
# <prosody rate> keywords -> rate factor (1 = the request's speaking_rate)
RATE_WORDS = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")  # Latin: end mark + space; CJK: the end mark itself
_TAG = re.compile(r"<[^>]*>")


@dataclass
class Piece:
    text: str = ""  # a sentence to speak, or
    pause_s: float = 0.0  # a pause (SSML break)
    rate: float = 1.0  # times the request's speaking_rate (SSML prosody rate)


def pieces(text: str) -> tuple[list[Piece], list[str]]:
    """Text (plain or SSML) -> sentences and pauses, and warnings."""
    stripped = text.strip()
    if stripped.startswith("<speak"):
        try:
            root = ET.fromstring(stripped)
        except ET.ParseError as exc:
            plain = _TAG.sub(" ", stripped)
            return _sentences(plain), [f"text looks like SSML but does not parse ({exc}); it was read as plain "
                                       "text with its tags removed"]
        out: list[Piece] = []
        warnings: list[str] = []
        _walk(root, out, warnings, 1.0)
        return [p for p in out if p.text.strip() or p.pause_s > 0], warnings
    return _sentences(stripped), []


def _walk(el, out: list[Piece], warnings: list[str], rate: float) -> None:
    """One element and its tail. rate: the factor of the enclosing prosody (tails keep the parent's)."""
    tag = el.tag.split("}")[-1] if isinstance(el.tag, str) else ""
    inner = rate
    if tag == "break":
        out.append(Piece(pause_s=_break_seconds(el.get("time", ""), el.get("strength", ""), warnings)))
    else:
        if tag == "prosody":
            inner = rate * _prosody_rate(el.get("rate"), warnings)
            ignored = sorted(a for a in el.attrib if a != "rate")
            if ignored:
                _warn(warnings, f"SSML <prosody> {', '.join(ignored)} is not applied (only rate is)")
        elif tag and tag not in SUPPORTED:
            _warn(warnings, f"SSML <{tag}> is not supported; its text was read as plain text")
        if el.text and el.text.strip():
            out.extend(_sentences(el.text, inner))
        for child in el:
            _walk(child, out, warnings, inner)
    if el.tail and el.tail.strip():
        out.extend(_sentences(el.tail, rate))


def _warn(warnings: list[str], text: str) -> None:
    if text not in warnings:
        warnings.append(text)


def _prosody_rate(value: str | None, warnings: list[str]) -> float:
    """<prosody rate>: a keyword, a percentage of the normal rate ("150%", "+20%", "-25%") or a factor
    ("1.5"). Anything else is read as 1 with a warning."""
    v = (value or "").strip().lower()
    if not v:
        return 1.0
    if v in RATE_WORDS:
        return RATE_WORDS[v]
    m = re.fullmatch(r"([+-]?)([0-9]+(?:\.[0-9]*)?)(%?)", v)
    if m:
        sign, num, pct = m.group(1), float(m.group(2)), m.group(3)
        if pct and sign:  # relative change: "+20%" = 1.2
            f = 1.0 + (num if sign == "+" else -num) / 100.0
        elif pct:  # "150%" of the normal rate
            f = num / 100.0
        else:
            f = num
        if f > 0:
            return f
    _warn(warnings, f"SSML <prosody rate={value!r}> is not a keyword (x-slow..x-fast), a percentage or a "
                    "positive number; the normal rate was used")
    return 1.0


def _break_seconds(time: str, strength: str, warnings: list[str]) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)\s*", time)
    if m:
        try:
            return min(MAX_BREAK_S, float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0))
        except ValueError:
            pass
    if time:
        warnings.append(f"SSML <break time={time!r}> is not '300ms' or '1.5s'; a 0.5 s pause was used")
    return {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}.get(strength, 0.5)


def _sentences(text: str, rate: float = 1.0) -> list[Piece]:
    out = []
    for s in _END.split(" ".join(text.split())):
        while len(s) > MAX_SENTENCE_CHARS:
            cut = max(s.rfind(", ", 0, MAX_SENTENCE_CHARS), s.rfind("，", 0, MAX_SENTENCE_CHARS))
            if cut <= 0:
                cut = s.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut + 1 if cut > 0 else MAX_SENTENCE_CHARS
            out.append(Piece(s[:cut].strip(), rate=rate))
            s = s[cut:].strip()
        if s.strip():
            out.append(Piece(s.strip(), rate=rate))
    return out
