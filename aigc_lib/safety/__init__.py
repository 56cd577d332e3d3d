"""Safety of generative and judging models: adversarial examples, safety filters, bias, privacy (notebook 12).

- :mod:`~aigc_lib.safety.adversarial`: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) attacks on a
  classifier or one head of an :class:`~aigc_lib.metrics.judge.ImageJudge`, robust accuracy by radius eps, and
  :class:`AdversarialStep`, a step function that trains on PGD examples with :class:`aigc_lib.train.Trainer`.

- :mod:`~aigc_lib.safety.privacy`: what a generative model remembers: canaries and their exposure (Carlini et al.
  2019), loss-threshold membership inference and its ROC/AUC (Yeom et al. 2018), extraction by greedy decoding.

- :mod:`~aigc_lib.safety.filters`: three ways to block a concept in a text-to-image model: a prompt filter
  (blocklist), an output classifier that blanks flagged images, and concept erasure by fine-tuning (ESD, Gandikota
  et al. 2023).

- :mod:`~aigc_lib.safety.bias`: skewed training data, the attribute shares of generations and their distance to
  the data's (total variation), with bootstrap intervals.

Adversarial examples are not GAN training: see the module docstring of :mod:`~aigc_lib.safety.adversarial`.
"""
from aigc_lib.safety.adversarial import AdversarialStep, fgsm, pgd, robust_accuracy
from aigc_lib.safety.bias import colour_shares, colourless_caption, share_ci, shares_of, skew, skewed_shapes
from aigc_lib.safety.filters import (
    ConceptClassifier,
    ESDStep,
    PromptFilter,
    blank_flagged,
    concept_rate,
    esd_loss,
    esd_target,
    train_concept_classifier,
)
from aigc_lib.safety.privacy import (
    canary_space,
    exposure,
    exposure_from_scores,
    extraction_rate,
    make_canaries,
    membership_auc,
    membership_roc,
    membership_scores,
    sequence_log_perplexity,
)

__all__ = ["AdversarialStep", "fgsm", "pgd", "robust_accuracy",
           # filters and bias (notebook 12): blocking a concept three ways; skew of generations
           "ConceptClassifier", "ESDStep", "PromptFilter", "blank_flagged", "concept_rate", "esd_loss", "esd_target",
           "train_concept_classifier", "colour_shares", "colourless_caption", "share_ci", "shares_of", "skew",
           "skewed_shapes",
           # privacy (notebook 12): canaries and exposure, membership inference, extraction
           "canary_space", "exposure", "exposure_from_scores", "extraction_rate", "make_canaries",
           "membership_auc", "membership_roc", "membership_scores", "sequence_log_perplexity"]
