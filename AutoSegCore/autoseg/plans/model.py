"""Plans as typed dataclasses, read from and written to nnU-Net v2's ``<plans_name>.json`` schema.

The JSON layout is nnU-Net's, so plans written by either tool work in the other; keys we do not
model are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from autoseg.errors import PlanError
from autoseg.utils.files import save_json

#: Dotted class names nnU-Net writes into plans; AutoSeg maps them to its own implementations.
PLAIN_UNET_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC_UNET_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
CONV_OPS = {2: "torch.nn.modules.conv.Conv2d", 3: "torch.nn.modules.conv.Conv3d"}
INSTANCE_NORMS = {2: "torch.nn.modules.instancenorm.InstanceNorm2d", 3: "torch.nn.modules.instancenorm.InstanceNorm3d"}
KW_REQUIRES_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


@dataclass(frozen=True)
class ArchitecturePlan:
    """``architecture`` of a configuration: the network class and its constructor arguments."""

    network_class_name: str
    arch_kwargs: dict[str, Any]
    kw_requires_import: tuple[str, ...] = KW_REQUIRES_IMPORT

    @property
    def class_basename(self) -> str:
        return self.network_class_name.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "network_class_name": self.network_class_name,
            "arch_kwargs": self.arch_kwargs,
            "_kw_requires_import": list(self.kw_requires_import),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ArchitecturePlan:
        return cls(
            network_class_name=raw["network_class_name"],
            arch_kwargs=dict(raw["arch_kwargs"]),
            kw_requires_import=tuple(raw.get("_kw_requires_import", KW_REQUIRES_IMPORT)),
        )


@dataclass(frozen=True)
class ConfigurationPlan:
    """One fully resolved configuration (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres, ...)."""

    data_identifier: str
    preprocessor_name: str
    batch_size: int
    patch_size: tuple[int, ...]
    median_image_size_in_voxels: tuple[float, ...]
    spacing: tuple[float, ...]
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    resampling_fn_data: str
    resampling_fn_seg: str
    resampling_fn_data_kwargs: dict[str, Any]
    resampling_fn_seg_kwargs: dict[str, Any]
    resampling_fn_probabilities: str
    resampling_fn_probabilities_kwargs: dict[str, Any]
    architecture: ArchitecturePlan
    batch_dice: bool = False
    next_stage: str | None = None
    previous_stage: str | None = None
    inherits_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_2d(self) -> bool:
        return len(self.patch_size) == 2

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name in ("next_stage", "previous_stage", "inherits_from") and value is None:
                continue
            out[f.name] = value.to_dict() if isinstance(value, ArchitecturePlan) else _listify(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConfigurationPlan:
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
        kwargs["architecture"] = ArchitecturePlan.from_dict(raw["architecture"])
        for key in (
            "patch_size",
            "median_image_size_in_voxels",
            "spacing",
            "normalization_schemes",
            "use_mask_for_norm",
        ):
            kwargs[key] = tuple(raw[key])
        return cls(**kwargs, extra={k: v for k, v in raw.items() if k not in known})


@dataclass(frozen=True)
class InheritingConfiguration:
    """A configuration defined as changes to another one (nnU-Net's ``inherits_from``)."""

    inherits_from: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"inherits_from": self.inherits_from, **_listify(self.overrides)}


@dataclass(frozen=True)
class Plans:
    """A whole plans file."""

    dataset_name: str
    plans_name: str
    original_median_spacing_after_transp: tuple[float, ...]
    original_median_shape_after_transp: tuple[int, ...]
    image_reader_writer: str
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    configurations: dict[str, ConfigurationPlan | InheritingConfiguration]
    experiment_planner_used: str
    label_manager: str
    foreground_intensity_properties_per_channel: dict[str, dict[str, float]]
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ access
    @property
    def configuration_names(self) -> list[str]:
        return list(self.configurations)

    def configuration(self, name: str) -> ConfigurationPlan:
        """The configuration ``name`` with ``inherits_from`` resolved."""
        return self._resolve(name, ())

    def _resolve(self, name: str, visited: tuple[str, ...]) -> ConfigurationPlan:
        if name not in self.configurations:
            raise PlanError(
                f"Configuration {name!r} is not in plans {self.plans_name!r} of {self.dataset_name}. "
                f"Available: {', '.join(self.configurations)}."
            )
        entry = self.configurations[name]
        if isinstance(entry, ConfigurationPlan):
            return entry
        if entry.inherits_from in visited or entry.inherits_from == name:
            raise PlanError(f"Circular 'inherits_from' in plans: {' -> '.join((*visited, name, entry.inherits_from))}.")
        parent = self._resolve(entry.inherits_from, (*visited, name))
        merged = {**parent.to_dict(), **entry.overrides, "inherits_from": entry.inherits_from}
        return ConfigurationPlan.from_dict(merged)

    def with_configurations(self, configurations: dict[str, ConfigurationPlan | InheritingConfiguration]) -> Plans:
        return replace(self, configurations=configurations)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "configurations":
                value = {k: v.to_dict() for k, v in value.items()}
            out[f.name] = _listify(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "plans") -> Plans:
        try:
            configurations: dict[str, ConfigurationPlan | InheritingConfiguration] = {}
            for name, cfg in raw["configurations"].items():
                if "inherits_from" in cfg and "architecture" not in cfg:
                    overrides = {k: v for k, v in cfg.items() if k != "inherits_from"}
                    configurations[name] = InheritingConfiguration(cfg["inherits_from"], overrides)
                else:
                    configurations[name] = ConfigurationPlan.from_dict(cfg)
            known = {f.name for f in fields(cls)} - {"extra", "configurations"}
            kwargs = {k: raw[k] for k in known}
        except (KeyError, TypeError, AttributeError) as err:
            raise PlanError(f"{source}: malformed plans file (missing or wrong entry {err}).") from err
        for key in ("original_median_spacing_after_transp", "original_median_shape_after_transp",
                    "transpose_forward", "transpose_backward"):
            kwargs[key] = tuple(kwargs[key])
        extra = {k: v for k, v in raw.items() if k not in known and k != "configurations"}
        return cls(configurations=configurations, extra=extra, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Plans:
        path = Path(path)
        if not path.is_file():
            raise PlanError(
                f"Plans file {path} does not exist. Run `autoseg plan_and_preprocess -d ID` "
                f"(or `autoseg plan_experiment`) first."
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise PlanError(f"{path} is not valid JSON ({err}). Re-run planning to regenerate it.") from err
        return cls.from_dict(raw, source=str(path))

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path, sort_keys=False)


def _listify(value: Any) -> Any:
    """Tuples to lists (recursively), as JSON stores them."""
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    return value
