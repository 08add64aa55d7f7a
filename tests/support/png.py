"""Checks that a file is a real, decodable PNG with something drawn in it."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from matplotlib import image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk; AssertionError if the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def pixels(path: Path) -> np.ndarray:
    """RGB(A) floats in 0..1, decoded (so a truncated or corrupt file fails here)."""
    return np.asarray(image.imread(path))


def red_share(path: Path) -> float:
    """Fraction of clearly red pixels (anti-aliased edges of a red line included): red at
    least 0.35 and at least twice green and blue."""
    rgb = pixels(path)[..., :3]
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float(((red >= 0.35) & (red >= 2 * green) & (red >= 2 * blue)).mean())


def assert_real_png(path: Path, *, min_bytes: int = 20_000) -> None:
    """A PNG of nontrivial size that decodes to many distinct colours (text, lines, panels),
    not a blank canvas."""
    assert path.is_file(), f"{path} was not written"
    assert path.stat().st_size >= min_bytes, f"{path} is only {path.stat().st_size} bytes"
    width, height = png_size(path)
    assert width >= 800, (width, height)
    assert height >= 300, (width, height)
    data = pixels(path)
    assert data.shape[:2] == (height, width)
    rgb = (data[..., :3] * 255).astype(np.uint32)
    distinct = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(distinct) > 50, f"only {len(distinct)} colours: nothing much is drawn"
