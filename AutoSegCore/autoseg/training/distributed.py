"""``-num_gpus N``: distributed data-parallel training, one process per GPU (``torch.distributed``).

As nnU-Net: the plan's batch size is the global batch, split across ranks, with the foreground-forced
samples (the last 33% of the global batch) falling to the ranks that hold those batch positions; batch
Dice gathers its sums from every rank; the pseudo Dice sums TP/FP/FN over all ranks; rank 0 alone writes
logs and checkpoints; the final validation cases are shared among the ranks. On CUDA the backend is NCCL;
on the CPU the processes use Gloo (useful to test a set-up without GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from autoseg.errors import AutoSegError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (rank 0 of 1 without distribution)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def split_batch(batch_size: int, oversample_percent: float, ranks: Ranks) -> tuple[int, float]:
    """This rank's batch size and the oversampling fraction that keeps the global last-33% rule."""
    sizes = [batch_size // ranks.world_size + (1 if r < batch_size % ranks.world_size else 0)
             for r in range(ranks.world_size)]
    if min(sizes) < 1:
        raise AutoSegError(f"Batch size {batch_size} cannot be split across {ranks.world_size} GPUs: use fewer GPUs.")
    start = sum(sizes[: ranks.rank])
    forced_from = batch_size - round(batch_size * oversample_percent)
    mine = sizes[ranks.rank]
    forced = sum(1 for i in range(start, start + mine) if i >= forced_from)
    return mine, forced / mine


class _GatherWithGrad(torch.autograd.Function):
    """all_gather that passes gradients back to each rank's own slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        gathered = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    return _GatherWithGrad.apply(tensor)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor)
    return tensor


def check_distributed_request(num_gpus: int, device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.device_count() < num_gpus:
        raise AutoSegError(f"-num_gpus {num_gpus} but PyTorch sees {torch.cuda.device_count()} CUDA GPU(s).")
    if device.type == "mps":
        raise AutoSegError("-num_gpus > 1 is not available on MPS; use one device.")
    if not dist.is_available():
        raise AutoSegError("This PyTorch build has no torch.distributed: -num_gpus > 1 is not possible.")
