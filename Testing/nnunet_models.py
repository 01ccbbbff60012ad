"""Small but real nnU-Net v2 model folders, built by nnU-Net itself, to use as oracles for predictor tests.

``build_nnunet_model`` makes, inside a :class:`Workspace`:

1. a small raw dataset (symlinks to ``SHARED_DATA``; a fresh ``dataset.json``),
2. ``nnUNetv2_plan_and_preprocess`` for the requested configurations (and planner),
3. ``nnUNet_results/DatasetXXX_Name/nnUNetTrainer__<plans>__<config>/`` with ``dataset.json``,
   ``plans.json``, ``dataset_fingerprint.json`` and ``fold_K/{checkpoint_final.pth, checkpoint_best.pth,
   debug.json, progress.png, training_log_*.txt}`` for each fold.

Step 3 runs nnU-Net's own ``nnUNetTrainer`` (``run.run_training.get_trainer_from_args`` + ``run_training``)
for one epoch of a few iterations on the CPU, so the network, the checkpoint keys and values
(``network_weights``, ``optimizer_state``, ``grad_scaler_state``, ``logging``, ``_best_ema``,
``current_epoch``, ``init_args``, ``trainer_name``, ``inference_allowed_mirroring_axes``) are exactly
what the trainer writes. The trainer is the plain ``nnUNetTrainer`` class with its iteration counts
changed on the instance (a subclass would put its own name in ``trainer_name`` and the results folder,
and nnU-Net could only find it again by importing every trainer module, which needs timm, see below).
A few real SGD steps already give decisive, non-uniform predictions with all labels present; each fold
has its own seed (and its own split), so folds differ.

Everything nnU-Net runs in a subprocess: nnU-Net reads ``nnUNet_raw``/... at import time.

Without timm (not installed in the test environment) nnU-Net works as long as the trainer class is
``nnUNetTrainer``: ``recursive_find_python_class`` finds it in the top-level module before it
recurses into ``training/nnUNetTrainer/primus``, whose import needs timm. Any other trainer name
(``-tr nnUNetTrainer_5epochs``, a checkpoint whose ``trainer_name`` is not ``nnUNetTrainer``) fails with
``ModuleNotFoundError: No module named 'timm'``; :func:`nnunet_subprocess_env` therefore puts a stub
``timm`` package (importable, unusable) on ``PYTHONPATH`` when the real one is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from oracle import BIN, SHARED_DATA, nnunet_env

from autoseg.paths import Workspace

TRAINER = "nnUNetTrainer"
PLANNERS = {
    # planner class name -> plans identifier it writes
    "ExperimentPlanner": "nnUNetPlans",
    "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
    "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans",
    "nnUNetPlannerResEncXL": "nnUNetResEncUNetXLPlans",
}


@dataclass(frozen=True)
class Kind:
    """A small dataset built from one of the shared datasets."""

    source: str
    dataset_id: int
    name: str
    num_training: int
    labels: Mapping[str, object] | None = None  # None: keep the source's labels
    regions_class_order: Sequence[int] | None = None
    # default number of training iterations (one epoch) per configuration
    iterations: Mapping[str, int] = field(default_factory=dict)
    # patch size per configuration written into the plans before training (None: nnU-Net's own plan)
    patch_size: Mapping[str, Sequence[int]] = field(default_factory=dict)
    # crop every image/label to this box (SimpleITK x, y, z), centred on the labelled foreground, so that
    # training and prediction stay quick; the crop keeps spacing/direction and moves the origin
    crop: Sequence[int] | None = None
    # generated source instead of SHARED_DATA/<source>: {"shape": (z, y, x), "spacing": (z, y, x), "cases": n,
    # "seed": s[, "last_spacing": (z, y, x) of the last case]}, synthetic CT-like volumes of
    # autoseg.demo.synthetic.synthetic_case (labels 0/1/2, identity
    # direction); written once under TMPDIR (see _source_folder)
    generator: Mapping[str, object] | None = None
    # extra nnUNetv2_plan_and_preprocess arguments, e.g. ("-gpu_memory_target", "1")
    plan_args: Sequence[str] = ()

    @property
    def dataset_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"


KINDS: dict[str, Kind] = {
    # 8 training cases of MSD Hippocampus (about 35x51x36 voxels, 1 mm, labels 0/1/2)
    "hippocampus": Kind("Hippocampus", 901, "OracleHippocampus", 8, iterations={"3d_fullres": 7, "2d": 7}),
    # the same cases, region-based: sigmoid outputs, regions_class_order
    "regions": Kind(
        "Hippocampus", 902, "OracleHippocampusRegions", 8,
        labels={"background": 0, "hippocampus": [1, 2], "posterior": [2]}, regions_class_order=[1, 2],
        iterations={"3d_fullres": 14, "2d": 10},
    ),
    # BraTS (2 channels FLAIR/T1c, float32 images and labels, labels 0..4), each case cropped to 64x64x48
    # voxels around the tumour (origin changes; spacing 1 mm, identity direction); 5 training cases
    "brats": Kind("BraTS2015Subset", 903, "OracleBraTS", 5, crop=(64, 64, 48), iterations={"3d_fullres": 4, "2d": 8}),
    # the full 240x240x155 volumes. nnU-Net plans a 128^3 (3d) / 192x160 (2d) patch, far too slow to
    # train on 2 CPU cores; the patch is shrunk in the plans (architecture unchanged: still divisible by
    # the total pooling), a valid nnU-Net plans edit. Pass patch_size={} to keep nnU-Net's. Prediction
    # of one case still takes minutes on 2 cores.
    "brats_full": Kind(
        "BraTS2015Subset", 904, "OracleBraTSFull", 5,
        patch_size={"3d_fullres": (64, 64, 64), "2d": (128, 128)},
    ),
    # 6 generated 48x112x112 volumes (one channel, labels 0/1/2; 5 for training at 1 mm, 1 held out at
    # 1.2x0.9x0.9 mm so that prediction resamples it, and the previous stage, to the 1 mm grid) planned
    # with a 0.2 GB GPU memory target: nnU-Net then plans a fullres patch far smaller than the median shape
    # (< 25% of its voxels), hence 3d_lowres and 3d_cascade_fullres, with patches small enough to train and
    # predict on 2 CPU cores. For the cascade train 3d_lowres fold "all" with validation (its validation
    # writes predicted_next_stage/3d_cascade_fullres for every case, which 3d_cascade_fullres trains on).
    "cascade": Kind(
        "generated", 905, "OracleCascade", 5,
        generator={"shape": (48, 112, 112), "spacing": (1.0, 1.0, 1.0), "cases": 6, "seed": 905,
                   "last_spacing": (1.2, 0.9, 0.9)},
        plan_args=("-gpu_memory_target", "0.2"),
        iterations={"3d_lowres": 4, "3d_cascade_fullres": 4, "3d_fullres": 4},
    ),
}

# at most this many samples per training batch (the plans' batch size stays in the plans and checkpoint)
TRAIN_BATCH_SIZE_CAP = {"2d": 12, "3d": 2}

_SOURCE_SUFFIX = ".nii.gz"
DEFAULT_ITERATIONS = 4


# --------------------------------------------------------------------------------------------- subprocesses


def _timm_stub_dir() -> Path:
    """A ``timm`` package whose names can be imported but not used (see module docstring)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"autoseg_timm_stub_{os.getuid()}"
    stub = (
        '"""Stub so that nnU-Net can import its Primus modules without timm; nothing here works."""\n'
        "class _Missing:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        raise ImportError('timm is not installed (this is a stub for the nnU-Net oracle)')\n"
        "def __getattr__(name):\n"
        "    if name.startswith('__'):\n"
        "        raise AttributeError(name)\n"
        "    return _Missing\n"
    )
    for package in ("timm", "timm/layers", "timm/models"):
        (folder / package).mkdir(parents=True, exist_ok=True)
        init = folder / package / "__init__.py"
        if not init.exists() or init.read_text() != stub:
            init.write_text(stub)
    eva = folder / "timm" / "models" / "eva.py"
    if not eva.exists() or eva.read_text() != stub:
        eva.write_text(stub)
    return folder


