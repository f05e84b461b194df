"""Pictures of frames for people to look at: a grid of clips, written as an upscaled PNG (the
training runs' sample grids and `genie eval --save`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def frame_grid(rows: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Stack rows of frames (each uint8 [T,H,W,3]) into one uint8 image with padding."""
    t, h, w, _ = rows[0].shape
    grid = np.full((len(rows) * (h + pad) + pad, t * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, frame in enumerate(row):
            y, x = pad + r * (h + pad), pad + i * (w + pad)
            grid[y : y + h, x : x + w] = frame
    return grid


def save_png(path: Path, rgb: np.ndarray, scale: int = 2) -> None:
    """Write an RGB uint8 image as PNG, upscaled by nearest neighbour for visibility."""
    path.parent.mkdir(parents=True, exist_ok=True)
    big = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
