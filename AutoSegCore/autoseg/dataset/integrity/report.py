"""The result of a dataset integrity check: a list of problems, each naming the case, the file and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from autoseg.errors import DatasetError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a raw dataset.

    ``message`` says what is wrong, what was expected and what was found; ``fix`` says how to repair it.
    ``case`` is None for dataset-level problems (dataset.json, folders); ``file`` is the offending file.
    """

    severity: Severity
    case: str | None
    file: Path | None
    message: str
    fix: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def describe(self, root: Path | None = None) -> str:
        """One readable paragraph: ``[case] file: message`` plus the fix."""
        where = []
        if self.case is not None:
            where.append(f"case {self.case}")
        if self.file is not None:
            where.append(display_path(self.file, root))
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.message}\n      fix: {self.fix}"

    def __str__(self) -> str:
        return f"{self.severity}: {self.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "case": self.case,
            "file": str(self.file) if self.file is not None else None,
            "message": self.message,
            "fix": self.fix,
        }


def error(message: str, fix: str, case: str | None = None, file: Path | None = None) -> Problem:
    return Problem("error", case, file, message, fix)


def warning(message: str, fix: str, case: str | None = None, file: Path | None = None) -> Problem:
    return Problem("warning", case, file, message, fix)


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it (``labelsTr/case.nii.gz``), else as is."""
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


@dataclass
class IntegrityReport:
    """Every problem found in one raw dataset folder (errors block training; warnings do not)."""

    folder: Path
    problems: list[Problem] = field(default_factory=list)
    num_cases: int = 0

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "OK" if n_err == 0 else "NOT usable for training until the errors are fixed"
        return (
            f"Integrity check of {self.folder}: {self.num_cases} case(s), "
            f"{n_err} error(s), {n_warn} warning(s) -- {verdict}."
        )

    def format(self) -> str:
        """The whole report: a summary line, then errors and warnings grouped by case."""
        lines = [self.summary()]
        for title, problems in (("ERRORS", self.errors), ("WARNINGS", self.warnings)):
            if problems:
                lines.append("")
                lines.append(f"{title} ({len(problems)})")
                lines.extend(self._format_group(problems))
        return "\n".join(lines)

    def _format_group(self, problems: list[Problem]) -> list[str]:
        by_case: dict[str | None, list[Problem]] = {}
        for problem in problems:
            by_case.setdefault(problem.case, []).append(problem)
        ordered = sorted(by_case, key=lambda c: (c is not None, c or ""))
        lines: list[str] = []
        for case in ordered:
            lines.append(f"  {'dataset' if case is None else 'case ' + case}:")
            for problem in by_case[case]:
                file = f"{display_path(problem.file, self.folder)}: " if problem.file is not None else ""
                lines.append(f"    - {file}{problem.message}")
                lines.append(f"      fix: {problem.fix}")
        return lines

    def raise_if_errors(self) -> None:
        """Raise DatasetError carrying the formatted report when there is at least one error."""
        if self.errors:
            raise DatasetError(self.format())

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "num_cases": self.num_cases,
            "num_errors": len(self.errors),
            "num_warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }
