"""``autoseg export_model_to_zip`` and ``autoseg install_pretrained_model_from_zip`` (nnU-Net's model zips).

Same arguments as ``nnUNetv2_export_model_to_zip`` (``-d -o -c -tr -p -f -chk --exp_cv_preds --not_strict``)
and ``nnUNetv2_install_pretrained_model_from_zip ZIP``. Zips are interchangeable with nnU-Net's in
both directions. ``--not_strict`` works (nnU-Net 2.8.1 ignores it); installing checks the archive and
never replaces an installed model unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_dataset, add_flag, workspace_from_environment

_EXPORT_DESCRIPTION = (
    "Package trained models of one dataset as a zip with paths relative to nnUNet_results, installable by "
    "`autoseg install_pretrained_model_from_zip` and `nnUNetv2_install_pretrained_model_from_zip`. Per "
    "configuration: plans.json, dataset.json, dataset_fingerprint.json and the cross-validation summary and "
    "postprocessing; per fold: the checkpoints (-chk), debug.json, progress.png and validation/summary.json; "
    "ensembles made only of exported models and inference_information.json/inference_instructions.txt. "
    "Without -c, every trained configuration among 3d_lowres, 3d_fullres, 2d and 3d_cascade_fullres is exported."
)
_INSTALL_DESCRIPTION = (
    "Install a model zip (from `autoseg export_model_to_zip` or `nnUNetv2_export_model_to_zip`) into "
    "nnUNet_results. The archive is checked first (no absolute paths, '..', links or special files, duplicate "
    "names, oversized or suspiciously compressed entries; it must contain DatasetXXX_Name/<trainer>__<plans>__"
    "<configuration>/ folders with plans.json, dataset.json and fold checkpoints), extracted into a staging folder "
    "inside nnUNet_results, vetted (checkpoints and pickles are read without running code from them) and only then "
    "moved into place. A refused zip changes nothing. An installed model of the same name is never replaced "
    "unless --overwrite is given."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export_model_to_zip", help="package trained models as a zip to share",
                                   description=_EXPORT_DESCRIPTION)
    add_dataset(export, "-d")
    add_flag(export, "-o", required=True, dest="output", metavar="ZIP", help="zip file to write")
    add_flag(export, "-c", nargs="+", default=None, dest="configurations", metavar="CONFIG",
             help="configurations to export (default: every trained one of 3d_lowres 3d_fullres 2d 3d_cascade_fullres)")
    add_flag(export, "-tr", default="nnUNetTrainer", dest="trainer", metavar="TRAINER",
             help="trainer name (default nnUNetTrainer)")
    add_flag(
        export,
        "-p",
        default="nnUNetPlans",
        dest="plans",
        metavar="PLANS",
        help="plans identifier (default nnUNetPlans)",
    )
    add_flag(export, "-f", nargs="+", default=["0", "1", "2", "3", "4"], dest="folds", metavar="FOLD",
             help="folds to export, e.g. 0 or 0 1 2 3 4 or all (default 0 1 2 3 4)")
    add_flag(export, "-chk", nargs="+", default=["checkpoint_final.pth"], dest="checkpoints", metavar="NAME",
             help="checkpoint files to export per fold (default checkpoint_final.pth; add checkpoint_best.pth to "
             "include it)")
    export.add_argument("--not_strict", action="store_true",
                        help="skip missing configurations, folds and checkpoints (each is reported) instead of failing")
    export.add_argument("--exp_cv_preds", action="store_true",
                        help="also export the cross-validation predictions (without their .npz/.pkl files)")
    export.set_defaults(func=run_export)

    install = subparsers.add_parser("install_pretrained_model_from_zip", help="install a model zip into nnUNet_results",
                                    description=_INSTALL_DESCRIPTION)
    install.add_argument("zip", metavar="ZIP", help="the model zip file")
    _add_install_options(install)
    install.set_defaults(func=run_install)

    download = subparsers.add_parser(
        "download_pretrained_model_by_url", help="download a model zip from a URL and install it",
        description="Download a model zip (http(s):// or file://) into a temporary file and install it into "
        "nnUNet_results exactly like install_pretrained_model_from_zip (same checks; the temporary file is removed).",
    )
    download.add_argument("url", metavar="URL", help="where the model zip is")
    _add_install_options(download)
    download.set_defaults(func=run_download)


def _add_install_options(install: argparse.ArgumentParser) -> None:
    install.add_argument("--overwrite", "--force", action="store_true", dest="overwrite",
                         help="replace model/ensemble folders (and dataset-level files) that are already installed; "
                         "the old folder is removed only once the new one is in place")
    add_flag(install, "-max_size_gb", type=float, default=20.0, metavar="GB",
             help="refuse archives that expand to more than this (default 20)")
    add_flag(install, "-max_compression_ratio", type=float, default=200.0, metavar="R",
             help="refuse entries over 10 MiB compressed more than R:1, a zip-bomb sign (default 200; 0 disables)")


def run_export(args: argparse.Namespace) -> int:
    from autoseg.inference.model_folder import parse_fold
    from autoseg.model_sharing.export_zip import ExportRequest, export_model_to_zip

    request = ExportRequest(
        dataset=args.dataset,
        configurations=tuple(args.configurations) if args.configurations else None,
        trainer=args.trainer,
        plans=args.plans,
        folds=tuple(parse_fold(f) for f in args.folds),
        checkpoints=tuple(args.checkpoints),
        strict=not args.not_strict,
        export_crossval_predictions=args.exp_cv_preds,
    )
    export_model_to_zip(workspace_from_environment(), args.output, request, log=print)
    return 0


def _limits(args: argparse.Namespace):
    from autoseg.errors import ModelSharingError
    from autoseg.model_sharing.safe_extract import GIB, ExtractionLimits

    if args.max_size_gb <= 0 or args.max_compression_ratio < 0:
        raise ModelSharingError("-max_size_gb must be > 0 and -max_compression_ratio >= 0.")
    return ExtractionLimits(
        max_total_bytes=int(args.max_size_gb * GIB), max_compression_ratio=args.max_compression_ratio
    )


def run_install(args: argparse.Namespace) -> int:
    from autoseg.model_sharing.install_zip import install_model_zip

    install_model_zip(args.zip, workspace_from_environment().results, overwrite=args.overwrite, limits=_limits(args),
                      log=print)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autoseg.model_sharing.download import download_and_install

    limits = _limits(args)
    with tqdm(desc="Download", unit="B", unit_scale=True, dynamic_ncols=True) as bar:
        def progress(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        download_and_install(args.url, workspace_from_environment().results, overwrite=args.overwrite, limits=limits,
                             progress=progress, log=print)
    return 0
