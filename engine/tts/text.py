"""Speak text -> the sentences a backend says one at a time (the first plays while the rest are synthesised).

Plain UTF-8 text, or an SSML subset: <speak>, <p>, <s> (sentence breaks), <break time="300ms"/> (a pause)
and any other element's text (read as plain text). SSML that does not parse is read as plain text with its
tags removed, and a warning says so.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

MAX_SENTENCE_CHARS = 300  # longer sentences are cut at a comma or space: a sentence is one synthesis call
MAX_BREAK_S = 10.0
_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")  # Latin: end mark + space; CJK: the end mark itself
_TAG = re.compile(r"<[^>]*>")


@dataclass
class Piece:
    text: str = ""  # a sentence to speak, or
    pause_s: float = 0.0  # a pause (SSML break)


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
        _walk(root, out, warnings)
        return [p for p in out if p.text.strip() or p.pause_s > 0], warnings
    return _sentences(stripped), []


def _walk(el, out: list[Piece], warnings: list[str]) -> None:
    tag = el.tag.split("}")[-1]
    if tag == "break":
        out.append(Piece(pause_s=_break_seconds(el.get("time", ""), el.get("strength", ""), warnings)))
    else:
        if el.text and el.text.strip():
            out.extend(_sentences(el.text))
        for child in el:
            _walk(child, out, warnings)
    if el.tail and el.tail.strip():
        out.extend(_sentences(el.tail))


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


def _sentences(text: str) -> list[Piece]:
    out = []
    for s in _END.split(" ".join(text.split())):
        while len(s) > MAX_SENTENCE_CHARS:
            cut = max(s.rfind(", ", 0, MAX_SENTENCE_CHARS), s.rfind("，", 0, MAX_SENTENCE_CHARS))
            if cut <= 0:
                cut = s.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut + 1 if cut > 0 else MAX_SENTENCE_CHARS
            out.append(Piece(s[:cut].strip()))
            s = s[cut:].strip()
        if s.strip():
            out.append(Piece(s.strip()))
    return out
