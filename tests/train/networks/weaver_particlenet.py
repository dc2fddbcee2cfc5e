"""weaver-core's own ParticleNet (from the installed ``weaver`` package), wrapped the way
weaver's example network files wrap it: the wrapper's ``forward`` takes the data config's
groups in order, ``get_model`` sizes the model from ``input_dicts`` / ``label_value`` and
takes its options as keyword arguments, ``get_loss`` gives the cross entropy."""

import torch
from weaver.nn.model.ParticleNet import ParticleNet


class ParticleNetWrapper(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.mod = ParticleNet(**kwargs)

    def forward(self, points, features, mask):
        return self.mod(points, features, mask)


def get_model(data_config, **kwargs):
    options = {
        "conv_params": [(4, (16, 16))],
        "fc_params": [(32, 0.1)],
        "use_fusion": False,
        "use_fts_bn": True,
        "use_counts": True,
        "trim": False,
        **kwargs,
    }
    model = ParticleNetWrapper(
        input_dims=len(data_config.input_dicts["pf_features"]),
        num_classes=len(data_config.label_value),
        **options,
    )
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
