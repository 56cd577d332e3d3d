"""Spectrogram diffusion (notebook 13): the log-mel scaling, the label-conditioned UNet, its training step, sampling."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from aigc_lib.audio.effects import effects_dataset
from aigc_lib.audio.features import mel_filterbank
from aigc_lib.audio.spectrogram_diffusion import (
    LOG_MEL_RANGE,
    SPECDIFF_MEL,
    LabelDiffusionStep,
    build_spectrogram_diffusion,
    image_to_log_mel,
    label_unet,
    log_mel_to_image,
    mel_to_power_nnls,
    sample_spectrograms,
    spectrograms_to_audio,
    wave_to_image,
)
from aigc_lib.diffusion.samplers import guided_noise, predict_noise
from aigc_lib.diffusion.schedules import NoiseSchedule
from aigc_lib.train import TrainConfig, Trainer


def tiny(num_classes: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    return label_unet(num_classes, size=(8, 16), width=8).eval()


def test_scaling_round_trip_is_exact_and_maps_the_range_to_unit_interval():
    log_mels = torch.randn(3, 32, 64) * 5
    torch.testing.assert_close(image_to_log_mel(log_mel_to_image(log_mels)), log_mels, rtol=0, atol=1e-5)
    low, high = LOG_MEL_RANGE
    ends = log_mel_to_image(torch.tensor([[[low, high]]]))
    torch.testing.assert_close(ends.flatten(), torch.tensor([-1.0, 1.0]))


def test_real_clips_fit_the_image_range_and_shape():
    waves = effects_dataset(12, seed=3).waves
    images = wave_to_image(waves)
    assert images.shape == (12, 1, SPECDIFF_MEL.n_mels, 64)  # 1 + 16000 // 252 frames
    assert images.min() >= -1 and images.max() <= 1


def test_nnls_inverse_recovers_a_power_spectrum_that_the_filters_explain():
    filters = mel_filterbank(SPECDIFF_MEL.n_fft, SPECDIFF_MEL.n_mels)  # (M, F)
    power = torch.rand(2, filters.shape[1], 5) ** 4  # (N, F, T) non-negative
    mel = filters @ power
    estimate = mel_to_power_nnls(mel, filters, n_iter=500)
    assert estimate.min() >= 0
    # the pseudo-inverse is the least-norm solution; NNLS must explain the mel bands much better than a flat guess
    flat = (filters / filters.sum(1, keepdim=True)).T @ mel
    assert (filters @ estimate - mel).norm() < 0.3 * (filters @ flat - mel).norm()


def test_wrapper_passes_labels_and_the_null_label():
    model = tiny()
    x, t = torch.randn(2, 1, 8, 16), torch.tensor([500, 500])
    with torch.no_grad():
        a = predict_noise(model, x, t, torch.tensor([0, 0]))
        b = predict_noise(model, x, t, torch.tensor([3, 3]))
        null = predict_noise(model, x, t, torch.tensor([6, 6]))  # index num_classes = no label
        col = predict_noise(model, x, t, torch.tensor([[3], [3]]))  # (N, 1) labels work too
    assert a.shape == x.shape and not torch.allclose(a, b) and not torch.allclose(a, null)
    torch.testing.assert_close(col, b)
    # guidance: eps_u + w (eps_c - eps_u) with a (1,) null label expanded to the batch
    with torch.no_grad():
        guided = guided_noise(model, x, 500, torch.tensor([3, 3]), torch.tensor([6]), 3.0)
    torch.testing.assert_close(guided, null + 3.0 * (b - null), rtol=1e-4, atol=1e-5)


def test_bad_labels_and_shapes_raise():
    model = tiny()
    x, t = torch.randn(2, 1, 8, 16), torch.tensor([10, 10])
    with pytest.raises(ValueError, match="labels"):
        model(x, t, encoder_hidden_states=torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="labels"):
        model(x, t, encoder_hidden_states=torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="spectrogram images"):
        model(torch.randn(2, 1, 8, 8), t, encoder_hidden_states=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        sample_spectrograms(model, NoiseSchedule(20), [0, 6], steps=2)
    with pytest.raises(ValueError, match="n_mels"):
        spectrograms_to_audio(torch.zeros(1, 16, 64))
    with pytest.raises(ValueError, match="multiples of 4"):
        label_unet(6, size=(10, 16))
    with pytest.raises(ValueError, match="lr_scale"):
        build_spectrogram_diffusion("smoke", lr_scale=-1.0)


def _trainer(model, lr: float, images, labels, steps: int, dropout: float = 0.15) -> Trainer:
    step = LabelDiffusionStep(NoiseSchedule(100), null_label=model.null_label, label_dropout=dropout)
    batches = [(images, labels)]
    config = TrainConfig(max_steps=steps, precision="fp32", device="cpu", progress=False, log_every=1)
    return Trainer(model, torch.optim.Adam(model.parameters(), lr=lr), step, batches, config)


def test_training_lowers_the_loss_and_lr_zero_changes_nothing():
    torch.manual_seed(0)
    images, labels = torch.randn(8, 1, 8, 16).clamp(-1, 1), torch.arange(8) % 6
    model = tiny().train()
    before = copy.deepcopy(model.state_dict())
    _trainer(model, 0.0, images, labels, 3).fit()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    step = LabelDiffusionStep(NoiseSchedule(100), null_label=6, label_dropout=0.0)
    trainer = _trainer(model, 3e-3, images, labels, 30, dropout=0.0)

    def loss() -> float:
        torch.manual_seed(1)  # the same t and eps for both measurements
        with torch.no_grad():
            return step.loss(trainer, (images, labels)).item()

    first = loss()
    trainer.fit()
    assert loss() < 0.8 * first


def test_label_dropout_uses_the_null_label():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, encoder_hidden_states=None):
            seen.append(encoder_hidden_states.clone())
            return torch.zeros_like(x)

    fake_trainer = SimpleNamespace(models={"model": Spy()})
    torch.manual_seed(0)
    step = LabelDiffusionStep(NoiseSchedule(10), null_label=6, label_dropout=0.5)
    step.loss(fake_trainer, (torch.zeros(400, 1, 4, 4), torch.zeros(400, dtype=torch.long)))
    dropped = (seen[0] == 6).float().mean().item()
    assert 0.4 < dropped < 0.6 and set(seen[0].tolist()) == {0, 6}


def test_sampling_shape_finiteness_and_decoding():
    model = tiny()
    mels = sample_spectrograms(model, NoiseSchedule(50), [0, 5, 2], steps=3, guidance_scale=2.0, seed=1)
    assert mels.shape == (3, 8, 16) and torch.isfinite(mels).all()
    again = sample_spectrograms(model, NoiseSchedule(50), [0, 5, 2], steps=3, guidance_scale=2.0, seed=1)
    torch.testing.assert_close(mels, again)  # deterministic from the seed
    low, high = LOG_MEL_RANGE
    assert mels.min() >= low - 1e-4 and mels.max() <= high + 1e-4
    full = torch.full((2, SPECDIFF_MEL.n_mels, 64), -3.0)
    waves = spectrograms_to_audio(full, n_iter=2)
    assert waves.shape == (2, 16000) and torch.isfinite(waves).all()

