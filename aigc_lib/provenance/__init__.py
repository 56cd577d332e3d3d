"""Provenance of generated content (chapter 11): watermarks that mark text as machine-written.

- :mod:`~aigc_lib.provenance.watermark`: the green-list watermark of Kirchenbauer et al. (2023), a logits
  processor for ``model.generate`` and its z-test detector, both equal to transformers' implementation.

Every public name is re-exported here, so notebooks write ``provenance.GreenListWatermark``.
"""
from aigc_lib.provenance.watermark import (
    DEFAULT_HASHING_KEY,
    SEEDING_SCHEMES,
    GreenListDetector,
    GreenListLogitsProcessor,
    GreenListWatermark,
    WatermarkScore,
    green_list,
    greenlist_size,
    watermark_p_value,
    watermark_z_score,
)

__all__ = [
    "DEFAULT_HASHING_KEY", "SEEDING_SCHEMES", "GreenListDetector", "GreenListLogitsProcessor",
    "GreenListWatermark", "WatermarkScore", "green_list", "greenlist_size", "watermark_p_value",
    "watermark_z_score",
]
