"""Benchmark ``autoseg predict`` (PyTorch and OpenVINO engines) against ``nnUNetv2_predict_from_modelfolder``.

The models are real nnU-Net v2 models, planned and trained (a few iterations) by nnU-Net itself
(``Testing/nnunet_models.py``). Every prediction below is its own process with ``-f 0 -device cpu``: "wall" is
the whole process (start-up, imports, model loading, all cases), "peak RAM" the peak of the summed RSS of the
process tree, sampled every 50 ms (``common.measure``). nnU-Net runs with its own defaults. Printed:

1. Hippocampus 3d_fullres fold 0 on ``--cases`` held-out cases, with test-time augmentation (mirroring) and
   without (``--disable_tta``), in this order: nnU-Net, AutoSeg ``-engine torch`` (fp32, main venv), AutoSeg
   ``-engine openvino`` fp32 and ``-precision bf16``, both run by the torch-free venv's Python
   (``--torch_free_python``, ``python -m autoseg.cli.main``). Columns: wall, per case, peak RAM, time and RAM
   ratio to nnU-Net, identical voxels vs nnU-Net and vs AutoSeg-torch, geometry identical to nnU-Net's.
   Targets: OpenVINO fp32 <= 0.45x and bf16 <= 0.30x nnU-Net's time with TTA, each at >= 99.9% identical voxels.
2. Where the time goes (Hippocampus, TTA on) per engine (torch, openvino fp32, openvino bf16): importing what
   predict needs (autoseg.cli.main, predictor, predict_folder and the engine's module; a fresh ``python -c``
   process, best of 2; also in the torch-free venv), then in a fresh main-venv process per engine: model
   loading + engine creation (``open_model_folder`` + ``Predictor``) and, summed over the cases, reading
   (the plans' reader/writer), ``Predictor.preprocess``, ``Predictor.predict_logits``, ``export_logits`` and
   ``write_seg``, one after the other (``predict`` overlaps reading and writing with the network).
3. Large image (``--skip_large`` skips it): BraTS 240x240x155, 2 channels, 3d_fullres fold 0 with nnU-Net's own
   plan (the factory's 64^3 patch when that build fails), one held-out case without TTA.
4. Install size (site-packages of both venvs; torch (+ nvidia*/triton) and openvino packages) and
   "import + first prediction": one Hippocampus case without TTA as a whole process with each venv.

All numbers also go to ``--json`` (default ``<work folder>/bench_predict.json``; the work folder is ``--cache``,
or a temporary folder whose models and outputs are removed at the end). The first run builds the models
(Hippocampus ~2 min on 2 cores; BraTS with nnU-Net's own plan much longer).

    python benchmarks/bench_predict.py [--cases 20] [--cache DIR] [--skip_large] [--json PATH]
                                       [--torch_free_python PATH] [--planner ExperimentPlanner]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk
from common import BIN, measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from nnunet_models import NnUNetModelFactory, write_prediction_inputs

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_TORCH_FREE_PYTHON = REPOSITORY / ".venv-openvino" / "bin" / "python"
NNUNET, TORCH, OV_FP32, OV_BF16 = "nnU-Net", "AutoSeg-torch", "OpenVINO fp32", "OpenVINO bf16"
TOOLS = (NNUNET, TORCH, OV_FP32, OV_BF16)
TARGETS = {OV_FP32: 0.45, OV_BF16: 0.30}  # most time relative to nnU-Net, with TTA
MIN_IDENTICAL = 0.999
ENGINES = {"torch": ("torch", "fp32"), "openvino fp32": ("openvino", "fp32"), "openvino bf16": ("openvino", "bf16")}
ENGINE_MODULES = {"torch": "autoseg.inference.torch_engine", "openvino": "autoseg.inference.openvino_engine"}
PHASES = ("import", "load + engine", "read", "preprocess", "network", "export", "write")
IMPORT_SNIPPET = (
    "import sys, time; t = time.perf_counter(); "
    "import autoseg.cli.main, autoseg.inference.predictor, autoseg.inference.predict_folder, {module}; "
    "print(time.perf_counter() - t, 'torch' in sys.modules)"
)
TORCH_PACKAGES = ("torch", "torch-*", "torchgen", "functorch", "nvidia*", "triton*")
OPENVINO_PACKAGES = ("openvino", "openvino-*", "openvino_telemetry*")


@dataclass
class Bench:
    """The work folder, the torch-free venv's Python, and every result so far (written to JSON as it grows)."""

    root: Path
    torch_free_python: Path
    json_path: Path
    results: dict = field(default_factory=dict)

    def save(self, section: str, value: object) -> None:
        self.results[section] = value
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(self.results, indent=1, default=str))


