"""Where the demo puts everything: one root folder holding an nnU-Net workspace and the demo's outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoseg.demo.settings import CONFIGURATION, DATASET_NAME, FOLD, PLANS_NAME
from autoseg.paths import ModelFolderName, Workspace


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo puts everything, under one root folder."""

    root: Path

    @property
    def workspace(self) -> Workspace:
        return Workspace.from_root(self.root)

    @property
    def raw_dataset(self) -> Path:
        return self.workspace.raw / DATASET_NAME

    @property
    def preprocessed_dataset(self) -> Path:
        return self.workspace.preprocessed / DATASET_NAME

    @property
    def plans_file(self) -> Path:
        return self.preprocessed_dataset / f"{PLANS_NAME}.json"

    def model_folder(self, trainer: str) -> Path:
        return self.workspace.results / DATASET_NAME / str(ModelFolderName(trainer, PLANS_NAME, CONFIGURATION))

    def fold_folder(self, trainer: str) -> Path:
        return self.model_folder(trainer) / f"fold_{FOLD}"

    @property
    def test_images(self) -> Path:
        return self.raw_dataset / "imagesTs"

    @property
    def test_labels(self) -> Path:
        return self.raw_dataset / "labelsTs"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def postprocessed(self) -> Path:
        return self.root / "predictions_postprocessed"


def shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter to read and to copy)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
