"""Metrics for generated content: images (FD, coverage, Inception FID), the offline judge, and text.

- :mod:`~aigc_lib.metrics.image`: Frechet distance, class coverage, Inception FID (online);
- :mod:`~aigc_lib.metrics.judge`: the small classifier trained offline whose features and predictions give
  FD-digits, coverage and prompt accuracy, cached by data, settings and code;
- :mod:`~aigc_lib.metrics.text`: BLEU, ROUGE, distinct-n.

FD-digits, like any FD on our small classifier's features, is NOT comparable to published Inception FID
numbers, nor to the FD of another judge. Compare it only with the real-vs-real FD of two disjoint real sets
of the same size, measured with the same judge (:func:`real_baseline_fd`); FD depends on N, so keep N equal.
"""
from aigc_lib.metrics.image import (
    ClassStats,
    class_coverage,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    inception_fd,
    inception_features,
)
from aigc_lib.metrics.judge import (
    JUDGE_CACHE,
    JUDGE_STEPS,
    ClassifierConfig,
    ImageClassifier,
    ImageJudge,
    real_baseline_fd,
    shapes_judge,
)
from aigc_lib.metrics.text import bleu, distinct_n, rouge

__all__ = [
    "JUDGE_CACHE", "JUDGE_STEPS", "ClassStats", "ClassifierConfig", "ImageClassifier", "ImageJudge", "bleu",
    "class_coverage", "distinct_n", "feature_stats", "frechet_distance", "frechet_distance_from_stats",
    "inception_fd", "inception_features", "real_baseline_fd", "rouge", "shapes_judge"
]
