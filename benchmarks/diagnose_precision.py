"""Where does bfloat16 training lose accuracy? Gradient fidelity of mixed-precision schemes vs float32.

For real Hippocampus 3d_fullres training batches (AutoSeg's own loader and augmentation) and the network at
initialisation and after some float32 training, computes the loss and all parameter gradients in float32
(the reference) and under each scheme, and prints per scheme: the loss difference, the relative L2 error and
cosine similarity of the whole gradient, and the relative error per parameter group (convolutions, norms,
segmentation heads). It also lists which ops run in bfloat16 under CPU autocast in this network.

Schemes: ``bf16`` (autocast as is), ``bf16+loss32`` (logits cast to float32 before softmax/CE/Dice),
``bf16+norm32`` (instance normalisation computed in float32), ``bf16+loss32+norm32`` (both), and, without
autocast, ``conv-forward-bf16`` (convolutions give bf16 values, gradients of the fp32 convolution) and
``conv-backward-bf16`` (fp32 values, gradients through the bf16 convolution): which direction loses it.

    python benchmarks/diagnose_precision.py --root /work/bench14 [--batches 4] [--warmup 30]
"""

from __future__ import annotations

import argparse
import contextlib
from collections import Counter
from pathlib import Path

import torch

from autoseg.paths import Workspace
from autoseg.training.job import TrainingJob
from autoseg.training.settings import TrainingSettings
from autoseg.training.trainer import Trainer

SCHEMES = ("bf16", "bf16+loss32", "bf16+norm32", "bf16+loss32+norm32", "conv-forward-bf16", "conv-backward-bf16")


@contextlib.contextmanager
def patched_forwards(modules, make_forward):
    """Replace each module's ``forward`` by ``make_forward(original forward)`` for the duration of the block."""
    originals = {module: module.forward for module in modules}
    for module, original in originals.items():
        module.forward = make_forward(original)
    try:
        yield
    finally:
        for module, original in originals.items():
            module.forward = original


def conv_split(network: torch.nn.Module, forward_bf16: bool):
    """No autocast; convolutions give the bf16 result forward but fp32 gradients (or the reverse)."""

    def make_forward(original):
        def forward(x):
            exact = original(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                rounded = original(x).float()
            if forward_bf16:  # value of the bf16 convolution, gradient of the fp32 one
                return exact + (rounded - exact).detach()
            return rounded + (exact - rounded).detach()  # value fp32, gradient through the bf16 convolution

        return forward

    return patched_forwards([m for m in network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)],
                            make_forward)


def norms_in_fp32(network: torch.nn.Module):
    """Instance/batch norms (all ``_NormBase``) run in float32 (statistics and output) inside autocast."""

    def make_forward(original):
        def forward(x):
            with torch.autocast("cpu", enabled=False):
                return original(x.float())

        return forward

    return patched_forwards([m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)],
                            make_forward)


def loss_and_gradients(trainer: Trainer, data, target, scheme: str) -> tuple[float, dict[str, torch.Tensor]]:
    network = trainer.network
    network.zero_grad(set_to_none=True)
    norm_context = norms_in_fp32(network) if "norm32" in scheme else contextlib.nullcontext()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if scheme.startswith("bf16") else contextlib.nullcontext()
    if scheme.startswith("conv-"):
        norm_context = conv_split(network, forward_bf16=scheme == "conv-forward-bf16")
    with norm_context, autocast:
        output = network(data)
        if "loss32" in scheme:
            output = [o.float() for o in output] if isinstance(output, (list, tuple)) else output.float()
        loss = trainer.loss(output, target)
    loss.backward()
    return float(loss.detach()), {
        n: p.grad.detach().clone() for n, p in network.named_parameters() if p.grad is not None
    }


def group(name: str) -> str:
    if "seg_layers" in name or "seg_out" in name:
        return "seg heads"
    if "norm" in name:
        return "norms"
    return "convs"


def compare(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict[str, float]:
    flat_ref = torch.cat([g.flatten() for g in reference.values()])
    flat = torch.cat([other[n].flatten().float() for n in reference])
    result = {"rel L2": float((flat - flat_ref).norm() / flat_ref.norm()),
              "cosine": float(torch.nn.functional.cosine_similarity(flat, flat_ref, dim=0))}
    for name in sorted({group(n) for n in reference}):
        keys = [n for n in reference if group(n) == name]
        ref = torch.cat([reference[k].flatten() for k in keys])
        got = torch.cat([other[k].flatten().float() for k in keys])
        result[name] = float((got - ref).norm() / ref.norm())
    return result


def bf16_ops(trainer: Trainer, data) -> Counter:
    """Which ops produce bfloat16 tensors under autocast in one forward pass."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            outputs = out if isinstance(out, (list, tuple)) else [out]
            dtypes = {o.dtype for o in outputs if isinstance(o, torch.Tensor)}
            self.counts[(str(func.overloadpacket), ",".join(sorted(str(d).replace("torch.", "") for d in dtypes)))] += 1
            return out

    recorder = Recorder()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), recorder:
        trainer.network(data)
    return recorder.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="bench_train.py --prepare_only folder")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=30, help="float32 training steps before the second check")
    args = parser.parse_args()
    space = Path(args.root) / "autoseg"
    workspace = Workspace(raw=space / "nnUNet_raw", preprocessed=space / "nnUNet_preprocessed",
                          results=Path(args.root) / "diagnose_results")
    job = TrainingJob.from_workspace(workspace, "4", "3d_fullres", 0, settings=TrainingSettings(seed=0),
                                     precision="fp32", num_workers=0)
    trainer = Trainer(job)
    torch.set_num_threads(2)
    train_batches, _val = trainer._loaders()
    batches = iter(train_batches)
    fixed = [trainer._to_device(next(batches)) for _ in range(args.batches)]
    counts = bf16_ops(trainer, fixed[0][0])
    print("ops under CPU bf16 autocast (op, output dtypes): count")
    for (op, dtypes), count in sorted(counts.items()):
        print(f"  {op:<40} {dtypes:<16} {count}")
    for stage in ("initialisation", f"after {args.warmup} fp32 steps"):
        if stage != "initialisation":
            trainer.network.train()
            for _ in range(args.warmup):
                trainer.train_step(next(batches))
        print(f"\n{stage}: mean over {len(fixed)} batches")
        print(f"{'scheme':<20} {'|dloss|':>9} {'rel L2':>8} {'cosine':>8} {'convs':>8} {'norms':>8} {'heads':>8}")
        rows: dict[str, list[dict[str, float]]] = {s: [] for s in SCHEMES}
        for data, target in fixed:
            loss32, grads32 = loss_and_gradients(trainer, data, target, "fp32")
            for scheme in SCHEMES:
                loss, grads = loss_and_gradients(trainer, data, target, scheme)
                rows[scheme].append({"dloss": abs(loss - loss32), **compare(grads32, grads)})
        for scheme, values in rows.items():
            mean = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
            print(f"{scheme:<20} {mean['dloss']:9.2e} {mean['rel L2']:8.4f} {mean['cosine']:8.5f} "
                  f"{mean.get('convs', float('nan')):8.4f} {mean.get('norms', float('nan')):8.4f} "
                  f"{mean.get('seg heads', float('nan')):8.4f}")
        trainer.network.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
