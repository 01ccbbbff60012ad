"""Learning-rate schedule: nnU-Net's polynomial decay, stepped once per epoch."""

from __future__ import annotations

import torch


def poly_lr(initial_lr: float, epoch: int, num_epochs: int, exponent: float = 0.9) -> float:
    """``initial_lr * (1 - epoch / num_epochs) ** exponent``."""
    return initial_lr * (1 - epoch / num_epochs) ** exponent


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(parameters, initial_lr: float = 1e-2, weight_decay: float = 3e-5,
                    momentum: float = 0.99) -> torch.optim.SGD:
    """SGD with Nesterov momentum, as nnU-Net's default trainer."""
    return torch.optim.SGD(parameters, initial_lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
