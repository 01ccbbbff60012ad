"""What a demo run does: the dataset, the plan adjustment for CPUs and the training budget, as data.

The defaults are the reproducible demo (about 10 minutes on 2 CPU cores); :func:`quick_settings` is a
smoke run of the same steps in about a minute whose Dice means nothing. A workspace remembers the settings
it was made with (``demo_settings.json``), so a re-run with other settings is refused instead of silently
mixing results (``--fresh`` starts over).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from autoseg.demo.dataset import DemoDatasetSpec
from autoseg.demo.phantom import PhantomSettings
from autoseg.errors import AutoSegError
from autoseg.paths import DatasetName
from autoseg.utils.files import load_json, save_json

DATASET_ID = 990
DATASET_NAME = str(DatasetName(DATASET_ID, "AutoSegDemo"))
CONFIGURATION = "3d_fullres"
FOLD = 0
PLANS_NAME = "nnUNetPlans"
#: nnU-Net's trainer without mirroring: the phantom's anatomy is not left-right symmetric (nor is a real
#: abdomen), and without mirrored test-time copies validation and prediction are 8x cheaper on a CPU.
TRAINER = "nnUNetTrainerNoMirroring"
STATE_FILE = "demo_settings.json"


@dataclass(frozen=True)
class DemoBudget:
    """The training length: a fixed number of epochs x iterations (poly learning rate over the run).

    600 iterations of 2 x 28x64x64 patches: ~7.8 min on 2 quiet Zen 5 cores in bf16 (~0.7 s per iteration),
    held-out foreground Dice 0.94-0.97 over generator seeds 0-2 (0.943 already at 360 iterations).
    """

    epochs: int = 20
    iterations_per_epoch: int = 30
    val_iterations: int = 3
    seed: int = 0


@dataclass(frozen=True)
class DemoSettings:
    """One demo run. ``gpu_memory_target_gb`` is ``plan_and_preprocess -gpu_memory_target``: the demo plans
    for a small memory budget so that the patch (and every training step) is small enough for a CPU."""

    dataset: DemoDatasetSpec = field(default_factory=DemoDatasetSpec)
    budget: DemoBudget = field(default_factory=DemoBudget)
    gpu_memory_target_gb: float = 0.5
    trainer: str = TRAINER

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset.to_json(),
            "budget": {k: getattr(self.budget, k) for k in self.budget.__dataclass_fields__},
            "gpu_memory_target_gb": self.gpu_memory_target_gb,
            "trainer": self.trainer,
        }


def quick_settings(seed: int = 0) -> DemoSettings:
    """A smoke run of every step (tiny volumes, 1 epoch of 2 iterations): checks an installation in ~1 minute."""
    phantom = PhantomSettings(field_of_view_mm=(60.0, 48.0, 48.0), spacing_mm=(3.0, 1.5, 1.5))
    return DemoSettings(
        dataset=DemoDatasetSpec(seed=seed, num_training=6, num_test=2, phantom=phantom),
        budget=DemoBudget(epochs=1, iterations_per_epoch=2, val_iterations=1),
        gpu_memory_target_gb=0.5,
    )


def default_settings(seed: int = 0) -> DemoSettings:
    return replace(DemoSettings(), dataset=replace(DemoDatasetSpec(), seed=seed))


def check_workspace_settings(root: Path, settings: DemoSettings) -> bool:
    """Record ``settings`` in ``root`` or check them against the recorded ones; True when they were recorded."""
    path = Path(root) / STATE_FILE
    wanted = settings.to_json()
    if not path.is_file():
        save_json(wanted, path)
        return False
    try:
        recorded = load_json(path)
    except (OSError, ValueError) as err:
        raise AutoSegError(f"{path} is unreadable ({err}); start over with `autoseg demo --fresh`.") from err
    if recorded != json.loads(json.dumps(wanted)):  # compared as JSON (tuples read back as lists)
        raise AutoSegError(
            f"The demo workspace {root} was made with other settings ({path}). Re-run with the same options, "
            f"start over with --fresh, or choose another --workspace."
        )
    return True

