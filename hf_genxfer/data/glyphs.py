"""The built-in "glyphs" corpus: the 62 characters A-Z, a-z, 0-9 rendered from the fonts that ship with matplotlib.

Class = character, fonts are the domains: a font-transfer benchmark pretrains on most fonts and few-shot transfers to a
held-out one. Every image carries a small seeded jitter of scale and position, so the corpus is deterministic per seed.
"""

from __future__ import annotations

import math
import string
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

# Label = index in this string.
GLYPH_CHARACTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits

# Fonts are sized so that capitals ("H") are half the image tall, or smaller where the font's largest glyph (a bold
# italic "W") would span more than 3/4 of the image: with +10% scale jitter and a 2/32 shift it then stays inside.
CAP_HEIGHT = 0.5
GLYPH_EXTENT = 0.75
SCALE_JITTER = 0.10  # scale factor drawn uniformly in [1 - j, 1 + j]
SHIFT_JITTER = 2 / 32  # shift drawn uniformly in [-s, s] * size pixels, per axis (±2 px at 32x32)
# Glyphs are drawn this many times larger and then downsampled: antialiased and with sub-pixel jitter.
SUPERSAMPLING = 4
# A character counts as visible when at least this many pixels of its unjittered 32x32 render are at least half white.
MIN_VISIBLE_PIXELS = 4


def matplotlib_font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _glyph_names_match(path: Path) -> bool:
    """
    Whether the font's Unicode character map sends each of the 62 characters to a glyph named after that character.

    Matplotlib's TeX (BaKoMa) fonts map code points by position in TeX's own encodings, not by meaning: cmsy10 and
    cmex10 send letters to math symbols ("a" -> turnstileright), cmmi10 sends digits to old-style figures
    ("0" -> zerooldstyle, which is a small "o"), and LastResort draws one placeholder box for every character. Their
    glyphs render visibly, so a pixel check alone would keep them; the glyph names (Adobe Glyph List) tell.
    """
    from fontTools.agl import toUnicode
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        character_map = font.getBestCmap() or {}
        names = [character_map.get(ord(character)) for character in GLYPH_CHARACTERS]
    return all(name is not None and toUnicode(name) == char for name, char in zip(names, GLYPH_CHARACTERS))


def _short_name(path: Path) -> str:
    """
    The file name without suffix ("DejaVuSans-Bold", "cmr10"), or the PostScript name where the file name abbreviates
    it ("STIXGeneralBol.ttf" -> "STIXGeneral-Bold").
    """
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        name = font["name"].getDebugName(6)
    if not name or name.lower() == path.stem.lower() or not name.replace("-", "").isalnum():
        return path.stem
    return name


@lru_cache(maxsize=1)
def _font_paths() -> dict[str, Path]:
    """Short name -> TTF file, for the bundled fonts that draw all 62 characters; sorted by name."""
    fonts = {}
    for path in sorted(matplotlib_font_dir().glob("*.ttf")):
        # Fonts without the characters (DejaVu*Display, STIXNonUni*, STIXSiz*: symbols and size variants) or with
        # other glyphs in their place (cmex10, cmsy10, cmmi10, LastResort) are left out.
        if not _glyph_names_match(path):
            continue
        name = _short_name(path)
        fonts.setdefault(name, path)
    # Then every character must leave ink at the corpus' resolution: a font whose glyphs are empty outlines is out.
    visible = {
        name: path
        for name, path in fonts.items()
        if all(
            (np.asarray(_render(character, str(path), 32, None)) >= 128).sum() >= MIN_VISIBLE_PIXELS
            for character in GLYPH_CHARACTERS
        )
    }
    return dict(sorted(visible.items(), key=lambda item: item[0].lower()))


def available_glyph_fonts() -> list[str]:
    """
    The short names of matplotlib's bundled fonts that draw all 62 characters visibly: DejaVu Sans, Sans Mono and
    Serif with their bold and oblique/italic variants, STIXGeneral (regular, bold, italic, bold italic) and the
    Computer Modern fonts cmb10, cmr10, cmss10, cmti10 and cmtt10.
    """
    return list(_font_paths())


def _font_path(font: str) -> Path:
    """A short name from `available_glyph_fonts()`, or a path to a TrueType file."""
    fonts = _font_paths()
    if font in fonts:
        return fonts[font]
    if Path(font).is_file():
        return Path(font)
    raise ValueError(f"Unknown glyph font {font!r}: use a TTF file or one of {', '.join(fonts)}.")


@lru_cache(maxsize=64)
def _font_scale(path: str) -> float:
    """The font size, in units of the image size, that gives the font's glyphs the size of CAP_HEIGHT and GLYPH_EXTENT."""
    reference = 100.0
    font = ImageFont.truetype(path, reference)
    extents = []
    for character in GLYPH_CHARACTERS:
        left, top, right, bottom = font.getbbox(character)
        extents.append(max(right - left, bottom - top))
    _, top, _, bottom = font.getbbox("H")
    return reference * min(CAP_HEIGHT / (bottom - top), GLYPH_EXTENT / max(extents))


