"""RGB -> planar yuv420p in torch, as ffmpeg converts it in the encoder's filter (media.BT709_LIMITED), so the
conversion can run on the GPU the frames were decoded on (the `gpu_colour` lever, speed.py).

What swscale does by default for rgb24 -> yuv420p with `scale=out_color_matrix=bt709:out_range=tv` (measured
against the bundled ffmpeg by tests/engine/test_colour.py):
- luma: Y = 16 + 219 x (0.2126 R + 0.7152 G + 0.0722 B) / 255, rounded;
- chroma, horizontally: each pair of columns averaged (swscale's `_half` RGB readers), so a chroma sample sits
  between its two columns;
- chroma, vertically: the scaler's default bicubic filter (B = 0, C = 0.6) stretched over the two rows a chroma
  sample covers, centred between them (8 taps, the edge rows repeated beyond the frame);
- rounded half up and clipped to 0-255 (the bicubic filter's negative lobes may overshoot 16-240 a little).

Fixed-point rounding inside swscale leaves the odd sample one level apart; the test bounds that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KR, KB = 0.2126, 0.0722
"""BT.709 luma weights of red and blue (green: 1 - KR - KB)."""
KG = 1 - KR - KB
_LUMA, _CHROMA = 219 / 255, 224 / 255
"""Limited range: luma spans 16-235, chroma 16-240."""
_U = (-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5)
_V = (0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR)))
_BICUBIC_C = 0.6
"""swscale's default bicubic parameters: B = 0, C = 0.6 (a Keys kernel with a = -0.6)."""


def _bicubic(distance: float) -> float:
    x, a = abs(distance), -_BICUBIC_C
    if x < 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


# Rows 2j - 3 ... 2j + 4 for chroma row j, whose centre is 2j + 0.5: distances 3.5 ... 0.5 source rows, that is
# 1.75 ... 0.25 in the kernel's units (stretched by the factor 2 of the subsampling).
_VERTICAL_TAPS = [_bicubic((row - 3.5) / 2) for row in range(8)]
_VERTICAL_TAPS = [tap / sum(_VERTICAL_TAPS) for tap in _VERTICAL_TAPS]


def rgb_to_yuv420p(rgb: torch.Tensor) -> torch.Tensor:
    """RGB planes [3, f, H, W] holding 0-255 (uint8 or the float levels before the cast) -> yuv420p frames
    [f, H * W * 3 / 2] uint8: each frame's Y plane, then U, then V, as ffmpeg's rawvideo yuv420p. H and W even."""
    channels, frames, height, width = rgb.shape
    if channels != 3 or height % 2 or width % 2:
        raise ValueError(f"yuv420p needs RGB planes [3, f, H, W] with an even H and W, got {tuple(rgb.shape)}")
    rgb = rgb.float()
    red, green, blue = rgb
    luma = (red * KR + green * KG + blue * KB).mul_(_LUMA).add_(16)
    pairs = rgb[..., 0::2] + rgb[..., 1::2]  # each pair of columns, summed (halved with the matrix below)
    u = (pairs[0] * _U[0] + pairs[1] * _U[1] + pairs[2] * _U[2]).mul_(_CHROMA / 2)
    v = (pairs[0] * _V[0] + pairs[1] * _V[1] + pairs[2] * _V[2]).mul_(_CHROMA / 2)
    chroma = torch.stack([u, v]).view(2 * frames, 1, height, width // 2)
    taps = torch.tensor(_VERTICAL_TAPS, dtype=chroma.dtype, device=chroma.device).view(1, 1, 8, 1)
    chroma = F.conv2d(F.pad(chroma, (0, 0, 3, 3), mode="replicate"), taps, stride=(2, 1)).add_(128)
    planes = [luma.reshape(frames, -1), *chroma.view(2, frames, -1)]
    return torch.cat(planes, dim=1).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