def nnunet_subprocess_env(workspace: Workspace, **overrides: str) -> dict[str, str]:
    """``oracle.nnunet_env`` plus ``overrides``, plus the timm stub when timm is not installed."""
    env = nnunet_env(workspace)
    env.update(overrides)
    if find_spec("timm") is None:
        stub = str(_timm_stub_dir())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), stub) if p)
    return env


def _run(command: list[str], env: dict[str, str], what: str, timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


# --------------------------------------------------------------------------------------------- raw data


def _source_folder(kind: Kind) -> Path:
    """SHARED_DATA/<source>, or the generated dataset of ``kind.generator`` (written on first use)."""
    if kind.generator is None:
        return SHARED_DATA / kind.source
    key = hashlib.sha1(json.dumps(_jsonable(dict(kind.generator)), sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"autoseg_generated_{os.getuid()}" / f"{kind.name}_{key}"
    if (folder / "dataset.json").is_file():
        return folder
    import numpy as np
    import SimpleITK as sitk

    from autoseg.demo.synthetic import synthetic_case

    shape, spacing = tuple(kind.generator["shape"]), tuple(kind.generator["spacing"])
    partial = folder.with_name(f"{folder.name}.partial{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    for sub in ("imagesTr", "labelsTr"):
        (partial / sub).mkdir(parents=True)
    num_cases = int(kind.generator["cases"])
    for i in range(num_cases):
        if i == num_cases - 1 and kind.generator.get("last_spacing"):
            spacing = tuple(kind.generator["last_spacing"])
        image, label = synthetic_case(int(kind.generator["seed"]) * 1000 + i, shape=shape, spacing=spacing)
        origin = np.random.RandomState(i).uniform(-50, 50, 3).tolist()
        for array, path in ((image, f"imagesTr/case_{i:03d}_0000{_SOURCE_SUFFIX}"),
                            (label, f"labelsTr/case_{i:03d}{_SOURCE_SUFFIX}")):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(spacing[::-1])
            itk.SetOrigin(origin)
            sitk.WriteImage(itk, str(partial / path), True)
    (partial / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": int(kind.generator["cases"]), "file_ending": _SOURCE_SUFFIX}, indent=4))
    try:
        partial.rename(folder)
    except OSError:  # written by someone else meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _source_cases(kind: Kind) -> list[str]:
    labels = sorted((_source_folder(kind) / "labelsTr").iterdir())
    return [p.name[: -len(_SOURCE_SUFFIX)] for p in labels]


def _split_cases(kind: Kind) -> tuple[list[str], list[str]]:
    """(training cases, held-out cases). Held-out cases are taken from the end of the sorted list."""
    cases = _source_cases(kind)
    training = cases[: kind.num_training]
    return training, [c for c in reversed(cases) if c not in training]


def _crop_index(spec: Kind, case: str) -> tuple[list[int], list[int]]:
    """(start, size) in SimpleITK index order of the crop box of ``case``: centred on the foreground."""
    import numpy as np
    import SimpleITK as sitk

    label = sitk.ReadImage(str(_source_folder(spec) / "labelsTr" / f"{case}{_SOURCE_SUFFIX}"))
    array = sitk.GetArrayViewFromImage(label)  # z, y, x
    foreground = np.argwhere(array > 0)
    centre = (foreground.min(0) + foreground.max(0)) // 2 if len(foreground) else np.array(array.shape) // 2
    centre = centre[::-1]  # x, y, z
    image_size = label.GetSize()
    size = [min(int(c), int(n)) for c, n in zip(spec.crop, image_size)]
    start = [int(min(max(c - s // 2, 0), n - s)) for c, s, n in zip(centre, size, image_size)]
    return start, size


def _place_case(spec: Kind, case: str, num_channels: int, images: Path, labels: Path | None,
                copy: bool = False) -> None:
    """Put ``case``'s images (and label) into the folders: symlinks, copies, or cropped copies."""
    source = _source_folder(spec)
    files = [(source / "imagesTr" / f"{case}_{c:04d}{_SOURCE_SUFFIX}", images / f"{case}_{c:04d}{_SOURCE_SUFFIX}")
             for c in range(num_channels)]
    if labels is not None:
        files.append((source / "labelsTr" / f"{case}{_SOURCE_SUFFIX}", labels / f"{case}{_SOURCE_SUFFIX}"))
    box = _crop_index(spec, case) if spec.crop is not None else None
    for src, dst in files:
        if dst.exists() or dst.is_symlink():
            continue
        if box is not None:
            import SimpleITK as sitk

            sitk.WriteImage(sitk.RegionOfInterest(sitk.ReadImage(str(src)), box[1], box[0]), str(dst),
                            useCompression=True)
        elif copy:
            shutil.copyfile(src, dst)
        else:
            dst.symlink_to(src)


def _source_dataset_json(kind: Kind) -> dict:
    return json.loads((_source_folder(kind) / "dataset.json").read_text())


def make_raw_dataset(workspace: Workspace, kind: str) -> Path:
    """Create ``nnUNet_raw/DatasetXXX_Name`` for ``kind`` (symlinked images/labels, new dataset.json)."""
    spec = KINDS[kind]
    source_json = _source_dataset_json(spec)
    num_channels = len(source_json["channel_names"])
    target = workspace.raw / spec.dataset_name
    (target / "imagesTr").mkdir(parents=True, exist_ok=True)
    (target / "labelsTr").mkdir(parents=True, exist_ok=True)
    training, _ = _split_cases(spec)
    for case in training:
        _place_case(spec, case, num_channels, target / "imagesTr", target / "labelsTr")
    dataset_json = {
        "name": spec.name,
        "description": f"{len(training)} cases of {spec.source} (test oracle)",
        "channel_names": source_json["channel_names"],
        "labels": dict(spec.labels) if spec.labels is not None else source_json["labels"],
        "numTraining": len(training),
        "file_ending": source_json["file_ending"],
    }
    if spec.regions_class_order is not None:
        dataset_json["regions_class_order"] = list(spec.regions_class_order)
    (target / "dataset.json").write_text(json.dumps(dataset_json, indent=4))
    return target


def write_prediction_inputs(model_or_kind: Mapping | str, folder: str | os.PathLike, n: int = 2,
                            cases: Sequence[str] | None = None) -> list[str]:
    """Copy ``n`` held-out cases (or ``cases``) as ``{case}_{CCCC}.nii.gz`` into ``folder``; return the case ids.

    Held-out cases were not used for training; where the source has too few (BraTS: 6 cases, 5 for
    training) training cases follow.
    """
    kind = model_or_kind if isinstance(model_or_kind, str) else model_or_kind["kind"]
    spec = KINDS[kind]
    num_channels = len(_source_dataset_json(spec)["channel_names"])
    if cases is None:
        training, heldout = _split_cases(spec)
        cases = (heldout + training)[:n]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        _place_case(spec, case, num_channels, folder, None, copy=True)
    return list(cases)


# --------------------------------------------------------------------------------------------- training

_TRAIN_SNIPPET = r"""
import json, random, sys, time
import numpy as np
import torch
from nnunetv2.run.run_training import get_trainer_from_args

job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
timings = {}
for configuration, folds in job["folds"].items():
    for fold in folds:
        start = time.time()
        seed = job["seed"] + 1000 * (fold if isinstance(fold, int) else 99) + sum(map(ord, configuration))
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        trainer = get_trainer_from_args(job["dataset"], configuration, fold, job["trainer"], job["plans"],
                                        False, torch.device("cpu"))
        trainer.initialize()
        cap = job["batch_size_cap"]["2d" if len(trainer.configuration_manager.patch_size) == 2 else "3d"]
        trainer.batch_size = min(trainer.batch_size, cap)
        trainer.num_epochs = 1
        trainer.num_iterations_per_epoch = job["iterations"][configuration]
        trainer.num_val_iterations_per_epoch = 1
        trainer.run_training()
        if configuration in job["validation"]:
            if not job["validation_tta"]:
                # after run_training: checkpoint_final.pth keeps the trainer's mirroring axes
                trainer.inference_allowed_mirroring_axes = None
            trainer.perform_actual_validation(False)
        timings[f"{configuration}/fold_{fold}"] = time.time() - start
        del trainer
print("TIMINGS" + json.dumps(timings))
"""

_SCALE_SNIPPET = r"""
import json, sys
import torch
job = json.loads(sys.argv[1])
for path in job["checkpoints"]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    for key, value in checkpoint["network_weights"].items():
        if ".seg_layers." in key:
            value.mul_(job["scale"])
    torch.save(checkpoint, path)
"""


def _plan_and_preprocess(workspace: Workspace, spec: Kind, configurations: Sequence[str], planner: str,
                         timeout: float) -> None:
    # 3d_cascade_fullres uses 3d_fullres' preprocessed data
    configurations = list(dict.fromkeys("3d_fullres" if c == "3d_cascade_fullres" else c for c in configurations))
    args = ["-d", str(spec.dataset_id), "-c", *configurations, "-np", "2", "-npfp", "2", "--verify_dataset_integrity",
            *spec.plan_args]
    if planner != "ExperimentPlanner":
        args += ["-pl", planner]
    _run([str(BIN / "nnUNetv2_plan_and_preprocess"), *args], nnunet_subprocess_env(workspace),
         "nnUNetv2_plan_and_preprocess", timeout)


def _override_patch_size(plans_file: Path, patch_size: Mapping[str, Sequence[int]]) -> None:
    plans = json.loads(plans_file.read_text())
    changed = False
    for configuration, size in patch_size.items():
        conf = plans["configurations"].get(configuration)
        if conf is None or "patch_size" not in conf:
            continue
        total = [1] * len(size)
        for stride in conf["architecture"]["arch_kwargs"]["strides"]:
            stride = stride if isinstance(stride, (list, tuple)) else [stride] * len(size)
            total = [t * s for t, s in zip(total, stride)]
        size = [max(int(s), t) // t * t for s, t in zip(size, total)]  # keep divisible by the total pooling
        size = [min(s, p) for s, p in zip(size, conf["patch_size"])]  # never larger than nnU-Net's
        if list(size) != conf["patch_size"]:
            conf["patch_size"] = list(size)
            changed = True
    if changed:
        plans_file.write_text(json.dumps(plans, indent=4, sort_keys=False))


def build_nnunet_model(
    workspace: Workspace,
    kind: str,
    configurations: Sequence[str],
    folds: Sequence[int | str],
    planner: str = "ExperimentPlanner",
    *,
    iterations: int | Mapping[str, int] | None = None,
    seed: int = 0,
    logit_scale: float = 1.0,
    patch_size: Mapping[str, Sequence[int]] | None = None,
    validation: bool | Sequence[str] = False,
    train_batch_size_cap: Mapping[str, int] | None = None,
    train_folds: Mapping[str, Sequence[int | str]] | None = None,
    validation_tta: bool = True,
    timeout: float = 1200,
) -> dict:
    """Build an nnU-Net v2 model for ``kind`` ("hippocampus", "regions", "brats") in ``workspace``.

    ``configurations``: "3d_fullres" and/or "2d" (others work if nnU-Net plans them). ``planner``:
    "ExperimentPlanner" (nnUNetPlans) or "nnUNetPlannerResEncM" (nnUNetResEncUNetMPlans) etc.
    ``iterations``: training iterations of the single epoch (default per kind/configuration).
    ``logit_scale``: multiply the segmentation heads (``decoder.seg_layers.*``) in the saved checkpoints
    (1.0: untouched, exactly what the trainer wrote). ``patch_size``: per configuration patch size
    written into the preprocessed plans before training (default: the kind's; ``{}``: nnU-Net's plan).
    ``validation``: also run the trainer's final validation (``fold_K/validation/``); True: for every
    configuration, or a list of configurations (a 3d_lowres validation also writes
    ``predicted_next_stage/3d_cascade_fullres``, what 3d_cascade_fullres trains on).
    ``train_folds``: {configuration: folds} trained instead of ``folds`` for these configurations (e.g.
    {"3d_lowres": ["all"]} so that the lowres validation predicts every case for the cascade).
    Configurations are trained in the given order. ``validation_tta=False``: the validation predicts
    without mirroring (8x quicker on the CPU; the checkpoints still hold the trainer's mirroring axes).
    ``train_batch_size_cap``: {"2d": n, "3d": n}, the most samples per training batch (default
    ``TRAIN_BATCH_SIZE_CAP``; ResEnc plans ask for 6 3d / 230 2d Hippocampus patches); the plans keep
    nnU-Net's batch size.

    Returns a dict, see :func:`_describe`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; known: {sorted(PLANNERS)}")
    spec = KINDS[kind]
    configurations = list(dict.fromkeys(configurations))
    folds = list(dict.fromkeys(folds))
    plans_identifier = PLANNERS[planner]
    timings: dict[str, object] = {}

    start = time.time()
    make_raw_dataset(workspace, kind)
    _plan_and_preprocess(workspace, spec, configurations, planner, timeout)
    timings["plan_and_preprocess"] = time.time() - start

    preprocessed = workspace.preprocessed / spec.dataset_name
    _override_patch_size(preprocessed / f"{plans_identifier}.json",
                         spec.patch_size if patch_size is None else patch_size)

    if isinstance(iterations, int):
        per_config = dict.fromkeys(configurations, iterations)
    else:
        per_config = {c: (iterations or {}).get(c, spec.iterations.get(c, DEFAULT_ITERATIONS)) for c in configurations}
    folds_per_config = {c: list((train_folds or {}).get(c, folds)) for c in configurations}
    validated = list(configurations) if validation is True else list(validation or [])
    job = {
        "dataset": str(spec.dataset_id), "plans": plans_identifier, "trainer": TRAINER, "seed": seed,
        "folds": folds_per_config, "iterations": per_config, "validation": validated, "validation_tta": validation_tta,
        "batch_size_cap": dict(TRAIN_BATCH_SIZE_CAP if train_batch_size_cap is None else train_batch_size_cap),
        "threads": max(1, min(4, os.cpu_count() or 1)),
    }
    start = time.time()
    env = nnunet_subprocess_env(workspace, nnUNet_n_proc_DA="0", OMP_NUM_THREADS=str(job["threads"]))
    result = _run([sys.executable, "-c", _TRAIN_SNIPPET, json.dumps(job)], env, "nnUNetTrainer", timeout)
    timings["train"] = time.time() - start
    match = re.search(r"^TIMINGS(.*)$", result.stdout, flags=re.M)
    timings["train_per_fold"] = json.loads(match.group(1)) if match else {}

    info = _describe(workspace, kind, configurations, folds, planner, train_folds)
    if logit_scale != 1.0:
        checkpoints = [str(p) for c in configurations for f in folds_per_config[c]
                       for p in (info["model_folders"][c] / f"fold_{f}").glob("checkpoint_*.pth")]
        _run([sys.executable, "-c", _SCALE_SNIPPET, json.dumps({"checkpoints": checkpoints, "scale": logit_scale})],
             nnunet_subprocess_env(workspace), "scaling the segmentation heads", timeout)
    for configuration in configurations:
        for fold in folds_per_config[configuration]:
            checkpoint = info["checkpoints"][configuration][fold]
            if not checkpoint.is_file():
                raise RuntimeError(f"nnU-Net did not write {checkpoint}:\n{result.stdout[-3000:]}")
    info["timings"] = timings
    info["iterations"] = per_config
    info["seed"] = seed
    info["logit_scale"] = logit_scale
    (workspace.results / spec.dataset_name / "oracle_build_info.json").write_text(
        json.dumps(_jsonable(info), indent=2))
    return info


def _describe(workspace: Workspace, kind: str, configurations: Sequence[str], folds: Sequence[int | str],
              planner: str, train_folds: Mapping[str, Sequence[int | str]] | None = None) -> dict:
    """The dict ``build_nnunet_model`` returns.

    kind, planner, workspace (Workspace), dataset_id (int), dataset_name ("Dataset901_..."),
    plans_identifier ("nnUNetPlans" / "nnUNetResEncUNetMPlans"), trainer ("nnUNetTrainer"),
    configurations, folds, model_folders {config: Path to Trainer__Plans__config},
    checkpoints {config: {fold: Path to fold_K/checkpoint_final.pth}}, raw_dataset (Path),
    preprocessed_dataset (Path), training_cases, heldout_cases (case ids), num_channels, file_ending,
    labels (dataset.json labels), regions_class_order (or None), has_regions (bool); after a build also
    timings {plan_and_preprocess, train, train_per_fold}, iterations, seed, logit_scale.
    """
    spec = KINDS[kind]
    plans_identifier = PLANNERS[planner]
    results = workspace.results / spec.dataset_name
    model_folders = {c: results / f"{TRAINER}__{plans_identifier}__{c}" for c in configurations}
    source_json = _source_dataset_json(spec)
    training, heldout = _split_cases(spec)
    labels = dict(spec.labels) if spec.labels is not None else source_json["labels"]
    return {
        "kind": kind,
        "planner": planner,
        "workspace": workspace,
        "dataset_id": spec.dataset_id,
        "dataset_name": spec.dataset_name,
        "plans_identifier": plans_identifier,
        "trainer": TRAINER,
        "configurations": list(configurations),
        "folds": list(folds),
        "model_folders": model_folders,
        "checkpoints": {c: {f: model_folders[c] / f"fold_{f}" / "checkpoint_final.pth"
                            for f in (train_folds or {}).get(c, folds)} for c in configurations},
        "raw_dataset": workspace.raw / spec.dataset_name,
        "preprocessed_dataset": workspace.preprocessed / spec.dataset_name,
        "training_cases": training,
        "heldout_cases": heldout,
        "num_channels": len(source_json["channel_names"]),
        "file_ending": source_json["file_ending"],
        "labels": labels,
        "regions_class_order": list(spec.regions_class_order) if spec.regions_class_order else None,
        "has_regions": spec.regions_class_order is not None,
    }


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Workspace):
        return {"raw": str(value.raw), "preprocessed": str(value.preprocessed), "results": str(value.results)}
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------- prediction


def model_ids(model: Mapping, configuration: str | None = None) -> dict[str, str]:
    """What ``nnUNetv2_predict`` needs to find a model of ``build_nnunet_model``'s result."""
    configuration = configuration or model["configurations"][0]
    return {"dataset": str(model["dataset_id"]), "configuration": configuration,
            "plans": model["plans_identifier"], "trainer": model["trainer"]}


def predict_with_nnunet(
    workspace: Workspace,
    model_folder_or_ids: str | os.PathLike | Mapping[str, str],
    input_folder: str | os.PathLike,
    output_folder: str | os.PathLike,
    folds: Iterable[int | str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 1200,
) -> Path:
    """Run nnU-Net's prediction on the CPU; return ``output_folder``.

    ``model_folder_or_ids``: a ``Trainer__Plans__config`` folder (runs ``nnUNetv2_predict_from_modelfolder
    -m``), or a mapping with dataset/configuration[/plans/trainer] (runs ``nnUNetv2_predict -d -c -p -tr``),
    e.g. ``model_ids(build_nnunet_model(...), "2d")``. ``folds``: None = nnU-Net's default (``-f 0 1 2 3 4``
    for nnUNetv2_predict, the folds present for a model folder). ``extra_args``: e.g. ["--disable_tta",
    "-chk", "checkpoint_best.pth", "--save_probabilities", "-step_size", "0.5"]. ``-npp 1 -nps 1`` and
    ``--disable_progress_bar`` are added unless given.
    """
    output_folder = Path(output_folder)
    if isinstance(model_folder_or_ids, Mapping):
        ids = model_folder_or_ids
        command = [str(BIN / "nnUNetv2_predict"), "-d", str(ids["dataset"]), "-c", ids["configuration"],
                   "-p", ids.get("plans", "nnUNetPlans"), "-tr", ids.get("trainer", TRAINER)]
    else:
        command = [str(BIN / "nnUNetv2_predict_from_modelfolder"), "-m", str(model_folder_or_ids)]
    command += ["-i", str(input_folder), "-o", str(output_folder), "-device", "cpu"]
    if folds is not None:
        command += ["-f", *[str(f) for f in folds]]
    extra = list(extra_args)
    for flag, value in (("-npp", "1"), ("-nps", "1")):
        if flag not in extra:
            extra += [flag, value]
    if "--disable_progress_bar" not in extra:
        extra.append("--disable_progress_bar")
    _run(command + extra, nnunet_subprocess_env(workspace), Path(command[0]).name, timeout)
    return output_folder


# --------------------------------------------------------------------------------------------- caching


class NnUNetModelFactory:
    """Builds each (kind, configurations, folds, planner, options) once, under ``root``.

    With ``persistent=True`` (or env ``AUTOSEG_NNUNET_MODEL_CACHE=<folder>`` in the conftest fixture) a
    model whose ``oracle_build_info.json`` is already there is reused across sessions.
    """

    def __init__(self, root: str | os.PathLike, persistent: bool = False):
        self.root = Path(root)
        self.persistent = persistent
        self._cache: dict[str, dict] = {}

    def __call__(self, kind: str, configurations: Sequence[str] = ("3d_fullres",), folds: Sequence[int | str] = (0,),
                 planner: str = "ExperimentPlanner", **options) -> dict:
        key_data = {"kind": kind, "configurations": list(configurations), "folds": list(folds), "planner": planner,
                    **{k: _jsonable(v) for k, v in sorted(options.items())}}
        key = json.dumps(key_data, sort_keys=True)
        if key in self._cache:
            return self._cache[key]
        slug = "{}_{}_{}_f{}_{}".format(kind, planner, "-".join(configurations), "-".join(map(str, folds)),
                                        hashlib.sha1(key.encode()).hexdigest()[:8])
        folder = self.root / slug
        workspace = Workspace.from_root(folder)
        info_file = workspace.results / KINDS[kind].dataset_name / "oracle_build_info.json"
        if self.persistent and info_file.is_file():
            stored = json.loads(info_file.read_text())
            info = _describe(workspace, kind, list(configurations), list(folds), planner, options.get("train_folds"))
            info.update({k: stored[k] for k in ("timings", "iterations", "seed", "logit_scale") if k in stored})
        else:
            if folder.exists():
                shutil.rmtree(folder)
            info = build_nnunet_model(workspace, kind, list(configurations), list(folds), planner, **options)
        self._cache[key] = info
        return info
