"""Generate labs/ from solutions/ with nbgrader: solutions and hidden checks removed.

    python -m labkit.release          regenerate labs/ (as `lab release`; see __main__.py)
    python -m labkit.release --check  exit 1 if labs/ is out of date

Each solutions/NN-slug.ipynb becomes an nbgrader assignment `NN-slug` in a temporary course
directory; nbgrader's generate_assignment writes its release version, which is copied to labs/.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labkit.settings import PROJECT_ROOT

SOLUTIONS = PROJECT_ROOT / "solutions"
LABS = PROJECT_ROOT / "labs"
LAB_NOTEBOOKS = "[0-9][0-9]-*.ipynb"


class ReleaseError(RuntimeError):
    """nbgrader could not generate a lab; the message carries nbgrader's own complaints."""


class _Complaints(logging.Handler):
    """Keeps nbgrader's error log lines, which it logs instead of raising with them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _lab_sources(solutions: Path) -> list[Path]:
    sources = sorted(solutions.glob(LAB_NOTEBOOKS))
    if not sources:
        raise ReleaseError(f"no lab notebooks (NN-slug.ipynb) in {solutions}")
    return sources


@contextmanager
def generated(solutions: Path = SOLUTIONS) -> Iterator[dict[str, Path]]:
    """Generate every lab's release notebook into a temporary directory: {file name: path}."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    sources = _lab_sources(solutions)
    with tempfile.TemporaryDirectory(prefix="lab-release-") as course:
        for source in sources:
            assignment = Path(course, "source", source.stem)
            assignment.mkdir(parents=True)
            shutil.copyfile(source, assignment / source.name)
        config = Config()
        config.CourseDirectory.root = course
        config.CourseDirectory.assignment_id = "*"
        # labs/ needs no gradebook: the graders' course directory keeps its own.
        config.GenerateAssignment.no_database = True
        config.SaveCells.enabled = False
        converter = GenerateAssignment(coursedir=CourseDirectory(config=config), config=config)
        complaints = _Complaints()
        converter.log.addHandler(complaints)
        try:
            converter.start()
        except NbGraderException as exc:
            raise ReleaseError("nbgrader could not generate the labs:\n" + "\n".join(complaints.lines)) from exc
        finally:
            converter.log.removeHandler(complaints)
        yield {source.name: Path(course, "release", source.stem, source.name) for source in sources}


def stale_labs(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[str]:
    """Lab notebooks that differ from what solutions/ generates, are missing, or have no source."""
    with generated(solutions) as fresh:
        current = {path.name for path in labs.glob(LAB_NOTEBOOKS)}
        differing = [name for name, path in fresh.items() if not _same_bytes(path, labs / name)]
        return sorted([*differing, *(current - fresh.keys())])


def _same_bytes(generated_path: Path, existing: Path) -> bool:
    return existing.is_file() and existing.read_bytes() == generated_path.read_bytes()


def release(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[Path]:
    """Regenerate labs/ (labs without a source are removed); returns the notebooks written."""
    labs.mkdir(parents=True, exist_ok=True)
    with generated(solutions) as fresh:
        for orphan in set(labs.glob(LAB_NOTEBOOKS)) - {labs / name for name in fresh}:
            orphan.unlink()
        written = []
        for name, path in fresh.items():
            shutil.copyfile(path, labs / name)
            written.append(labs / name)
    return written
