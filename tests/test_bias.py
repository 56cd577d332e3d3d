"""Tests of aigc_lib.safety.bias: skewed data, colour shares, the skew measure (notebook 12)."""
import pytest
import torch

from aigc_lib.safety.bias import colour_shares, colourless_caption, share_ci, shares_of, skew, skewed_shapes
from aigc_lib.shapes import COLORS, caption_targets


class ColourJudge:
    """A stand-in judge: the colour of an image is the argmax of its mean RGB distance to the palette."""

    def predict(self, images, head=None):
        palette = torch.tensor(list(COLORS.values()), dtype=torch.float32) / 255 * 2 - 1  # (6, 3) in [-1, 1]
        bright = images.amax(1, keepdim=True) > -0.5  # (N, 1, H, W): pixels of the shape
        mean = (images * bright).sum((2, 3)) / bright.sum((2, 3)).clamp(min=1)  # (N, 3)
        return torch.cdist(mean, palette).argmin(1)


def test_skewed_shapes_follow_the_distribution_and_drop_the_colour():
    probs = {"red": 0.8, **{c: 0.04 for c in COLORS if c != "red"}}
    data = skewed_shapes(100, "circle", probs, seed=1)
    shares = shares_of(data.attributes["color"])
    assert shares[0].item() == pytest.approx(0.8) and shares.sum().item() == pytest.approx(1.0)
    assert all(c not in caption for caption in data.captions for c in COLORS)
    assert data.captions[0].startswith("a circle ")
    named = skewed_shapes(10, "square", probs, name_colour=True, seed=2)
    assert caption_targets(named.captions)["color"].tolist() == named.attributes["color"].tolist()
    assert colourless_caption("circle", "top left") == "a circle at the top left"
    with pytest.raises(ValueError):
        skewed_shapes(10, "circle", {"red": 0.5})  # does not sum to 1
    with pytest.raises(ValueError):
        skewed_shapes(10, "blob", probs)


def test_colour_shares_sum_to_one_and_read_the_drawn_colours():
    probs = [0.5, 0.5, 0, 0, 0, 0]
    data = skewed_shapes(40, "square", probs, seed=3)
    shares = colour_shares(data.images, ColourJudge())
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["red"] == pytest.approx(0.5) and shares["green"] == pytest.approx(0.5)


def test_skew_is_total_variation():
    uniform = [1 / 6] * 6
    assert skew(uniform, uniform) == pytest.approx(0.0)
    assert skew({"red": 1.0}, {"green": 1.0}) == pytest.approx(1.0)
    p = {"red": 0.8, **{c: 0.04 for c in COLORS if c != "red"}}
    assert skew(p, uniform) == pytest.approx(0.5 * (abs(0.8 - 1 / 6) + 5 * abs(0.04 - 1 / 6)))
    with pytest.raises(ValueError):
        skew([0.5, 0.5], uniform)


def test_share_ci_brackets_the_share():
    labels = torch.tensor([0] * 80 + [1] * 20)
    ci = share_ci(labels, "red", n_boot=500)
    assert ci["estimate"] == pytest.approx(0.8) and ci["low"] < 0.8 < ci["high"]
    with pytest.raises(ValueError):
        share_ci(labels, "pink")
