"""Metrics for generated content: images, text, the statistics that make a number trustworthy, and leakage.

- :mod:`~aigc_lib.metrics.image`: Frechet distance (and its N -> infinity extrapolation), KID, Inception Score,
  precision/recall, density/coverage, class coverage, Inception FID and CLIP score (online);
- :mod:`~aigc_lib.metrics.judge`: the small classifier trained offline whose features and predictions give
  FD-digits, coverage and prompt accuracy, cached by data, settings and code;
- :mod:`~aigc_lib.metrics.text`: BLEU, ROUGE, distinct-n and self-BLEU in English and Chinese, bits per byte,
  BERTScore (online);
- :mod:`~aigc_lib.metrics.stats`: bootstrap intervals, paired tests, sample-size curves, Bradley-Terry and Elo,
  rater agreement (Cohen's kappa, Krippendorff's alpha) and the power of a preference study;
- :mod:`~aigc_lib.metrics.leakage`: near-duplicates between training and test texts (n-gram Jaccard, MinHash).

FD-digits, like any FD on our small classifier's features, is NOT comparable to published Inception FID
numbers, nor to the FD of another judge. Compare it only with the real-vs-real FD of two disjoint real sets
of the same size, measured with the same judge (:func:`real_baseline_fd`); FD depends on N, so keep N equal.
"""
from aigc_lib.metrics.image import (
    ClassStats,
    as_images,
    class_coverage,
    clip_score,
    density_coverage,
    feature_stats,
    frechet_distance,
    frechet_distance_extrapolated,
    frechet_distance_from_stats,
    inception_fd,
    inception_features,
    inception_score,
    kernel_inception_distance,
    precision_recall,
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
from aigc_lib.metrics.leakage import (
    MinHasher,
    is_cjk,
    jaccard,
    near_duplicates,
    shingles,
)
from aigc_lib.metrics.stats import (
    bootstrap_ci,
    bradley_terry,
    cohen_kappa,
    elo,
    krippendorff_alpha,
    paired_bootstrap,
    permutation_test,
    preference_power,
    preference_power_curve,
    simulate_raters,
    subsample_curve,
)
from aigc_lib.metrics.text import (
    bert_score,
    bits_per_byte,
    bits_per_byte_from_text,
    bleu,
    bleu_signature,
    detect_language,
    distinct_n,
    rouge,
    self_bleu,
)

__all__ = [
    "JUDGE_CACHE",
    "JUDGE_STEPS",
    "ClassStats",
    "ClassifierConfig",
    "ImageClassifier",
    "ImageJudge",
    "MinHasher",
    "as_images",
    "bert_score",
    "bits_per_byte",
    "bits_per_byte_from_text",
    "bleu",
    "bleu_signature",
    "bootstrap_ci",
    "bradley_terry",
    "class_coverage",
    "clip_score",
    "cohen_kappa",
    "density_coverage",
    "detect_language",
    "distinct_n",
    "elo",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_extrapolated",
    "frechet_distance_from_stats",
    "inception_fd",
    "inception_features",
    "inception_score",
    "is_cjk",
    "jaccard",
    "kernel_inception_distance",
    "krippendorff_alpha",
    "near_duplicates",
    "paired_bootstrap",
    "permutation_test",
    "precision_recall",
    "preference_power",
    "preference_power_curve",
    "real_baseline_fd",
    "rouge",
    "self_bleu",
    "shapes_judge",
    "shingles",
    "simulate_raters",
    "subsample_curve"
]
