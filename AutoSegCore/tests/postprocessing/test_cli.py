"""``autoseg determine_postprocessing`` / ``apply_postprocessing``: nnU-Net's flags, output, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from pp_cases import make_folders, read_seg, separate_component_case

from autoseg.cli.main import main


def test_determine_then_apply_with_pkl_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = make_folders(tmp_path, separate_component_case)
    assert main(["determine_postprocessing", "-i", str(pred), "-ref", str(gt), "-np", "1",
                 "--remove_postprocessed"]) == 0
    printed = capsys.readouterr().out
    assert "before" in printed and "after" in printed and "foreground mean" in printed
    assert "keep the largest component of label 1" in printed
    assert not (pred / "postprocessed").exists()

    for flag, name in (("-pp_pkl_file", "postprocessing.pkl"), ("--pp_pkl_file", "postprocessing.json")):
        out = tmp_path / f"out_{name}"
        assert main(["apply_postprocessing", "-i", str(pred), "-o", str(out), flag, str(pred / name),
                     "-np", "1"]) == 0
        for case in ("case_000.nii.gz", "case_002.nii.gz"):
            assert np.array_equal(read_seg(out / case), read_seg(gt / case))
    assert "3 segmentation(s) written" in capsys.readouterr().out


def test_refuses_a_malicious_pickle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, _ = make_folders(tmp_path, separate_component_case)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(([Payload()], [{}])))
    code = main(["apply_postprocessing", "-i", str(pred), "-o", str(tmp_path / "out"),
                 "-pp_pkl_file", str(tmp_path / "evil.pkl")])
    assert code == 1 and not marker.exists() and not (tmp_path / "out").exists()
    error = capsys.readouterr().err
    assert "evil.pkl" in error and "system" in error and error.count("\n") == 1
