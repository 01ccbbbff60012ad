"""``autoseg plot_overlay_pngs``: nnUNetv2_plot_overlay_pngs
(``-d -o -np -channel_idx --use_raw -p -c -overlay_intensity``)."""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_dataset, add_flag, add_num_processes, workspace_from_environment


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot_overlay_pngs",
        help="write one PNG per training case: the labels over the slice with the most foreground",
        description="Quality control of a dataset's labels: OUTPUT/CASE.png shows one image channel (grey, windowed "
        "to its 0.5-99.5 percentiles) with each label in its own colour, on the slice with the most foreground "
        "(every label weighted equally). Voxel spacing is ignored. Uses the preprocessed data of -c/-p unless "
        "--use_raw is given.",
    )
    add_dataset(parser, "-d")
    add_flag(parser, "-o", required=True, dest="output", metavar="FOLDER", help="output folder for the PNGs")
    add_num_processes(parser, "drawing the overlays", "the CPU cores")
    add_flag(parser, "-channel_idx", type=int, default=0, dest="channel_idx", metavar="C",
             help="image channel to show (0 = _0000; default 0)")
    parser.add_argument("--use_raw", action="store_true", help="plot the raw data (default: the preprocessed data)")
    add_flag(parser, "-p", default="nnUNetPlans", dest="plans", metavar="PLANS",
             help="plans identifier, preprocessed data only (default nnUNetPlans)")
    add_flag(parser, "-c", default=None, dest="configuration", metavar="CONFIG",
             help="configuration, preprocessed data only (default 3d_fullres if planned, else 2d)")
    add_flag(parser, "-overlay_intensity", type=float, default=0.6, dest="overlay_intensity", metavar="A",
             help="opacity of the label colours, 0-1 (default 0.6)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoseg.utils.progress import progress_bar
    from autoseg.visualization.dataset_overlays import overlays_from_preprocessed, overlays_from_raw

    workspace = workspace_from_environment()
    with progress_bar("Plotting overlays") as progress:
        if args.use_raw:
            written = overlays_from_raw(workspace, args.dataset, args.output, args.num_processes, args.channel_idx,
                                        args.overlay_intensity, progress)
        else:
            written = overlays_from_preprocessed(workspace, args.dataset, args.output, args.num_processes,
                                                 args.channel_idx, args.configuration, args.plans,
                                                 args.overlay_intensity, progress)
    print(f"Wrote {len(written)} overlay(s) to {args.output}")
    return 0
