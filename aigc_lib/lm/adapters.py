"""Bottleneck adapters (Houlsby et al., 2019), written from scratch beside peft's LoRA (notebook 06).

An adapter is a small residual MLP inserted into a frozen network:

    h <- h + W_up f(W_down h),     W_down: d -> m,  W_up: m -> d,  m << d

Houlsby et al. (2019, "Parameter-Efficient Transfer Learning for NLP", ICML, arXiv:1902.00751) put one
after the output projection of the attention sublayer and one after the MLP sublayer of every transformer
block, before the residual connection; Pfeiffer et al. (2021, AdapterFusion) keep only the one after the MLP.
``peft`` has no such adapter (it has LoRA, IA3, prompt and prefix tuning, ...), so this module is the library
version of the one the notebook derives.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["HOULSBY", "PFEIFFER", "AdaptedOutput", "BottleneckAdapter", "add_bottleneck_adapters",
           "bottleneck_adapter_params"]

HOULSBY = ("attn.c_proj", "mlp.c_proj")  # after attention and after the MLP of every block (Houlsby et al.)
PFEIFFER = ("mlp.c_proj",)  # after the MLP only (Pfeiffer et al., 2021): half the adapters


class BottleneckAdapter(nn.Module):
    """h + W_up f(W_down h): down-projection, nonlinearity, up-projection and a residual (notebook 06)."""

    def __init__(self, d_model: int, bottleneck: int, init_std: float = 1e-2) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)  # W_down: (m, d)
        self.act = nn.GELU()  # GPT-2's own nonlinearity
        self.up = nn.Linear(bottleneck, d_model)  # W_up: (d, m)
        # Houlsby et al. initialise near zero (std 1e-2), so the adapter starts close to the identity;
        # W_up = 0 makes it exactly the identity (as LoRA's B = 0), and W_up still gets a gradient,
        # since f(W_down h) != 0.
        nn.init.normal_(self.down.weight, std=init_std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:  # (B, T, d)
        return h + self.up(self.act(self.down(h)))  # (B, T, m) -> (B, T, d)


class AdaptedOutput(nn.Module):
    """A frozen sublayer output projection followed by a bottleneck adapter: adapter(layer(x))."""

    def __init__(self, layer: nn.Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.layer, self.adapter = layer, adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.layer(x))


def bottleneck_adapter_params(d_model: int, bottleneck: int, n_adapters: int) -> int:
    """Trainable parameters of ``n_adapters`` adapters: n (d m + m + m d + d) (notebook 06)."""
    return n_adapters * (2 * d_model * bottleneck + bottleneck + d_model)


def _blocks(model: nn.Module) -> Sequence[nn.Module]:
    """The transformer blocks of a Hugging Face GPT-2 (also inside peft) or of aigc_lib's GPT."""
    inner = getattr(model, "base_model", None)  # peft: PeftModel.base_model.model is the transformers model
    for owner in (model, inner, getattr(inner, "model", None)):
        transformer = getattr(owner, "transformer", None)
        if transformer is not None:
            return transformer["h"] if isinstance(transformer, nn.ModuleDict) else transformer.h
    raise TypeError(f"{type(model).__name__} has no GPT-2 style `transformer.h` list of blocks.")


def add_bottleneck_adapters(model: nn.Module, bottleneck: int, where: Sequence[str] = HOULSBY,
                            init_std: float = 1e-2) -> list[BottleneckAdapter]:
    """Freeze ``model`` and put a :class:`BottleneckAdapter` after the output projections named in ``where``
    (``HOULSBY``: attention and MLP; ``PFEIFFER``: MLP only) in every block; return them (notebook 06).

    The model is changed in place; only the adapters' parameters keep ``requires_grad``.
    """
    if bottleneck < 1:
        raise ValueError(f"bottleneck must be at least 1, got {bottleneck}.")
    model.requires_grad_(False)
    adapters = []
    for block in _blocks(model):
        for name in where:
            parent_name, _, child = name.rpartition(".")
            parent = block.get_submodule(parent_name) if parent_name else block
            layer = getattr(parent, child)
            if isinstance(layer, AdaptedOutput):
                raise ValueError(f"{name} already has an adapter.")
            weight = layer.weight  # nn.Linear (d_out, d_in) or GPT-2's Conv1D (d_in, d_out)
            d_model = weight.shape[1] if type(layer).__name__ == "Conv1D" else weight.shape[0]
            adapter = BottleneckAdapter(d_model, bottleneck, init_std)
            adapter.to(device=weight.device, dtype=weight.dtype)
            setattr(parent, child, AdaptedOutput(layer, adapter))
            adapters.append(adapter)
    if not adapters:
        raise ValueError("no adapter was inserted: the model has no blocks.")
    return adapters

