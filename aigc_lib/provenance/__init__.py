"""Provenance of generated content (chapter 11): watermarks that mark text as machine-written.

- :mod:`~aigc_lib.provenance.watermark`: the green-list watermark of Kirchenbauer et al. (2023), a logits
  processor for ``model.generate`` and its z-test detector, both equal to transformers' implementation.
- :mod:`~aigc_lib.provenance.labels`: content labels for generated images (the visible "AI生成" label and the
  metadata label that China's labelling Measures and the EU AI Act, Art. 50(2), ask for), and model cards.

Every public name is re-exported here, so notebooks write ``provenance.GreenListWatermark``.
"""
from aigc_lib.provenance.labels import (
    CJK_FONT_CANDIDATES,
    FALLBACK_LABEL_TEXT,
    LABEL_JSON_KEY,
    ContentLabel,
    ImageLike,
    add_visible_label,
    find_label_font,
    model_card,
    pixel_sha256,
    read_png_label,
    save_labeled_png,
    strip_metadata,
    to_pil_image,
)
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
    "CJK_FONT_CANDIDATES",
    "DEFAULT_HASHING_KEY",
    "FALLBACK_LABEL_TEXT",
    "LABEL_JSON_KEY",
    "SEEDING_SCHEMES",
    "ContentLabel",
    "GreenListDetector",
    "GreenListLogitsProcessor",
    "GreenListWatermark",
    "ImageLike",
    "WatermarkScore",
    "add_visible_label",
    "find_label_font",
    "green_list",
    "greenlist_size",
    "model_card",
    "pixel_sha256",
    "read_png_label",
    "save_labeled_png",
    "strip_metadata",
    "to_pil_image",
    "watermark_p_value",
    "watermark_z_score",
]
