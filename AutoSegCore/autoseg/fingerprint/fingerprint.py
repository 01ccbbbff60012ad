"""The ``dataset_fingerprint.json`` model (nnU-Net v2 layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.errors import PlanError
from autoseg.utils.files import save_json

INTENSITY_KEYS = ("mean", "median", "std", "min", "max", "percentile_99_5", "percentile_00_5")


@dataclass(frozen=True)
class DatasetFingerprint:
    """What planning needs to know about a dataset, per case and aggregated."""

    spacings: list[list[float]]  # per case, array-axis order
    shapes_after_crop: list[list[int]]  # per case
    foreground_intensity_properties_per_channel: dict[str, dict[str, float]]  # "0" -> {mean, std, ...}
    median_relative_size_after_cropping: float

    def channel_intensity_properties(self, channel: int) -> dict[str, float]:
        return self.foreground_intensity_properties_per_channel[str(channel)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spacings": self.spacings,
            "shapes_after_crop": self.shapes_after_crop,
            "foreground_intensity_properties_per_channel": self.foreground_intensity_properties_per_channel,
            "median_relative_size_after_cropping": self.median_relative_size_after_cropping,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "fingerprint") -> DatasetFingerprint:
        try:
            return cls(
                spacings=[[float(s) for s in sp] for sp in raw["spacings"]],
                shapes_after_crop=[[int(s) for s in sh] for sh in raw["shapes_after_crop"]],
                foreground_intensity_properties_per_channel={
                    str(k): dict(v) for k, v in raw["foreground_intensity_properties_per_channel"].items()
                },
                median_relative_size_after_cropping=float(raw["median_relative_size_after_cropping"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PlanError(
                f"{source}: malformed dataset fingerprint ({err}). Re-run `autoseg extract_fingerprint`."
            ) from err

    @classmethod
    def load(cls, path: str | Path) -> DatasetFingerprint:
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"{path} does not exist. Run `autoseg extract_fingerprint -d ID` first.")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise PlanError(f"{path} is not valid JSON ({err}). Re-run `autoseg extract_fingerprint --clean`.") from err
        return cls.from_dict(raw, source=str(path))

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path)
