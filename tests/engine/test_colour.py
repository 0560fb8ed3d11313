"""The torch RGB -> yuv420p conversion (colour.py) against ffmpeg's own conversion of the same frames, with the
encoder's filter (media.BT709_LIMITED) run by the real ffmpeg binary."""

import subprocess

import numpy as np
import pytest
import torch

from ltx_runtime.colour import rgb_to_yuv420p
from ltx_runtime.media import BT709_LIMITED, ffmpeg_executable

WIDTH, HEIGHT = 128, 72
LEVELS_APART = 1
"""swscale works in fixed point (14-bit intermediates, 12-bit filter taps): measured on these contents, every plane
is within one level of the float conversion (up to half the chroma samples of a smooth gradient one level off,
under 2 % of the luma). Each wrong conversion below is 14 or more levels off somewhere."""


def ffmpeg_yuv420p(rgb: np.ndarray, scale: str = BT709_LIMITED) -> np.ndarray:
    """[f, H, W, 3] rgb24 -> [f, H * W * 3 / 2] yuv420p, converted by ffmpeg's `scale` filter."""
    frames, height, width, _ = rgb.shape
    command = [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-i", "pipe:0", "-vf", scale, "-pix_fmt", "yuv420p", "-f", "rawvideo",
               "pipe:1"]  # fmt: skip
    out = subprocess.run(command, input=rgb.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(frames, -1)


def lavfi_frames(source: str, frames: int = 2) -> np.ndarray:
    command = [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
               f"{source}=size={WIDTH}x{HEIGHT}:rate=25", "-frames:v", str(frames), "-pix_fmt", "rgb24", "-f",
               "rawvideo", "pipe:1"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(frames, HEIGHT, WIDTH, 3).copy()


CONTENTS = {
    "edges and text (testsrc2)": lambda: lavfi_frames("testsrc2"),
    "fine detail (mandelbrot)": lambda: lavfi_frames("mandelbrot"),
    "noise": lambda: np.random.default_rng(0).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8),
}


def torch_yuv420p(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_yuv420p(torch.from_numpy(rgb).permute(3, 0, 1, 2)).numpy()


def plane_differences(a: np.ndarray, b: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> list[int]:
    """The largest difference in levels in the Y, U and V planes."""
    luma, chroma = height * width, height * width // 4
    bounds = [(0, luma), (luma, luma + chroma), (luma + chroma, luma + 2 * chroma)]
    return [int(np.abs(a[:, s:e].astype(int) - b[:, s:e].astype(int)).max()) for s, e in bounds]


@pytest.mark.parametrize("content", list(CONTENTS))
def test_the_conversion_is_ffmpegs_within_a_level(content):
    rgb = CONTENTS[content]()
    ours = torch_yuv420p(rgb)
    assert ours.shape == (len(rgb), HEIGHT * WIDTH * 3 // 2) and ours.dtype == np.uint8
    assert plane_differences(ours, ffmpeg_yuv420p(rgb)) <= [LEVELS_APART] * 3


def test_a_size_the_catalog_allows_with_a_ragged_chroma_edge():
    """200x104 (the tiny model's crop of 256x128): 52 chroma rows, not a multiple of the filter's reach."""
    rgb = np.random.default_rng(1).integers(0, 256, (1, 104, 200, 3), dtype=np.uint8)
    assert plane_differences(torch_yuv420p(rgb), ffmpeg_yuv420p(rgb), 104, 200) <= [LEVELS_APART] * 3


@pytest.mark.parametrize(
    "wrong",
    [
        "scale=out_color_matrix=bt601:out_range=tv",  # the BT.601 matrix
        "scale=out_color_matrix=bt709:out_range=pc",  # full range
        "scale=out_color_matrix=bt709:out_range=tv:out_v_chr_pos=0",  # chroma sited on the upper row
        "scale=out_color_matrix=bt709:out_range=tv:out_h_chr_pos=0",  # chroma sited on the left column
        "scale=out_color_matrix=bt709:out_range=tv:flags=bilinear",  # another vertical chroma filter
    ],
)
def test_the_bound_catches_a_wrong_conversion(wrong):
    """What the bound is worth: ffmpeg converting any other way is far more than a level from ours."""
    rgb = CONTENTS["edges and text (testsrc2)"]()
    assert max(plane_differences(torch_yuv420p(rgb), ffmpeg_yuv420p(rgb, wrong))) > 4 * LEVELS_APART


def test_the_float_levels_convert_as_their_uint8_frames():
    """The decode hands over float32 levels (0-255, whole numbers); the result is the uint8 frames'."""
    rgb = CONTENTS["noise"]()
    planes = torch.from_numpy(rgb).permute(3, 0, 1, 2)
    assert torch.equal(rgb_to_yuv420p(planes.float()), rgb_to_yuv420p(planes))


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even H and W"):
        rgb_to_yuv420p(torch.zeros(3, 1, 72, 127))
