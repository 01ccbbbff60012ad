"""``-pretrained_weights``: start a training from another model's weights (nnU-Net's rule).

Every weight except the segmentation heads (``seg_layers``) is copied; the two networks must otherwise
have the same keys and shapes (same plans topology), or the error lists the first differences.
"""

from __future__ import annotations

from pathlib import Path

import torch

from autoseg.errors import AutoSegError
from autoseg.network.checkpoint import clean_state_dict, load_checkpoint

HEAD_MARKER = ".seg_layers."


def load_pretrained_weights(network: torch.nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise AutoSegError(f"-pretrained_weights {path} does not exist.")
    raw = load_checkpoint(path)
    source = clean_state_dict(raw.get("network_weights", raw))
    target = network.state_dict()
    body = [k for k in target if HEAD_MARKER not in k]
    missing = [k for k in body if k not in source]
    mismatched = [f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}" for k in body
                  if k in source and source[k].shape != target[k].shape]
    if missing or mismatched:
        details = "; ".join([*(f"missing {k}" for k in missing[:3]), *mismatched[:3]])
        raise AutoSegError(
            f"The pretrained weights {path} do not fit this configuration's network ({details}). Pretraining "
            f"needs the same network topology: transfer the plans with `autoseg move_plans_between_datasets` "
            f"and preprocess the target dataset with them."
        )
    network.load_state_dict({**target, **{k: source[k] for k in body}})
