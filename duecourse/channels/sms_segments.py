"""How long an SMS is and how many parts it goes out in (3GPP TS 23.038), for the ledger.

A carrier sends text in GSM-7 when every character is in the GSM default alphabet or its
extension table (an extension character costs two septets: an escape and itself), else in
UCS-2 (really UTF-16: a character outside the BMP costs two code units). One part holds
160 septets or 70 units; a longer text is split into parts of 153 or 67 (the rest of each
part carries the reassembly header), and a part never splits an escape pair or a
surrogate pair. So a Chinese reminder of 71 characters is two parts, not one: the count
is what the lender is billed for and what the ledger shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
"""The GSM 7-bit default alphabet, less the escape code itself."""
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters reached through the escape code: two septets each."""

LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
"""Units in a single part, and in each part of a concatenated message."""


@dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character has a GSM-7 code, else UCS-2."""
    gsm = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(ch in gsm for ch in text) else "UCS-2"


def _cost(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def segments(text: str) -> SegmentCount:
    """The encoding, length in units and number of parts `text` is sent in (an empty text
    still goes as one part)."""
    encoding = encoding_of(text)
    costs = [_cost(ch, encoding) for ch in text]
    units = sum(costs)
    single, multi = LIMITS[encoding]
    if units <= single:
        return SegmentCount(encoding, units, 1)
    parts, used = 1, 0
    for cost in costs:  # greedy, never splitting a character's units across parts
        if used + cost > multi:
            parts, used = parts + 1, 0
        used += cost
    return SegmentCount(encoding, units, parts)
