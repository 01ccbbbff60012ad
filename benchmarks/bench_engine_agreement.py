"""Agreement of the OpenVINO engine (fp32 and bf16) with the PyTorch engine on every nnU-Net test model.

The models are the ones the tests use (built by nnU-Net itself, ``Testing/nnunet_models.py``): Hippocampus
3d_fullres (2 folds) and 2d, ResEnc M, region-based, BraTS (2 channels) and the cascade's second stage. Each is
run on its held-out cases with test-time augmentation by ``autoseg predict -engine torch`` (fp32, the same
operations as nnU-Net), ``-engine openvino`` (fp32) and ``-engine openvino -precision bf16``; printed: the
fraction of identical voxels of each OpenVINO run against PyTorch, the worst case, and the wall time.

    python benchmarks/bench_engine_agreement.py [--cache DIR] [--cases 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from nnunet_models import NnUNetModelFactory, write_prediction_inputs

from autoseg.cli.main import main as autoseg_main

#: (label, kind, configurations, folds of the factory call, planner, options, configuration to run, folds to run)
MODELS = [
    ("3d_fullres, 2 folds", "hippocampus", ["3d_fullres", "2d"], [0, 1], "ExperimentPlanner", {}, "3d_fullres",
     ["0", "1"]),
    ("2d, 2 folds", "hippocampus", ["3d_fullres", "2d"], [0, 1], "ExperimentPlanner", {}, "2d", ["0", "1"]),
    ("ResEnc M", "hippocampus", ["3d_fullres"], [0], "nnUNetPlannerResEncM", {}, "3d_fullres", ["0"]),
    ("regions", "regions", ["3d_fullres"], [0], "ExperimentPlanner", {}, "3d_fullres", ["0"]),
    ("BraTS, 2 channels", "brats", ["3d_fullres"], [0], "ExperimentPlanner", {}, "3d_fullres", ["0"]),
    ("cascade stage 2", "cascade", ["3d_lowres", "3d_cascade_fullres"], [0], "ExperimentPlanner",
     {"train_folds": {"3d_lowres": ["all"]}, "validation": ["3d_lowres"], "validation_tta": False},
     "3d_cascade_fullres", ["0"]),
]
RUNS = {"openvino fp32": ["-engine", "openvino"], "openvino bf16": ["-engine", "openvino", "-precision", "bf16"]}


def identical_voxels(a: Path, b: Path) -> tuple[int, int, float]:
    """(identical, total, worst case fraction) over the segmentations in ``a`` and ``b``."""
    same = total = 0
    worst = 1.0
    for file in sorted(a.glob("*.nii.gz")):
        x = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))
        y = sitk.GetArrayFromImage(sitk.ReadImage(str(b / file.name)))
        same += int((x == y).sum())
        total += x.size
        worst = min(worst, float((x == y).mean()))
    return same, total, worst


def predict(model_folder: Path, inputs: Path, output: Path, folds: list[str], flags: list[str]) -> float:
    start = time.perf_counter()
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(output), "-m", str(model_folder), "-f", *folds,
                         "-device", "cpu", "--no_pbar", *flags])
    if code != 0:
        raise RuntimeError(f"autoseg predict {' '.join(flags)} failed for {model_folder}")
    return time.perf_counter() - start


def run_model(factory: NnUNetModelFactory, entry: tuple, root: Path, cases: int) -> dict:
    label, kind, configurations, folds, planner, options, configuration, run_folds = entry
    model = factory(kind, configurations, folds, planner=planner, **options)
    work = root / label.replace(" ", "_").replace(",", "")
    inputs = work / "inputs"
    if not inputs.exists():
        write_prediction_inputs(model, inputs, n=cases)
    extra: list[str] = []
    if configuration == "3d_cascade_fullres":
        lowres = work / "lowres"
        if not lowres.exists():
            predict(model["model_folders"]["3d_lowres"], inputs, lowres, ["all"], ["-engine", "torch"])
        extra = ["-prev_stage_predictions", str(lowres)]
    folder = model["model_folders"][configuration]
    row = {"model": label, "torch_s": predict(folder, inputs, work / "torch", run_folds, ["-engine", "torch", *extra])}
    for name, flags in RUNS.items():
        out = work / name.replace(" ", "_")
        row[f"{name}_s"] = predict(folder, inputs, out, run_folds, [*flags, *extra])
        same, total, worst = identical_voxels(work / "torch", out)
        row[name] = same / total
        row[f"{name} worst case"] = worst
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=None, help="folder keeping the nnU-Net models between runs")
    parser.add_argument("--cases", type=int, default=4, help="held-out cases per model (default 4)")
    args = parser.parse_args()
    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench_engines_"))
    factory = NnUNetModelFactory(root / "models", persistent=bool(args.cache))
    print(f"{'model':<22} {'fp32 identical':>15} {'(worst case)':>13} {'bf16 identical':>15} {'(worst case)':>13} "
          f"{'torch s':>8} {'fp32 s':>7} {'bf16 s':>7}", flush=True)
    rows = []
    for entry in MODELS:
        row = run_model(factory, entry, root / "runs", args.cases)
        rows.append(row)
        fp32, bf16 = (f"{100 * row[n]:>14.3f}% {100 * row[f'{n} worst case']:>12.3f}%" for n in RUNS)
        print(f"{row['model']:<22} {fp32} {bf16} "
              f"{row['torch_s']:>8.1f} {row['openvino fp32_s']:>7.1f} {row['openvino bf16_s']:>7.1f}", flush=True)
    (root / "bench_engine_agreement.json").write_text(json.dumps(rows, indent=1))
    print(f"bf16 >= 99.9% on every model: {all(r['openvino bf16'] >= 0.999 for r in rows)}; "
          f"fp32 >= 99.9%: {all(r['openvino fp32'] >= 0.999 for r in rows)}")


if __name__ == "__main__":
    main()
