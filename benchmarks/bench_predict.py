"""Benchmark: ``autoseg predict`` vs ``nnUNetv2_predict`` with the same nnU-Net model on the same cases.

Builds a small real nnU-Net v2 model (Hippocampus 3d_fullres, trained a few iterations by nnU-Net itself,
see ``Testing/nnunet_models.py``), then predicts the same held-out cases with both tools, with and
without test-time augmentation, each with its own defaults. Prints whole-process wall time per case,
peak RAM of the process tree, the ratios and the voxel agreement. Targets (DESIGN §10): time ratio
<= 0.5 and peak RAM ratio <= 1.0 with identical output.

    python benchmarks/bench_predict.py [--cases 20] [--folds 0] [--device cpu] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from common import BIN, measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from nnunet_models import NnUNetModelFactory, write_prediction_inputs


def agreement(a: Path, b: Path) -> tuple[float, bool]:
    """Fraction of identical voxels over all cases, and whether every geometry matched exactly."""
    same = total = 0
    geometry = True
    for file in sorted(a.glob("*.nii.gz")):
        x, y = sitk.ReadImage(str(file)), sitk.ReadImage(str(b / file.name))
        geometry &= (x.GetSize(), x.GetSpacing(), x.GetOrigin(), x.GetDirection()) == \
                    (y.GetSize(), y.GetSpacing(), y.GetOrigin(), y.GetDirection())
        xa, ya = sitk.GetArrayViewFromImage(x), sitk.GetArrayViewFromImage(y)
        same += int((xa == ya).sum())
        total += xa.size
    return same / max(total, 1), geometry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20, help="held-out Hippocampus cases to predict (default 20)")
    parser.add_argument("--folds", nargs="+", default=["0"], help="folds of the model to use (default 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--planner", default="ExperimentPlanner", help="or nnUNetPlannerResEncM")
    parser.add_argument("--cache", default=None, help="folder to keep the built model in between runs")
    parser.add_argument("--bf16", action="store_true", help="also time AutoSeg with -precision bf16")
    args = parser.parse_args()

    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench_predict_"))
    factory = NnUNetModelFactory(root / "models", persistent=bool(args.cache))
    folds = [int(f) if f.isdigit() else f for f in args.folds]
    model = factory("hippocampus", ["3d_fullres"], folds, planner=args.planner)
    folder = model["model_folders"]["3d_fullres"]
    inputs = root / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    write_prediction_inputs(model, inputs, n=args.cases)
    n = len(list(inputs.glob("*_0000.nii.gz")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") and k != "OMP_NUM_THREADS"}
    env.update(nnUNet_raw=str(model["workspace"].raw), nnUNet_preprocessed=str(model["workspace"].preprocessed),
               nnUNet_results=str(model["workspace"].results))

    print(f"predict: {n} Hippocampus cases, {args.planner} 3d_fullres, folds {' '.join(args.folds)}, "
          f"device {args.device}, {os.cpu_count()} CPU(s)")
    print(f"{'TTA':<5} {'tool':<12} {'wall [s]':>9} {'per case [s]':>13} {'peak RAM tree [MB]':>19}")
    for tta in (True, False):
        flags = [] if tta else ["--disable_tta"]
        results = {}
        outputs = {}
        for tool in ("nnU-Net", "AutoSeg") + (("AutoSeg-bf16",) if args.bf16 else ()):
            out = root / f"out_{tool}_{'tta' if tta else 'notta'}"
            shutil.rmtree(out, ignore_errors=True)
            if tool == "nnU-Net":
                command = [str(BIN / "nnUNetv2_predict_from_modelfolder"), "--disable_progress_bar"]
            else:
                command = [str(BIN / "autoseg"), "predict_from_modelfolder", "--no_pbar"]
                command += ["-precision", "bf16"] if tool == "AutoSeg-bf16" else []
            command += ["-m", str(folder), "-i", str(inputs), "-o", str(out), "-f", *args.folds,
                        "-device", args.device, *flags]
            results[tool] = measure(command, env)
            outputs[tool] = out
            m = results[tool]
            print(
                f"{'on' if tta else 'off':<5} {tool:<12} {m.wall_s:>9.2f} {m.wall_s / n:>13.3f} "
                f"{m.peak_tree_rss_mb:>19.0f}",
                flush=True,
            )
        a, b = results["AutoSeg"], results["nnU-Net"]
        same, geometry = agreement(outputs["nnU-Net"], outputs["AutoSeg"])
        print(f"      ratio AutoSeg/nnU-Net: time {a.wall_s / b.wall_s:.2f} (target <= 0.50), peak RAM "
              f"{a.peak_tree_rss_mb / b.peak_tree_rss_mb:.2f} (target <= 1.00); identical voxels {100 * same:.3f}%, "
              f"geometry {'identical' if geometry else 'DIFFERENT'}")
        if args.bf16:
            c = results["AutoSeg-bf16"]
            same, _ = agreement(outputs["nnU-Net"], outputs["AutoSeg-bf16"])
            print(
                f"      ratio AutoSeg-bf16/nnU-Net: time {c.wall_s / b.wall_s:.2f}; identical voxels {100 * same:.3f}%"
            )
    if not args.cache:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