# One supersampled canvas per (character, font, size): some 27 KB each at 32x32, 35 MB for every font's glyphs.
@lru_cache(maxsize=4096)
def _supersampled_glyph(character: str, path: str, size: int) -> PILImage.Image:
    """
    The unjittered glyph, SUPERSAMPLING times larger, centred by its bounding box on a canvas just large enough for
    the most zoomed-out, most shifted view of it (a resize box may not leave the image).
    """
    font = ImageFont.truetype(path, _font_scale(path) * size * SUPERSAMPLING)
    reach = (size / 2 + SHIFT_JITTER * size) * SUPERSAMPLING / (1 - SCALE_JITTER)
    canvas_size = 2 * math.ceil(reach) + 2
    canvas = PILImage.new("L", (canvas_size, canvas_size), 0)
    left, top, right, bottom = font.getbbox(character)
    origin = (canvas_size / 2 - (left + right) / 2, canvas_size / 2 - (top + bottom) / 2)
    ImageDraw.Draw(canvas).text(origin, character, font=font, fill=255)
    return canvas


def render_glyph(
    character: str, font: str, size: int = 32, jitter_seed: int | Sequence[int] | None = None
) -> PILImage.Image:
    """
    Renders `character` in `font` (a name from `available_glyph_fonts()` or a TTF path) as a white-on-black grey
    ("L") `size`x`size` image, centred by the glyph's bounding box. Fonts are scaled so that capitals are half the image
    tall (less where the font's widest glyph would not fit); within a font, glyphs keep their relative sizes, so "o"
    stays smaller than "O".

    With `jitter_seed` (an int or a sequence of ints for `numpy.random.default_rng`) the glyph is scaled by up to ±10%
    and shifted by up to ±2 px (at 32x32, proportionally at other sizes) in each direction; `None` gives no jitter.
    """
    if len(character) != 1:
        raise ValueError(f"character must be a single character; got {character!r}.")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels; got {size}.")
    return _render(character, str(_font_path(font)), size, jitter_seed)


def _render(character: str, path: str, size: int, jitter_seed: int | Sequence[int] | None) -> PILImage.Image:
    canvas = _supersampled_glyph(character, path, size)
    scale, shift_x, shift_y = 1.0, 0.0, 0.0
    if jitter_seed is not None:
        rng = np.random.default_rng(jitter_seed)
        scale = 1.0 + rng.uniform(-SCALE_JITTER, SCALE_JITTER)
        shift_x, shift_y = rng.uniform(-SHIFT_JITTER, SHIFT_JITTER, size=2) * size
    # The output pixel at x maps to the canvas at centre + (x - size / 2 - shift) * SUPERSAMPLING / scale: resize
    # that box of the canvas down to the image (an antialiased, sub-pixel resample).
    centre, zoom = canvas.width / 2, SUPERSAMPLING / scale
    box = (
        centre - (size / 2 + shift_x) * zoom,
        centre - (size / 2 + shift_y) * zoom,
        centre + (size / 2 - shift_x) * zoom,
        centre + (size / 2 - shift_y) * zoom,
    )
    return canvas.resize((size, size), PILImage.Resampling.BICUBIC, box=box)


def _font_seed(font: str) -> int:
    """A stable number per font, so that a glyph's jitter does not depend on which other fonts are rendered."""
    return zlib.crc32(font.encode())


def glyphs_dataset(
    fonts: Sequence[str] | None = None, size: int = 32, samples_per_glyph: int = 1, seed: int = 0
) -> Dataset:
    """
    The 62 characters of each font (all of `available_glyph_fonts()` by default) as a Dataset with an `image` column
    (PIL, grey), a `label` column (ClassLabel named by the characters of `GLYPH_CHARACTERS`) and a `font` column.
    Each glyph is rendered `samples_per_glyph` times with jitter seeded by (seed, font, character, sample): the same
    arguments give the same images, and a glyph's images do not depend on the other fonts asked for.

    Rows are ordered by font, then character, then sample.
    """
    if samples_per_glyph < 1:
        raise ValueError(f"samples_per_glyph must be at least 1; got {samples_per_glyph}.")
    fonts = available_glyph_fonts() if fonts is None else list(fonts)
    if not fonts:
        raise ValueError("fonts must name at least one font; see available_glyph_fonts().")
    images, labels, font_names = [], [], []
    for font in fonts:
        font_seed = _font_seed(font)
        for label, character in enumerate(GLYPH_CHARACTERS):
            for sample in range(samples_per_glyph):
                images.append(render_glyph(character, font, size, jitter_seed=(seed, font_seed, label, sample)))
                labels.append(label)
                font_names.append(font)
    features = Features({"image": Image(), "label": ClassLabel(names=list(GLYPH_CHARACTERS)), "font": Value("string")})
    return Dataset.from_dict({"image": images, "label": labels, "font": font_names}, features=features)
