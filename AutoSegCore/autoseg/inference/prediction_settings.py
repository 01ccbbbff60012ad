"""How to predict: the settings both engines read (nnU-Net's defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PredictionSettings:
    """How to predict: nnU-Net's defaults (step 0.5, Gaussian weighting, mirroring TTA)."""

    step_size: float = 0.5
    use_gaussian: bool = True
    use_mirroring: bool = True
    device: str = "cpu"
    #: "auto" (OpenVINO on the CPU when installed, else PyTorch), "torch" or "openvino".
    engine: str = "auto"
    #: Keep the aggregated logits on the GPU (falls back to the CPU when they do not fit).
    perform_everything_on_device: bool = True
    #: Threads for the network on the CPU (None: all available cores).
    num_threads: int | None = None
    #: Run all mirrored copies of a window as one batch (helps GPUs; no gain on CPUs). Torch engine.
    batch_mirrors: bool | None = None
    #: "float16" sums window logits like nnU-Net (same results, half the memory); "float32" is more exact.
    aggregation_dtype: str = "float16"
    #: Network precision on the CPU: "fp32" (as nnU-Net) or "bf16" (faster on CPUs with native bf16).
    precision: str = "fp32"
    #: Torch on the CPU: switch to a traced, oneDNN-optimised graph for longer jobs (same results, ~25% faster).
    trace_network: bool = True
    #: Torch on a multi-core CPU: run the mirrored copies of a window side by side (one thread each).
    parallel_copies: bool = True
