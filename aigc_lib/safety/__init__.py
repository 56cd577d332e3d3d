"""Safety of generative and judging models: adversarial examples and adversarial training, privacy (notebook 12).

- :mod:`~aigc_lib.safety.adversarial`: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) attacks on a
  classifier or one head of an :class:`~aigc_lib.metrics.judge.ImageJudge`, robust accuracy by radius eps, and
  :class:`AdversarialStep`, a step function that trains on PGD examples with :class:`aigc_lib.train.Trainer`.

- :mod:`~aigc_lib.safety.privacy`: what a generative model remembers: canaries and their exposure (Carlini et al.
  2019), loss-threshold membership inference and its ROC/AUC (Yeom et al. 2018), extraction by greedy decoding.

Adversarial examples are not GAN training: see the module docstring of :mod:`~aigc_lib.safety.adversarial`.
"""
from aigc_lib.safety.adversarial import AdversarialStep, fgsm, pgd, robust_accuracy
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
           # privacy (notebook 12): canaries and exposure, membership inference, extraction
           "canary_space", "exposure", "exposure_from_scores", "extraction_rate", "make_canaries",
           "membership_auc", "membership_roc", "membership_scores", "sequence_log_perplexity"]
