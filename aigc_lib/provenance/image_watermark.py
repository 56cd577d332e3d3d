"""Invisible image watermarks with ``invisible-watermark`` and the attacks that test them (chapter 11).

Stable Diffusion's reference ``txt2img`` script hides the 17 bytes ``b"StableDiffusionV1"`` (136 bits) in
every image it writes, with ``WatermarkEncoder().set_watermark("bytes", ...)`` and
``encode(bgr, "dwtDct")``: a haar DWT of the U colour channel, 4x4 blocks of its approximation band, and one
bit per block written by quantising the block's largest coefficient (after its first; version 0.2 applies no
DCT to the block despite the name). ``"dwtDctSvd"`` quantises the largest singular value of each block's DCT
instead, which JPEG disturbs less. Decoding reads every block, averages the votes per bit and thresholds them.

What is computed here: :func:`embed_watermark` and :func:`extract_watermark` (RGB uint8 in and out; the
library's BGR convention stays inside), :func:`bit_accuracy` against the payload, :func:`match_p_value` (how
likely that many matching bits are by chance), a dict :data:`ATTACKS` of the edits an image meets on its way
(PNG, JPEG, resizing, cropping, noise) and :func:`robustness_table` that runs them all.
``invisible-watermark`` refuses images smaller than 256x256 pixels (by area); the course's 32 px images must
be upscaled first (``upscale_to=256``), and this module says so instead of failing deep inside the library.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from aigc_lib.provenance.labels import ImageLike, to_pil_image

__all__ = [
    "ATTACKS", "METHODS", "MIN_PIXELS", "SD_PAYLOAD", "bit_accuracy", "embed_watermark", "extract_watermark",
    "match_p_value", "payload_bits", "robustness_table", "to_rgb_uint8", "upscale",
]

METHODS = ("dwtDct", "dwtDctSvd")
MIN_PIXELS = 256 * 256  # invisible-watermark's rule: height * width >= 256 * 256
SD_PAYLOAD = b"StableDiffusionV1"  # what Stable Diffusion's scripts/txt2img.py embeds (136 bits)


def to_rgb_uint8(image: ImageLike) -> np.ndarray:
    """One image as an (H, W, 3) uint8 RGB array; tensors read in [-1, 1] as the course writes them
    (notebook 11)."""
    return np.asarray(to_pil_image(image).convert("RGB"), dtype=np.uint8).copy()


def _as_list(images: ImageLike | Sequence[ImageLike]) -> list[np.ndarray]:
    """A batch (list, (N, C, H, W) tensor, (N, H, W, 3) array) or one image, as a list of RGB uint8 arrays."""
    if isinstance(images, (list, tuple)):
        return [to_rgb_uint8(im) for im in images]
    if isinstance(images, Image.Image):
        return [to_rgb_uint8(images)]
    batch_tensor = hasattr(images, "dim") and images.dim() == 4
    if batch_tensor or (isinstance(images, np.ndarray) and images.ndim == 4):
        return [to_rgb_uint8(im) for im in images]
    return [to_rgb_uint8(images)]


def upscale(images: ImageLike | Sequence[ImageLike], size: int = 256,
            resample: int = Image.Resampling.BICUBIC) -> list[np.ndarray]:
    """Resize every image to ``size`` x ``size`` (RGB uint8), as a small generator's output must be before
    ``invisible-watermark`` accepts it (notebook 11)."""
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}.")
    return [np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in _as_list(images)]


def payload_bits(payload: bytes) -> np.ndarray:
    """The payload's bits, most significant first, as a (8 * len(payload),) uint8 array (notebook 11)."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) == 0:
        raise ValueError(f"payload must be non-empty bytes such as b'StableDiffusionV1', got {payload!r}; "
                         "encode text first with 'text'.encode('utf-8').")
    return np.unpackbits(np.frombuffer(bytes(payload), dtype=np.uint8))


def _check(images: list[np.ndarray], method: str, upscale_to: int | None) -> list[np.ndarray]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}; 'dwtDct' is what Stable "
                         "Diffusion's txt2img script uses, 'dwtDctSvd' is slower and survives JPEG better.")
    if not images:
        raise ValueError("no images given; pass one image or a batch of them.")
    if upscale_to is not None:
        images = upscale(images, upscale_to)
    small = [im.shape[:2] for im in images if im.shape[0] * im.shape[1] < MIN_PIXELS]
    if small:
        h, w = small[0]
        raise ValueError(f"invisible-watermark needs images of at least 256x256 pixels (height * width >= "
                         f"{MIN_PIXELS}), got {h}x{w}; pass upscale_to=256 (or resize the images yourself) "
                         "to mark a small generator's output.")
    return images


