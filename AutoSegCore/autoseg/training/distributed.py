"""``-num_gpus N``: distributed data-parallel training, one process per GPU (``torch.distributed``).

As nnU-Net: the plan's batch size is the global batch, split across ranks, with the foreground-forced
samples (the last 33% of the global batch) falling to the ranks that hold those batch positions; batch
Dice gathers its sums from every rank; the pseudo Dice sums TP/FP/FN over all ranks; rank 0 alone writes
logs and checkpoints; the final validation cases are shared among the ranks. On CUDA the backend is NCCL;
on the CPU the processes use Gloo (useful to test a set-up without GPUs).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace

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
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        gathered = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_fold_distributed(job, world_size: int, resume: bool, validate_only: bool, use_best: bool):  # noqa: ANN001
    """Run :func:`autoseg.training.run_fold.train_fold` in ``world_size`` processes; returns rank 0's summary."""
    import torch.multiprocessing as mp

    from autoseg.evaluation.summary import load_summary

    check_distributed_request(world_size, job.device)
    port = _free_port()
    try:
        mp.spawn(_worker, args=(world_size, port, job, resume, validate_only, use_best), nprocs=world_size, join=True)
    except mp.ProcessRaisedException as err:  # the failing rank's error, without the spawn machinery around it
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise AutoSegError(f"Distributed training failed: {lines[-1] if lines else err}") from None
    return load_summary(job.fold_folder / "validation" / "summary.json")


def _worker(rank: int, world_size: int, port: int, job, resume: bool, validate_only: bool, use_best: bool) -> None:  # noqa: ANN001
    import logging

    from autoseg.training.run_fold import train_fold

    if rank == 0:  # a spawned process starts without the CLI's logging set-up
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    cuda = torch.device(job.device).type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    try:
        if cuda:
            torch.cuda.set_device(rank)
            job = replace(job, device=torch.device("cuda", rank))
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        train_fold(job, resume, validate_only, use_best, ranks=Ranks(rank, world_size))
    finally:
        dist.destroy_process_group()
