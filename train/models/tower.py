"""The per-language classification tower h_Phi of section 4.1: representation -> emotion logits."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..config import ConfigError

#: Activation names accepted in configurations.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "mish": nn.Mish,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ConfigError("tower.activations", f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})") from None


class ClassificationTower(nn.Module):
    """(batch, input_dim) -> (batch, n_classes) logits.

    One hidden layer of ``units`` per entry of ``activations``, each followed by dropout, then a linear
    output layer. Paper values (section 5.1): English 256 units with Mish then GELU; German and French
    512 units with Tanh then ReLU; dropout 0.1. ``input_dropout`` (not in the paper, default off) drops
    representation entries before the first layer.
    """

    def __init__(self, input_dim: int, n_classes: int, units: int = 512, activations: Sequence[str] = ("tanh", "relu"),
                 dropout: float = 0.1, input_dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        width = input_dim
        for name in activations:
            layers += [nn.Linear(width, units), activation(name), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)
        self.input_dim = input_dim
        self.n_classes = n_classes

    def hidden(self, representation: torch.Tensor) -> torch.Tensor:
        """(batch, input_dim) -> (batch, units): the last hidden layer (after its dropout), the output layer's input."""
        return self.net[:-1](representation)

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, units) -> (batch, n_classes): the output layer on :meth:`hidden`."""
        return self.net[-1](hidden)

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        return self.net(representation)