def embed_watermark(images: ImageLike | Sequence[ImageLike], payload: bytes = SD_PAYLOAD,
                    method: str = "dwtDct", *, upscale_to: int | None = None) -> list[np.ndarray]:
    """Hide ``payload`` in every image with invisible-watermark's ``method``; RGB uint8 out (notebook 11).

    ``upscale_to`` first resizes the images to that square size (bicubic); without it an image under 256x256
    pixels raises ValueError.
    """
    from imwatermark import WatermarkEncoder

    bits = payload_bits(payload)  # validates the payload
    images = _check(_as_list(images), method, upscale_to)
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", bits.tolist())
    out = []
    for rgb in images:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the library works in OpenCV's BGR order
        out.append(np.ascontiguousarray(encoder.encode(bgr, method)[:, :, ::-1]))
    return out


def extract_watermark(images: ImageLike | Sequence[ImageLike], n_bits: int, method: str = "dwtDct", *,
                      upscale_to: int | None = None) -> np.ndarray:
    """The ``n_bits`` bits read from every image: an (N, n_bits) uint8 array of 0/1 (notebook 11).

    Any image yields bits, marked or not: an unmarked one gives about half of them right by chance, which is
    why a decision needs :func:`bit_accuracy` and :func:`match_p_value`.
    """
    from imwatermark import WatermarkDecoder

    if not isinstance(n_bits, int) or n_bits < 1:
        raise ValueError(f"n_bits must be a positive int (136 for b'StableDiffusionV1'), got {n_bits!r}.")
    images = _check(_as_list(images), method, upscale_to)
    decoder = WatermarkDecoder("bits", n_bits)
    return np.stack([np.asarray(decoder.decode(np.ascontiguousarray(rgb[:, :, ::-1]), method), dtype=np.uint8)
                     for rgb in images])  # (N, n_bits)


def bit_accuracy(decoded: np.ndarray, payload: bytes) -> np.ndarray:
    """Share of bits equal to the payload's, per image: (N,) floats; 0.5 is chance (notebook 11)."""
    bits = payload_bits(payload)
    decoded = np.atleast_2d(np.asarray(decoded))
    if decoded.shape[-1] != bits.size:
        raise ValueError(f"decoded rows have {decoded.shape[-1]} bits but the payload has {bits.size} "
                         f"({len(payload)} bytes); extract with n_bits=8 * len(payload).")
    return (decoded == bits).mean(axis=-1)


def match_p_value(n_match: int, n_bits: int) -> float:
    """P(at least ``n_match`` of ``n_bits`` fair coin flips match): the chance an unmarked image looks that
    marked, P = sum_{k >= m} C(n, k) / 2^n (notebook 11)."""
    if not 0 <= n_match <= n_bits or n_bits < 1:
        raise ValueError(f"need 0 <= n_match <= n_bits and n_bits >= 1, got n_match={n_match}, "
                         f"n_bits={n_bits}.")
    return sum(math.comb(n_bits, k) for k in range(n_match, n_bits + 1)) / 2.0 ** n_bits


def _encode_decode(rgb: np.ndarray, fmt: str, **kwargs) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **kwargs)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _resize_round_trip(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((max(1, round(w * factor)), max(1, round(h * factor))),
                                        Image.Resampling.BICUBIC)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))


def _crop_resize(rgb: np.ndarray, keep: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    dh, dw = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
    return np.asarray(Image.fromarray(rgb[dh:h - dh, dw:w - dw]).resize((w, h), Image.Resampling.BICUBIC))


def _noise(rgb: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, rgb.shape)
    return np.clip(rgb.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


# Each attack maps one (H, W, 3) uint8 RGB image to another of the same size, as the image's travels would.
ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "png": lambda x: _encode_decode(x, "PNG"),  # lossless: the pixels come back exactly
    "jpeg_q90": lambda x: _encode_decode(x, "JPEG", quality=90),
    "jpeg_q75": lambda x: _encode_decode(x, "JPEG", quality=75),  # PIL's default quality
    "jpeg_q50": lambda x: _encode_decode(x, "JPEG", quality=50),
    "resize_0.5": lambda x: _resize_round_trip(x, 0.5),  # down to half size and back up (bicubic)
    "crop_0.9": lambda x: _crop_resize(x, 0.9),  # keep the central 90%, resize back to the original size
    "noise_5": lambda x: _noise(x, 5.0),  # Gaussian noise, sigma 5 grey levels
}


def robustness_table(images: Sequence[np.ndarray], payload: bytes = SD_PAYLOAD,
                     methods: Sequence[str] = METHODS,
                     attacks: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
                     ) -> dict[str, dict[str, float]]:
    """Mean bit accuracy after each attack, per method: ``{method: {"none": .., attack: ..}}`` (notebook 11).

    ``images`` must already be large enough (see :func:`upscale`); each is marked with ``method``, attacked,
    and read back. ``"none"`` is the marked image read straight away.
    """
    attacks = ATTACKS if attacks is None else attacks
    n_bits = payload_bits(payload).size
    table: dict[str, dict[str, float]] = {}
    for method in methods:
        marked = embed_watermark(list(images), payload, method)
        row = {"none": float(bit_accuracy(extract_watermark(marked, n_bits, method), payload).mean())}
        for name, attack in attacks.items():
            attacked = [attack(im) for im in marked]
            row[name] = float(bit_accuracy(extract_watermark(attacked, n_bits, method), payload).mean())
        table[method] = row
    return table
