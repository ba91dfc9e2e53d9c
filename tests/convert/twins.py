"""A PyTorch twin with random weights, BN affine parameters and running statistics (needs torch)."""
import torch

from jka.convert import torch_models


def random_twin(name, num_classes, in_channels=3, seed=0, **kw):
    """``torch_create(name, num_classes, **kw)`` in eval mode, every BatchNorm's affine parameters and
    running statistics randomised so that a conversion that drops or swaps them is caught."""
    torch.manual_seed(seed)
    extra = {"in_channels": in_channels} if in_channels != 3 else {}
    model = torch_models.torch_create(name, num_classes, **kw, **extra).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(7)
    return model
