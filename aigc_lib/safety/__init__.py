"""Safety of generative and judging models: adversarial examples and adversarial training (notebook 12).

- :mod:`~aigc_lib.safety.adversarial`: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) attacks on a
  classifier or one head of an :class:`~aigc_lib.metrics.judge.ImageJudge`, robust accuracy by radius eps, and
  :class:`AdversarialStep`, a step function that trains on PGD examples with :class:`aigc_lib.train.Trainer`.

Adversarial examples are not GAN training: see the module docstring of :mod:`~aigc_lib.safety.adversarial`.
"""
from aigc_lib.safety.adversarial import AdversarialStep, fgsm, pgd, robust_accuracy

__all__ = ["AdversarialStep", "fgsm", "pgd", "robust_accuracy"]
