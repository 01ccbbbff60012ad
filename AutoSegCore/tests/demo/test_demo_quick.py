"""``autoseg demo --quick``: every step of the demo on tiny volumes, the files it leaves, its last line, and
a re-run that reuses everything instead of overwriting it."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from autoseg.cli.main import main
from autoseg.demo.settings import DATASET_NAME, STATE_FILE, TRAINER

MODEL = f"nnUNet_results/{DATASET_NAME}/{TRAINER}__nnUNetPlans__3d_fullres"
LAST_LINE = re.compile(r"^Demo foreground mean Dice: (0\.\d{3}|1\.000)$")


def _last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    capture = pytest.MonkeyPatch()
    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    try:
        code = main(["demo", "--quick", "--workspace", str(root), "--no_pbar", "-np", "1"])
    finally:
        capture.undo()
    return root, code, out.getvalue()


def test_quick_demo_runs_every_step_and_ends_with_the_dice_line(demo_run) -> None:
    root, code, out = demo_run
    assert code == 0
    assert LAST_LINE.match(_last_line(out)), _last_line(out)
    fold = root / MODEL / "fold_0"
    for path in (
        root / STATE_FILE,
        root / "nnUNet_raw" / DATASET_NAME / "imagesTs" / "phantom_006_0000.nii.gz",
        root / "nnUNet_raw" / DATASET_NAME / "labelsTs" / "phantom_007.nii.gz",
        root / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json",
        fold / "checkpoint_final.pth",
        fold / "progress.png",
        fold / "validation" / "summary.json",
        fold / "validation" / "postprocessing.pkl",
        root / "predictions" / "phantom_006.nii.gz",
        root / "predictions" / "phantom_007.nii.gz",
        root / "predictions_postprocessed" / "phantom_007.nii.gz",
        root / "overlay_phantom_006.png",
    ):
        assert path.is_file(), path
    assert not (root / "nnUNet_raw" / DATASET_NAME / "imagesTr" / "phantom_006_0000.nii.gz").exists()
    assert (root / "overlay_phantom_006.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the printed Dice is the foreground mean of the postprocessed held-out predictions
    summary = json.loads((root / "predictions_postprocessed" / "summary.json").read_text())
    assert [c["reference_file"].split("/")[-1] for c in summary["metric_per_case"]] == ["phantom_006.nii.gz",
                                                                                       "phantom_007.nii.gz"]
    assert _last_line(out).endswith(f"{summary['foreground_mean']['Dice']:.3f}")
    for expected in ("1 liver", "2 kidney", "foreground mean", "model folder", "overlay PNG", "-gpu_memory_target 0.5"):
        assert expected in out


def test_rerun_reuses_everything_and_other_settings_are_refused(demo_run, capsys) -> None:
    root, _, first = demo_run
    checkpoint = root / MODEL / "fold_0" / "checkpoint_final.pth"
    stamp = checkpoint.stat().st_mtime_ns
    assert main(["demo", "--quick", "--workspace", str(root), "--no_pbar", "-np", "1"]) == 0
    out = capsys.readouterr().out
    for expected in ("Reusing the generated dataset", "Reusing the plans and preprocessed data",
                     "Reusing the trained model", "Reusing the postprocessing", "already predicted"):
        assert expected in out
    assert checkpoint.stat().st_mtime_ns == stamp
    assert _last_line(out) == _last_line(first)

    assert main(["demo", "--quick", "--seed", "1", "--workspace", str(root), "--no_pbar"]) == 1
    assert "--fresh" in capsys.readouterr().err
    assert checkpoint.stat().st_mtime_ns == stamp


def test_an_interrupted_training_continues(demo_run, capsys) -> None:
    from autoseg.network.checkpoint import load_checkpoint, save_checkpoint

    root, _, _ = demo_run
    fold = root / MODEL / "fold_0"
    # what a run killed during its only epoch leaves: checkpoint_latest of epoch 0, no final, no validation
    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    checkpoint["current_epoch"] = 0
    save_checkpoint(checkpoint, fold / "checkpoint_latest.pth")
    (fold / "checkpoint_final.pth").unlink()
    (fold / "validation" / "summary.json").unlink()
    assert main(["demo", "--quick", "--workspace", str(root), "--no_pbar", "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert "Continuing the interrupted training" in out
    # what came after the training is redone for the new weights, not reused
    assert "Determining postprocessing" in out and "already predicted" not in out
    assert (fold / "checkpoint_final.pth").is_file() and not (fold / "checkpoint_latest.pth").exists()
    assert load_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 1
    assert (fold / "validation" / "summary.json").is_file()
    assert LAST_LINE.match(_last_line(out))
