"""The font letters are set in: one font for every language, which must cover Chinese.

A PDF viewer shows boxes for a glyph the embedded font lacks, and a print house prints
them, so the font is chosen and checked once, when the worker starts: the configured file
(DUECOURSE_LETTER_FONT), else Noto Sans SC as shipped on PyPI (pylopdf-fonts-zh-cn), else
a CJK font a Debian package installs. Noto Sans SC covers Latin too, so English letters
use the same font and a name such as "Zoë" or "Łukasz" prints as written.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont, TTLibError

FONT_SETTING = "DUECOURSE_LETTER_FONT"

PROBE = "尊敬的您好借款还款逾期催告函商定Dear Loan 0123456789¥$€"
"""Characters every zh-CN and en letter uses: a font lacking one cannot set letters."""

SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # fonts-noto-cjk
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
)


class FontMissing(LookupError):
    """No usable font for letters; the message names the setting that fixes it."""


@dataclass(frozen=True)
class LetterFont:
    """A font file, checked to cover Chinese and Latin letters."""

    path: Path
    covered: frozenset[int]

    def missing(self, text: str) -> int:
        """How many distinct printable characters of `text` the font has no glyph for."""
        return len({ch for ch in text if _printable(ch) and ord(ch) not in self.covered})


def _printable(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch)[0] != "C"


def _packaged() -> Path | None:
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return None
    return Path(pylopdf_fonts_zh_cn.sans_path())


@lru_cache(maxsize=8)
def _load(path: Path) -> LetterFont:
    """Read the font's character map (cached: a worker checks its font once)."""
    try:
        font = TTFont(str(path), lazy=True, fontNumber=0)
        covered = frozenset((font.getBestCmap() or {}).keys())
        font.close()
    except (OSError, TTLibError, AssertionError) as err:
        raise FontMissing(f"{FONT_SETTING}={path} is not a TrueType or OpenType font "
                          f"({type(err).__name__}); point it at a .ttf/.otf/.ttc file") from None
    return LetterFont(path=path, covered=covered)


def _usable(path: Path) -> LetterFont:
    font = _load(path)
    lacking = font.missing(PROBE)
    if lacking:
        raise FontMissing(f"{FONT_SETTING}={path} has no glyph for {lacking} of the Chinese "
                          "and Latin characters letters use; choose a CJK font such as "
                          "Noto Sans SC")
    return font


def locate_font(configured: str | Path | None = None) -> LetterFont:
    """The font letters are set in, or FontMissing saying how to provide one."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FontMissing(f"{FONT_SETTING}={path}: no such font file")
        return _usable(path)
    packaged = _packaged()
    candidates = [p for p in (packaged, *map(Path, SYSTEM_FONTS)) if p and p.is_file()]
    if not candidates:
        raise FontMissing(f"no font for Chinese letters: install pylopdf-fonts-zh-cn (Noto "
                          f"Sans SC) or set {FONT_SETTING} to a CJK .ttf/.otf file")
    return _usable(candidates[0])
