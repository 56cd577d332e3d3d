"""Images, text corpora, Q&A sets, splits and loaders: every source has an offline path; each load says so.

- :mod:`~aigc_lib.data.images`: digits (MNIST or rendered from fonts), torchvision sets, captioned shapes and
  your own image folders, as :class:`ImageData` (notebooks 02, 03, 08);
- :mod:`~aigc_lib.data.text`: the corpora in ``data/text``, ``stdlib-docs`` and tiny Shakespeare (notebook 04);
- :mod:`~aigc_lib.data.qa`: the Q&A sets in ``data/qa`` and the split by answer (notebooks 05, 06, 12);
- :mod:`~aigc_lib.data.loaders`: seeded splits and the trainer's resumable loaders (notebooks 03, 05);
- :mod:`~aigc_lib.data.common`: ``DATA_DIR`` and :class:`DatasetUnavailableError`.

Online sources (torchvision MNIST / Fashion-MNIST / CIFAR-10, tiny Shakespeare) are used when reachable or
cached in ``data/cache``; the offline sources are the project's own. Every random choice uses a local
``torch.Generator``: the same seed gives the same data everywhere. See data/README.md.
"""
from aigc_lib.data.common import DATA_DIR, DatasetUnavailableError
from aigc_lib.data.images import (
    DIGIT_FONTS,
    IMAGE_DATASETS,
    IMAGE_EXTENSIONS,
    ImageData,
    load_digits,
    load_image_dataset,
    load_image_folder,
    make_font_digits,
    make_shapes,
)
from aigc_lib.data.loaders import DatasetLoader, TensorLoader, infinite, split, split_indices
from aigc_lib.data.loaders import _EpochLoader as _EpochLoader  # part of the mini SD cache key
from aigc_lib.data.qa import QA_FIELDS, load_qa, qa_sets, qa_split, split_seen_answers
from aigc_lib.data.text import (
    MIN_DOCSTRING_CHARS,
    ONLINE_CORPORA,
    STDLIB_CORPUS,
    STDLIB_SKIP,
    load_text,
    text_corpora,
)
from aigc_lib.data.text import _stdlib_docstrings as _stdlib_docstrings  # part of the offline LM's cache key
from aigc_lib.shapes import COLORS, POSITIONS, SHAPES  # the shapes' vocabulary, next to make_shapes

__all__ = [
    "COLORS", "DATA_DIR", "DIGIT_FONTS", "IMAGE_DATASETS", "IMAGE_EXTENSIONS", "MIN_DOCSTRING_CHARS",
    "ONLINE_CORPORA", "POSITIONS", "QA_FIELDS", "SHAPES", "STDLIB_CORPUS", "STDLIB_SKIP", "DatasetLoader",
    "DatasetUnavailableError", "ImageData", "TensorLoader", "infinite", "load_digits", "load_image_dataset",
    "load_image_folder", "load_qa", "load_text", "make_font_digits", "make_shapes", "qa_sets", "qa_split",
    "split", "split_indices", "split_seen_answers", "text_corpora",
]
