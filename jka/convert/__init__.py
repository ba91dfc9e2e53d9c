"""PyTorch bridge: load PyTorch checkpoints of the zoo into Flax, verify them, export them.

``load_torch(src, arch, num_classes)`` gives Flax variables; ``convert(arch, src, out, num_classes)``
writes an exported model that configs can use as a teacher (``jka convert`` on the command line).
``export_torch(workdir, out)`` goes the other way (``jka export``): a trained model as the state dict
of jka's PyTorch twin, which ``torch_module(out)`` loads.
Importing this package does not import torch; :mod:`jka.convert.torch_models` (jka's PyTorch
definitions of the zoo) and ``.pt`` files need it, ``.safetensors`` files do not.
"""
from jka.convert.bridge import convert, verify
from jka.convert.export import export_torch, read_export, torch_module
from jka.convert.load import convert_state_dict, load_torch, read_state_dict

__all__ = ["convert", "convert_state_dict", "export_torch", "load_torch", "read_export", "read_state_dict", "torch_module",
           "verify"]
