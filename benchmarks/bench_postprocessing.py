"""Benchmark: ``autoseg determine_postprocessing`` / ``apply_postprocessing`` vs nnU-Net's on the same folders.

Generates ``--cases`` CT-like 3D label maps of ``--size`` voxels (the demo phantom's organ/lesion shapes,
labels 0/1/2) as references, and predictions that are copies with spurious components (stray blobs of
each label and scattered speckle), so that nnU-Net's rule accepts postprocessing steps. Both tools then
determine the postprocessing on (predictions, references) and apply it to the predictions; the script
prints whole-process wall time and peak RAM of the process tree per tool, the ratios, whether the chosen
steps agree and the fraction of identical postprocessed voxels.

    python benchmarks/bench_postprocessing.py [--cases 12] [--size 96 192 192] [-np 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from common import BIN, measure, workspace_env

DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
                "numTraining": 0, "file_ending": ".nii.gz"}


def _reference(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = np.array(shape) / 2 + rng.uniform(-0.1, 0.1, 3) * np.array(shape)
    radii = np.array(shape) * rng.uniform(0.2, 0.3, 3)
    organ = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) < 1
    lesion = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre + radii * 0.3, radii * 0.3)) < 1
    label = np.zeros(shape, np.uint8)
    label[organ] = 1
    label[lesion & organ] = 2
    return label


def _prediction(reference: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    prediction = reference.copy()
    for value in (1, 2):
        for _ in range(4):  # stray blobs away from the organ
            corner = [int(rng.integers(0, max(1, n // 6))) for n in prediction.shape]
            size = [int(rng.integers(2, 6)) for _ in prediction.shape]
            prediction[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    speckle = (rng.random(prediction.shape) < 0.0005) & (prediction == 0)
    prediction[speckle] = rng.integers(1, 3, int(speckle.sum()))
    return prediction


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((-100.0, 20.0, 7.5))
    sitk.WriteImage(image, str(path), True)


def make_folders(root: Path, cases: int, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    predictions, references = root / "predictions", root / "references"
    predictions.mkdir(parents=True)
    references.mkdir(parents=True)
    for i in range(cases):
        reference = _reference(i, shape)
        _write(reference, references / f"case_{i:03d}.nii.gz")
        _write(_prediction(reference, i), predictions / f"case_{i:03d}.nii.gz")
    (predictions / "dataset.json").write_text(json.dumps(DATASET_JSON))
    plans = {"dataset_name": "Dataset999_Bench", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {},
             "original_median_spacing_after_transp": [2.5, 0.8, 0.8],
             "original_median_shape_after_transp": list(shape), "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {}}
    (predictions / "plans.json").write_text(json.dumps(plans))
    return predictions, references


def _steps(folder: Path) -> list:
    return json.loads((folder / "postprocessing.json").read_text())["postprocessing_kwargs"]


def _agreement(a: Path, b: Path) -> float:
    same = total = 0
    for file in sorted(a.glob("*.nii.gz")):
        x = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))
        y = sitk.GetArrayFromImage(sitk.ReadImage(str(b / file.name)))
        same += int((x == y).sum())
        total += x.size
    return same / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=3, default=[96, 192, 192], metavar=("Z", "Y", "X"))
    parser.add_argument("-np", type=int, default=2, dest="num_processes")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (printed)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_pp_"))
    if args.keep:
        print(f"folders in {root}")
    try:
        source_predictions, references = make_folders(root, args.cases, tuple(args.size))
        env = workspace_env(root)
        env.update(OMP_NUM_THREADS="1")
        results = {}
        for tool, determine, apply in (
            ("nnU-Net", [str(BIN / "nnUNetv2_determine_postprocessing")], [str(BIN / "nnUNetv2_apply_postprocessing")]),
            (
                "AutoSeg",
                [str(BIN / "autoseg"), "determine_postprocessing"],
                [str(BIN / "autoseg"), "apply_postprocessing"],
            ),
        ):
            predictions = root / tool / "predictions"
            shutil.copytree(source_predictions, predictions)
            np_flag = ["-np", str(args.num_processes)]
            determined = measure([*determine, "-i", str(predictions), "-ref", str(references), *np_flag], env)
            applied = measure([*apply, "-i", str(predictions), "-o", str(root / tool / "applied"),
                               "-pp_pkl_file", str(predictions / "postprocessing.pkl"), *np_flag], env)
            results[tool] = (determined, applied, predictions)
        (nn_det, nn_app, nn_pred), (as_det, as_app, as_pred) = results["nnU-Net"], results["AutoSeg"]
        print(f"{args.cases} cases of {'x'.join(map(str, args.size))} voxels, -np {args.num_processes}")
        print(f"{'':28s}{'nnU-Net':>12s}{'AutoSeg':>12s}{'ratio':>8s}")
        for name, a, b in (("determine_postprocessing", nn_det, as_det), ("apply_postprocessing", nn_app, as_app)):
            print(f"{name + ' wall time (s)':28s}{a.wall_s:12.1f}{b.wall_s:12.1f}{b.wall_s / a.wall_s:8.2f}")
            print(f"{name + ' peak RAM (MB)':28s}{a.peak_tree_rss_mb:12.0f}{b.peak_tree_rss_mb:12.0f}"
                  f"{b.peak_tree_rss_mb / a.peak_tree_rss_mb:8.2f}")
        print(f"same steps chosen: {_steps(nn_pred) == _steps(as_pred)} ({_steps(as_pred)})")
        print(
            "identical postprocessed voxels: "
            f"{100 * _agreement(root / 'nnU-Net' / 'applied', root / 'AutoSeg' / 'applied'):.3f}%"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
