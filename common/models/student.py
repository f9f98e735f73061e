"""A smaller student cut from a model by keeping some of its layers (`--student_layers 0,2,4`).

DistilBERT initialised its student from every other layer of the teacher: the cut model starts with
the teacher's embeddings, the kept layers' weights, and its pooler and head, so it begins far closer
to the teacher than a random or pretrained-elsewhere model of the same size.
"""

import torch

from common.config.errors import OptionError


def layer_stack(model) -> tuple[str, torch.nn.ModuleList]:
    """The model's list of transformer layers: the one ModuleList as long as `config.num_hidden_layers`."""
    count = model.config.num_hidden_layers
    stacks = [(name, module) for name, module in model.named_modules()
              if isinstance(module, torch.nn.ModuleList) and len(module) == count]
    if len(stacks) != 1:
        raise OptionError(f"--student_layers: cannot tell which module list of {type(model).__name__} holds its "
                          f"{count} layers (found {[name for name, _ in stacks] or 'none'})")
    return stacks[0]


def keep_layers(model, layers: list[int]):
    """The model with only `layers` of its transformer stack, renumbered 0..len-1; everything else kept."""
    name, stack = layer_stack(model)
    if layers[-1] >= len(stack):
        raise OptionError(f"--student_layers {','.join(map(str, layers))}: {model.config.name_or_path or 'the model'} "
                          f"has {len(stack)} layers (0-{len(stack) - 1})")
    kept = torch.nn.ModuleList(stack[i] for i in layers)
    for position, layer in enumerate(kept):  # attention modules know their place (for caches)
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = position
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, kept)
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = [model.config.layer_types[i] for i in layers]
    model.config.num_hidden_layers = len(layers)
    return model