@dataclass
class Target:
    """A model folder, the input folder to predict and the environment the predictions run in."""

    name: str
    folder: Path
    inputs: Path
    env: dict[str, str]

    @property
    def cases(self) -> int:
        return len(list(self.inputs.glob("*_0000.nii.gz")))


def make_target(name: str, model: dict, inputs: Path, cases: int) -> Target:
    """Fresh copies of ``cases`` held-out cases in ``inputs``; nnU-Net's folders point at the model's workspace."""
    shutil.rmtree(inputs, ignore_errors=True)
    write_prediction_inputs(model, inputs, n=cases)
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") and k != "OMP_NUM_THREADS"}
    workspace = model["workspace"]
    env.update(nnUNet_raw=str(workspace.raw), nnUNet_preprocessed=str(workspace.preprocessed),
               nnUNet_results=str(workspace.results))
    return Target(name, model["model_folders"]["3d_fullres"], inputs, env)


def run_python(python: str | Path, args: list[str], env: dict[str, str]) -> str:
    """Run ``python args``; its stdout, or a RuntimeError with its stderr."""
    result = subprocess.run([str(python), *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{python} {' '.join(args)[:200]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


# --------------------------------------------------------------------------------------------- whole processes


def tool_command(bench: Bench, tool: str, target: Target, out: Path, tta: bool) -> list[str]:
    if tool == NNUNET:
        command = [str(BIN / "nnUNetv2_predict_from_modelfolder"), "--disable_progress_bar"]
    elif tool == TORCH:
        command = [str(BIN / "autoseg"), "predict_from_modelfolder", "--no_pbar", "-engine", "torch"]
    else:
        command = [str(bench.torch_free_python), "-m", "autoseg.cli.main", "predict_from_modelfolder", "--no_pbar",
                   "-engine", "openvino", "-precision", "bf16" if tool == OV_BF16 else "fp32"]
    command += ["-m", str(target.folder), "-i", str(target.inputs), "-o", str(out), "-f", "0", "-device", "cpu"]
    return command + ([] if tta else ["--disable_tta"])


def run_tool(bench: Bench, tool: str, target: Target, tta: bool) -> dict:
    """Predict ``target`` with ``tool`` as one process: wall time, peak RAM of the tree, output folder."""
    out = bench.root / "outputs" / f"{target.name}_{tool.replace(' ', '_')}_{'tta' if tta else 'notta'}"
    shutil.rmtree(out, ignore_errors=True)
    m = measure(tool_command(bench, tool, target, out, tta), target.env)
    return {"wall_s": m.wall_s, "peak_ram_mb": m.peak_tree_rss_mb, "output": out}


def agreement(a: Path, b: Path) -> tuple[float, bool]:
    """Fraction of identical voxels over all cases, and whether every geometry matched exactly."""
    same = total = 0
    geometry = True
    for file in sorted(a.glob("*.nii.gz")):
        x, y = sitk.ReadImage(str(file)), sitk.ReadImage(str(b / file.name))
        geometry &= (x.GetSize(), x.GetSpacing(), x.GetOrigin(), x.GetDirection()) == \
                    (y.GetSize(), y.GetSpacing(), y.GetOrigin(), y.GetDirection())
        xa, ya = sitk.GetArrayViewFromImage(x), sitk.GetArrayViewFromImage(y)
        if xa.shape == ya.shape:
            same += int((xa == ya).sum())
        total += xa.size
    return same / max(total, 1), geometry


TABLE_HEADER = (f"{'TTA':<4} {'tool':<14} {'wall [s]':>9} {'per case [s]':>12} {'peak RAM [MB]':>13} "
                f"{'time ratio':>10} {'RAM ratio':>9} {'= nnU-Net [%]':>13} {'= torch [%]':>11} {'geometry':>8}")


def compare_row(tool: str, runs: dict[str, dict], cases: int) -> dict:
    """One table row: ``tool``'s run against nnU-Net's (run first) and AutoSeg-torch's (when it ran)."""
    run, base = runs[tool], runs[NNUNET]
    row = {"tool": tool, "wall_s": run["wall_s"], "per_case_s": run["wall_s"] / cases,
           "peak_ram_mb": run["peak_ram_mb"], "time_ratio": run["wall_s"] / base["wall_s"],
           "ram_ratio": run["peak_ram_mb"] / base["peak_ram_mb"]}
    row["identical_vs_nnunet"], row["geometry_identical"] = agreement(base["output"], run["output"])
    if TORCH in runs:
        row["identical_vs_torch"] = agreement(runs[TORCH]["output"], run["output"])[0]
    return row


def print_row(label: str, row: dict) -> None:
    vs_torch = f"{100 * row['identical_vs_torch']:>11.3f}" if "identical_vs_torch" in row else f"{'-':>11}"
    print(f"{label:<4} {row['tool']:<14} {row['wall_s']:>9.2f} {row['per_case_s']:>12.3f} {row['peak_ram_mb']:>13.0f} "
          f"{row['time_ratio']:>10.2f} {row['ram_ratio']:>9.2f} {100 * row['identical_vs_nnunet']:>13.3f} {vs_torch} "
          f"{'yes' if row['geometry_identical'] else 'NO':>8}", flush=True)


def run_and_compare(bench: Bench, target: Target, tta: bool) -> list[dict]:
    """Every tool in order (nnU-Net first), each row printed as soon as it is known."""
    runs: dict[str, dict] = {}
    rows = []
    for tool in TOOLS:
        runs[tool] = run_tool(bench, tool, target, tta)
        rows.append(compare_row(tool, runs, target.cases))
        print_row("on" if tta else "off", rows[-1])
    return rows


def check_targets(rows: list[dict]) -> list[dict]:
    by_tool = {row["tool"]: row for row in rows}
    checks = []
    for tool, limit in TARGETS.items():
        row = by_tool[tool]
        met = row["time_ratio"] <= limit and row["identical_vs_nnunet"] >= MIN_IDENTICAL
        checks.append({"tool": tool, "max_time_ratio": limit, "min_identical": MIN_IDENTICAL,
                       "time_ratio": row["time_ratio"], "identical": row["identical_vs_nnunet"], "met": met})
        print(f"     target {tool}: <= {limit:.2f}x nnU-Net's time with TTA at >= {100 * MIN_IDENTICAL:.1f}% "
              f"identical voxels: {row['time_ratio']:.2f}x, {100 * row['identical_vs_nnunet']:.3f}% -> "
              f"{'met' if met else 'NOT met'}", flush=True)
    return checks


def hippocampus_table(bench: Bench, target: Target) -> None:
    print(f"\n1. Hippocampus: {target.cases} held-out cases, 3d_fullres fold 0, -device cpu, {os.cpu_count()} CPU(s); "
          f"whole processes; OpenVINO rows run by {bench.torch_free_python}", flush=True)
    print(TABLE_HEADER, flush=True)
    section: dict = {"cases": target.cases}
    for tta in (True, False):
        section["tta" if tta else "no_tta"] = run_and_compare(bench, target, tta)
        if tta:
            section["targets"] = check_targets(section["tta"])
        bench.save("hippocampus", section)


# --------------------------------------------------------------------------------------------- phases


def import_seconds(python: str | Path, engine: str, env: dict[str, str]) -> tuple[float, bool]:
    """Seconds to import what predict needs with ``engine`` in a fresh process (best of 2: the first one warms
    the file cache), and whether torch got imported."""
    best, torch_loaded = float("inf"), False
    for _ in range(2):
        seconds, loaded = run_python(python, ["-c", IMPORT_SNIPPET.format(module=ENGINE_MODULES[engine])],
                                     env).split()
        best, torch_loaded = min(best, float(seconds)), loaded == "True"
    return best, torch_loaded


def phases_worker(job: dict) -> None:
    """In this fresh process: time each phase of predicting ``job['inputs']`` with one engine; prints JSON."""
    importlib.import_module(ENGINE_MODULES[job["engine"]])  # timed by import_seconds
    from autoseg.imageio.registry import reader_writer_class_by_name
    from autoseg.inference.export import export_logits
    from autoseg.inference.model_folder import open_model_folder
    from autoseg.inference.predict_folder import find_input_cases
    from autoseg.inference.predictor import PredictionSettings, Predictor

    times = dict.fromkeys(PHASES[1:], 0.0)

    def timed(phase, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times[phase] += time.perf_counter() - start
        return result

    settings = PredictionSettings(device="cpu", engine=job["engine"], precision=job["precision"], use_mirroring=True)
    model = timed("load + engine", open_model_folder, job["model"], [0])
    predictor = timed("load + engine", Predictor, model, settings)
    reader_writer = reader_writer_class_by_name(model.plans.image_reader_writer)()
    ending = model.dataset_json.file_ending
    out = Path(job["output"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for case in find_input_cases(Path(job["inputs"]), ending, model.dataset_json.num_channels):
        data, properties = timed("read", reader_writer.read_images, case.images)
        network_input, properties = timed("preprocess", predictor.preprocess, data, properties)
        logits = timed("network", predictor.predict_logits, network_input)
        segmentation, _ = timed("export", export_logits, logits, model.plans, predictor.configuration,
                                model.dataset_json, properties, num_threads=predictor.engine.num_threads)
        timed("write", reader_writer.write_seg, segmentation, out / f"{case.identifier}{ending}", properties)
    print("PHASES" + json.dumps({"seconds": times, "device": predictor.device, "torch_loaded": "torch" in sys.modules}))


def engine_phases(bench: Bench, target: Target, name: str) -> dict:
    """Import time (fresh ``python -c``) plus the worker's phases for one engine, in a fresh main-venv process."""
    engine, precision = ENGINES[name]
    seconds, torch_imported = import_seconds(sys.executable, engine, target.env)
    job = {"engine": engine, "precision": precision, "model": str(target.folder), "inputs": str(target.inputs),
           "output": str(bench.root / "outputs" / f"phases_{name.replace(' ', '_')}")}
    stdout = run_python(sys.executable, [str(Path(__file__).resolve()), "--phases_worker", json.dumps(job)],
                        target.env)
    worker = json.loads(stdout.rsplit("PHASES", 1)[1])
    phases = {"import": seconds, **worker["seconds"]}
    return {"seconds": phases, "total_s": sum(phases.values()), "device": worker["device"],
            "torch_imported_by_import": torch_imported, "torch_loaded_after_prediction": worker["torch_loaded"]}


def where_time_goes(bench: Bench, target: Target) -> None:
    print(f"\n2. Where the time goes: in-process, main venv, {target.cases} Hippocampus cases, TTA on, phases one "
          f"after the other; import: fresh `python -c`, best of 2. Seconds (% of total):", flush=True)
    print(f"{'engine':<14}" + "".join(f"{phase:>15}" for phase in (*PHASES, "total")), flush=True)
    section: dict = {"cases": target.cases}
    for name in ENGINES:
        result = engine_phases(bench, target, name)
        section[name] = result
        cells = [f"{s:7.2f} ({100 * s / result['total_s']:3.0f}%)" for s in result["seconds"].values()]
        print(f"{name:<14}" + "".join(f"{c:>15}" for c in cells) + f"{result['total_s']:>15.2f}", flush=True)
        bench.save("phases", section)
    loaded = {name: "yes" if section[name]["torch_loaded_after_prediction"] else "no" for name in ENGINES}
    print("   torch loaded in the process: " + ", ".join(f"{k} {v}" for k, v in loaded.items()), flush=True)
    seconds, torch_imported = import_seconds(bench.torch_free_python, "openvino", target.env)
    section["torch_free_venv_import_s"] = seconds
    print(f"   import in the torch-free venv (openvino engine): {seconds:.2f} s (torch imported: "
          f"{'yes' if torch_imported else 'no'})", flush=True)
    bench.save("phases", section)


# --------------------------------------------------------------------------------------------- large image


def build_large_model(factory: NnUNetModelFactory, planner: str) -> tuple[dict, str]:
    """brats_full with nnU-Net's own plan, or with the factory's 64^3 patch when that build fails."""
    try:
        return factory("brats_full", ["3d_fullres"], [0], planner=planner, patch_size={}), "nnU-Net's own plan"
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = lines[0][:120] + (f" ... {lines[-1][:200]}" if len(lines) > 1 else "")
        print(f"   building brats_full with nnU-Net's own plan failed ({reason}); falling back to the factory's "
              f"64^3 patch", flush=True)
        return factory("brats_full", ["3d_fullres"], [0], planner=planner), "factory default 64^3 patch (fallback)"


def large_image(bench: Bench, factory: NnUNetModelFactory, planner: str) -> None:
    print("\n3. Large image: BraTS, one held-out case, 3d_fullres fold 0, no TTA, whole processes (building the "
          "model the first time takes long)", flush=True)
    start = time.perf_counter()
    model, plan = build_large_model(factory, planner)
    target = make_target("brats_full", model, bench.root / "inputs_large", 1)
    image = sitk.ReadImage(str(sorted(target.inputs.glob("*_0000.nii.gz"))[0]))
    plans = json.loads((target.folder / "plans.json").read_text())
    patch = plans["configurations"]["3d_fullres"]["patch_size"]
    channels = len(list(target.inputs.glob("*.nii.gz")))
    print(f"   image {'x'.join(map(str, image.GetSize()))} voxels (x, y, z), {channels} channels; patch "
          f"{'x'.join(map(str, patch))} (z, y, x), {plan}; model ready after {time.perf_counter() - start:.0f} s",
          flush=True)
    print(TABLE_HEADER, flush=True)
    section = {"image_size_xyz": list(image.GetSize()), "channels": channels, "patch_size": patch, "plan": plan}
    section["rows"] = run_and_compare(bench, target, tta=False)
    bench.save("large", section)


# --------------------------------------------------------------------------------------------- install size


def tree_bytes(path: Path) -> int:
    """Sum of the sizes of the regular files under ``path``, following no symlinks."""
    if path.is_symlink():
        return 0
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):  # does not descend into symlinked folders
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def packages_mb(site: Path, patterns: tuple[str, ...]) -> tuple[float, list[str]]:
    found = sorted({path for pattern in patterns for path in site.glob(pattern)})
    return sum(tree_bytes(path) for path in found) / 2**20, [path.name for path in found]


def install_sizes(bench: Bench) -> dict:
    venvs = {"main venv": Path(sys.executable), "torch-free venv": bench.torch_free_python}
    print(f"{'venv':<16} {'site-packages [MB]':>18} {'torch+nvidia+triton [MB]':>24} {'openvino [MB]':>13}", flush=True)
    sizes = {}
    for name, python in venvs.items():
        site = Path(run_python(python, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               dict(os.environ)).strip())
        torch_mb, torch_found = packages_mb(site, TORCH_PACKAGES)
        openvino_mb, openvino_found = packages_mb(site, OPENVINO_PACKAGES)
        sizes[name] = {"site_packages": str(site), "site_packages_mb": tree_bytes(site) / 2**20, "torch_mb": torch_mb,
                       "torch_packages": torch_found, "openvino_mb": openvino_mb, "openvino_packages": openvino_found}
        print(f"{name:<16} {sizes[name]['site_packages_mb']:>18.0f} {torch_mb:>24.0f} {openvino_mb:>13.0f}",
              flush=True)
    return sizes


def install_and_startup(bench: Bench, target: Target) -> None:
    print("\n4. Install size (sum of file sizes, no symlinks followed) and import + first prediction (one "
          "Hippocampus case, no TTA, whole process)", flush=True)
    section: dict = {"sizes": install_sizes(bench), "startup": {}}
    bench.save("install", section)
    runs = {"main venv: autoseg -engine torch": TORCH, "torch-free venv: openvino fp32": OV_FP32,
            "main venv: nnU-Net (reference)": NNUNET}
    print(f"{'run':<34} {'wall [s]':>9} {'peak RAM [MB]':>13}", flush=True)
    for label, tool in runs.items():
        run = run_tool(bench, tool, target, tta=False)
        section["startup"][label] = {"wall_s": run["wall_s"], "peak_ram_mb": run["peak_ram_mb"]}
        print(f"{label:<34} {run['wall_s']:>9.2f} {run['peak_ram_mb']:>13.0f}", flush=True)
        bench.save("install", section)


# --------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20, help="held-out Hippocampus cases to predict (default 20)")
    parser.add_argument("--cache", default=None, help="folder keeping the built models and inputs between runs")
    parser.add_argument("--skip_large", action="store_true", help="skip the large image (BraTS 240x240x155)")
    parser.add_argument("--json", default=None, help="numbers file (default <work folder>/bench_predict.json)")
    parser.add_argument("--torch_free_python", default=str(DEFAULT_TORCH_FREE_PYTHON),
                        help=f"Python of the venv without torch (default {DEFAULT_TORCH_FREE_PYTHON}; "
                             f"`make torch-free-venv` creates it)")
    parser.add_argument("--planner", default="ExperimentPlanner", help="or nnUNetPlannerResEncM")
    parser.add_argument("--bf16", action="store_true", help="ignored (bf16 is always measured; kept for `make bench`)")
    parser.add_argument("--phases_worker", default=None, help=argparse.SUPPRESS)  # internal: part 2's process
    return parser.parse_args()


def clean_up(root: Path, keep: Path) -> None:
    """Remove the temporary work folder but the JSON file."""
    for child in root.iterdir():
        if child.resolve() == keep.resolve():
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()
    if not any(root.iterdir()):
        root.rmdir()


def main() -> None:
    args = parse_args()
    if args.phases_worker:
        phases_worker(json.loads(args.phases_worker))
        return
    torch_free = Path(args.torch_free_python)
    if not torch_free.is_file():
        raise SystemExit(f"{torch_free} does not exist: run `make torch-free-venv` or pass --torch_free_python.")
    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench_predict_"))
    root.mkdir(parents=True, exist_ok=True)
    bench = Bench(root.resolve(), torch_free, Path(args.json) if args.json else root / "bench_predict.json")
    factory = NnUNetModelFactory(root / "models", persistent=bool(args.cache))
    model = factory("hippocampus", ["3d_fullres"], [0], planner=args.planner)
    target = make_target("hippocampus", model, root / "inputs", args.cases)
    bench.save("settings", {"cases": target.cases, "planner": args.planner, "cpus": os.cpu_count(),
                            "main_python": sys.executable, "torch_free_python": str(torch_free)})
    hippocampus_table(bench, target)
    where_time_goes(bench, target)
    if not args.skip_large:
        try:
            large_image(bench, factory, args.planner)
        except Exception as err:  # the other parts still count
            print(f"   large image failed: {type(err).__name__}: {str(err)[-1500:]}", flush=True)
            bench.save("large", {"error": f"{type(err).__name__}: {err}"})
    install_and_startup(bench, make_target("one_case", model, root / "inputs_one", 1))
    print(f"\nnumbers: {bench.json_path}", flush=True)
    if not args.cache:
        clean_up(root, bench.json_path)


if __name__ == "__main__":
    main()
