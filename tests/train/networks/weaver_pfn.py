"""A small Particle Flow Network written as a weaver-core network file: ``get_model``
returns the module and weaver's ``model_info``, ``get_loss`` the training loss. It reads
only what weaver's ``DataConfig`` offers (``input_dicts``, ``input_names``,
``input_shapes``, ``label_value``), so the same file runs under ``weaver --network-config``.
"""

import torch
from torch import nn


class ParticleFlowNetwork(nn.Module):
    """Per-particle map Phi (1x1 convolutions) of the points and features, masked sum,
    then F on the sum."""

    def __init__(self, input_dims, num_classes, phi_sizes=(16, 16), f_sizes=(16,), **kwargs):
        super().__init__(**kwargs)
        phi, width = [], input_dims
        for size in phi_sizes:
            phi += [nn.Conv1d(width, size, kernel_size=1), nn.ReLU()]
            width = size
        self.phi = nn.Sequential(*phi)
        f = []
        for size in f_sizes:
            f += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.f = nn.Sequential(*f)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, points, features, mask):
        summed = (self.phi(torch.cat([points, features], dim=1)) * mask).sum(dim=-1)
        return self.fc(self.f(summed))


def get_model(data_config, **kwargs):
    dims = len(data_config.input_dicts["pf_points"]) + len(data_config.input_dicts["pf_features"])
    model = ParticleFlowNetwork(dims, len(data_config.label_value), **kwargs)
    model_info = {
        "input_names": list(data_config.input_names),
        "input_shapes": {k: ((1, *s[1:])) for k, s in data_config.input_shapes.items()},
        "output_names": ["softmax"],
        "dynamic_axes": {
            **{k: {0: "N", 2: "n_" + k.split("_")[0]} for k in data_config.input_names},
            "softmax": {0: "N"},
        },
    }
    return model, model_info


def get_loss(data_config, **kwargs):
    return torch.nn.CrossEntropyLoss()
