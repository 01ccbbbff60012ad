"""Benchmark: ``autoseg plan_and_preprocess`` vs ``nnUNetv2_plan_and_preprocess`` on the same dataset.

Prints wall time and peak RAM (whole process tree) of both and the AutoSeg/nnU-Net ratios.
Targets (DESIGN §10): time ratio <= 0.7, peak RAM ratio <= 1.0.

    python benchmarks/bench_plan_and_preprocess.py [--dataset Hippocampus] [-np 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import BIN, SHARED_DATA, link_raw_dataset, measure, workspace_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Hippocampus", help="folder in AUTOSEG_TEST_DATA (default Hippocampus)")
    parser.add_argument("--dataset-id", default="4")
    parser.add_argument("-np", type=int, default=2, help="worker processes for both tools (default 2)")
    parser.add_argument("-c", nargs="+", default=["2d", "3d_fullres"], help="configurations (default 2d 3d_fullres)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    name = f"Dataset{int(args.dataset_id):03d}_{args.dataset}"
    tools = {
        "nnU-Net": [str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", args.dataset_id, "-c", *args.c,
                    "-np", str(args.np), "-npfp", str(args.np)],
        "AutoSeg": [str(BIN / "autoseg"), "plan_and_preprocess", "-d", args.dataset_id, "-c", *args.c,
                    "-np", str(args.np), "-npfp", str(args.np), "--no_pbar"],
    }
    results: dict[str, list] = {tool: [] for tool in tools}
    for _ in range(args.repeats):
        for tool, command in tools.items():
            root = Path(tempfile.mkdtemp(prefix=f"bench_{tool}_"))
            try:
                link_raw_dataset(SHARED_DATA / args.dataset, root, name)
                results[tool].append(measure(command, workspace_env(root)))
            finally:
                shutil.rmtree(root, ignore_errors=True)
    best = {tool: min(r, key=lambda m: m.wall_s) for tool, r in results.items()}
    print(f"plan_and_preprocess on {args.dataset} (-c {' '.join(args.c)}, -np {args.np}), best of {args.repeats}")
    print(f"{'tool':<10} {'wall [s]':>10} {'peak RAM tree [MB]':>20} {'peak RAM 1 proc [MB]':>22}")
    for tool, m in best.items():
        print(f"{tool:<10} {m.wall_s:>10.2f} {m.peak_tree_rss_mb:>20.0f} {m.peak_single_rss_mb:>22.0f}")
    a, n = best["AutoSeg"], best["nnU-Net"]
    print(f"ratio AutoSeg/nnU-Net: time {a.wall_s / n.wall_s:.2f} (target <= 0.70), "
          f"peak RAM tree {a.peak_tree_rss_mb / n.peak_tree_rss_mb:.2f} (target <= 1.00)")


if __name__ == "__main__":
    main()
