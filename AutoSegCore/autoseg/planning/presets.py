"""Planner presets, by the names nnU-Net's ``-pl`` accepts: the default U-Net and the ResEnc M/L/XL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoseg.errors import PlanError
from autoseg.plans.model import PLAIN_UNET_CLASS, RESENC_UNET_CLASS


@dataclass(frozen=True)
class PlannerSettings:
    """Every constant of a planner (hyperparameters are data, not subclasses)."""

    planner_name: str
    plans_name: str
    network_class_name: str
    reference_val_3d: float
    reference_val_2d: float
    reference_vram_gb: float
    blocks_per_stage_encoder: tuple[int, ...]
    blocks_per_stage_decoder: tuple[int, ...]
    max_dataset_covered: float
    #: Default plain planner compares estimate/ref_bs*2 to the reference; ResEnc planners the estimate alone.
    batch_corrected_vram_check: bool
    #: Data identifiers of 2d/3d_fullres reuse nnUNetPlans data (ResEnc planners), else own.
    share_default_data: bool = False
    gpu_memory_target_gb: float = 8.0
    base_num_features: int = 32
    max_features_2d: int = 512
    max_features_3d: int = 320
    featuremap_min_edge_length: int = 4
    reference_batch_size_2d: int = 12
    reference_batch_size_3d: int = 2
    min_batch_size: int = 2
    lowres_creation_threshold: float = 0.25
    lowres_spacing_increase_factor: float = 1.03
    anisotropy_threshold: float = 3.0
    preprocessor_name: str = "DefaultPreprocessor"

    @property
    def uses_residual_encoder(self) -> bool:
        return self.network_class_name == RESENC_UNET_CLASS

    @property
    def encoder_blocks_key(self) -> str:
        return "n_blocks_per_stage" if self.uses_residual_encoder else "n_conv_per_stage"

    def data_identifier(self, configuration: str) -> str:
        if self.share_default_data and configuration in ("2d", "3d_fullres"):
            return f"nnUNetPlans_{configuration}"
        return f"{self.plans_name}_{configuration}"


_PLAIN: dict[str, Any] = dict(
    network_class_name=PLAIN_UNET_CLASS,
    reference_val_3d=560e6,
    reference_val_2d=85e6,
    reference_vram_gb=8,
    blocks_per_stage_encoder=(2,) * 14,
    blocks_per_stage_decoder=(2,) * 13,
    max_dataset_covered=0.05,
    batch_corrected_vram_check=True,
)
_RESENC: dict[str, Any] = dict(
    network_class_name=RESENC_UNET_CLASS,
    blocks_per_stage_encoder=(1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6),
    blocks_per_stage_decoder=(1,) * 12,
    batch_corrected_vram_check=False,
    share_default_data=True,
)

PRESETS: dict[str, PlannerSettings] = {
    "ExperimentPlanner": PlannerSettings("ExperimentPlanner", "nnUNetPlans", **_PLAIN),
    "ResEncUNetPlanner": PlannerSettings(
        "ResEncUNetPlanner", "nnUNetResEncUNetPlans", reference_val_3d=680e6, reference_val_2d=135e6,
        reference_vram_gb=8, max_dataset_covered=0.05, **_RESENC,
    ),
    "nnUNetPlannerResEncM": PlannerSettings(
        "nnUNetPlannerResEncM", "nnUNetResEncUNetMPlans", reference_val_3d=680e6, reference_val_2d=135e6,
        reference_vram_gb=8, max_dataset_covered=1, gpu_memory_target_gb=8, **_RESENC,
    ),
    "nnUNetPlannerResEncL": PlannerSettings(
        "nnUNetPlannerResEncL", "nnUNetResEncUNetLPlans", reference_val_3d=2.1e9, reference_val_2d=380e6,
        reference_vram_gb=24, max_dataset_covered=1, gpu_memory_target_gb=24, **_RESENC,
    ),
    "nnUNetPlannerResEncXL": PlannerSettings(
        "nnUNetPlannerResEncXL", "nnUNetResEncUNetXLPlans", reference_val_3d=3.6e9, reference_val_2d=560e6,
        reference_vram_gb=40, max_dataset_covered=1, gpu_memory_target_gb=40, **_RESENC,
    ),
}
#: Short aliases users may type.
ALIASES = {"default": "ExperimentPlanner", "nnUNetPlanner": "ExperimentPlanner", "ResEncM": "nnUNetPlannerResEncM",
           "ResEncL": "nnUNetPlannerResEncL", "ResEncXL": "nnUNetPlannerResEncXL"}


def planner_settings(name: str) -> PlannerSettings:
    """The preset for a ``-pl`` name (nnU-Net class names and short aliases accepted)."""
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise PlanError(
            f"Unknown planner {name!r}. Available: {', '.join(PRESETS)} (aliases: {', '.join(ALIASES)})."
        )
    return PRESETS[key]
