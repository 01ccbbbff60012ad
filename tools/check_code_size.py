"""Fail when a source file is longer than 600 lines or a function longer than 60 (``make lint``).

Small modules with one job and short functions keep the pipeline readable; this holds the line. Checks the
package and the Slicer-side code (not the tests). Usage: ``python tools/check_code_size.py [PATH ...]``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("AutoSegCore/autoseg", "AutoSegPlanner", "AutoSegTrainer", "AutoSegInference", "AutoSegSlicerLib")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60


def oversized(path: Path) -> list[str]:
    """Every file and function in ``path`` over the limits (function lines include the docstring)."""
    found = []
    for file in sorted(path.rglob("*.py") if path.is_dir() else [path]):
        text = file.read_text(encoding="utf-8")
        lines = text.count("\n") + (not text.endswith("\n") and bool(text))
        if lines > MAX_FILE_LINES:
            found.append(f"{file}: {lines} lines (at most {MAX_FILE_LINES}); split it by responsibility")
        for node in ast.walk(ast.parse(text, filename=str(file))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{file}:{node.lineno}: {node.name}() has {length} lines "
                                 f"(at most {MAX_FUNCTION_LINES}); extract its steps")
    return found


def main(arguments: list[str]) -> int:
    paths = [Path(a) for a in arguments] or [ROOT / p for p in DEFAULT_PATHS]
    problems = [problem for path in paths for problem in oversized(path)]
    print("\n".join(problems) if problems else f"code size: every file <= {MAX_FILE_LINES} lines, every function "
          f"<= {MAX_FUNCTION_LINES} lines")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
