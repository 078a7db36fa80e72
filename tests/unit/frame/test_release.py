import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from labkit import release

SOLUTION_REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)


@pytest.fixture(scope="module")
def fresh() -> Iterator[dict[str, Path]]:
    """solutions/ generated once for the whole module (nbgrader takes a few seconds)."""
    with release.generated() as notebooks:
        yield notebooks


def test_labs_are_up_to_date_with_solutions(fresh: dict[str, Path]) -> None:
    committed = sorted(path.name for path in release.LABS.glob(release.LAB_NOTEBOOKS))
    assert committed == sorted(fresh), "run `lab release`"
    for name, path in fresh.items():
        assert (release.LABS / name).read_bytes() == path.read_bytes(), f"labs/{name} is stale: run `lab release`"


def test_no_solution_or_hidden_check_reaches_labs() -> None:
    for lab in release.LABS.glob(release.LAB_NOTEBOOKS):
        text = lab.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        source = nbformat.read(release.SOLUTIONS / lab.name, as_version=4)
        hidden = [m[2].strip() for cell in source.cells for m in SOLUTION_REGION.finditer(cell.source)]
        assert hidden, f"{lab.name}: expected solution regions in its source"
        released = "\n".join(cell.source for cell in nbformat.read(lab, as_version=4).cells)
        for secret in hidden:
            assert secret not in released, f"{lab.name} gives away: {secret}"


def test_every_lab_check_has_a_graded_hidden_test(fresh: dict[str, Path]) -> None:
    import checkers

    for lab in checkers.labs().values():
        source = json.dumps(json.loads((release.SOLUTIONS / f"{lab.lab_id}.ipynb").read_text()))
        for one in lab.checks:
            assert f'labkit.check(\\"{one.check_id}\\").raise_for_status()' in source, one.check_id


def test_release_writes_labs_and_removes_orphans(tmp_path: Path) -> None:
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    labs.mkdir()
    shutil.copyfile(release.SOLUTIONS / "00-setup.ipynb", solutions / "00-setup.ipynb")
    (labs / "99-gone.ipynb").write_text("{}")
    assert release.stale_labs(solutions, labs) == ["00-setup.ipynb", "99-gone.ipynb"]
    written = release.release(solutions, labs)
    assert written == [labs / "00-setup.ipynb"]
    assert sorted(p.name for p in labs.iterdir()) == ["00-setup.ipynb"]
    assert "raise NotImplementedError()" in (labs / "00-setup.ipynb").read_text()


def test_an_empty_solutions_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(release.ReleaseError, match="no lab notebooks"):
        release.release(tmp_path, tmp_path / "labs")


def test_a_broken_source_notebook_is_reported_with_nbgraders_reason(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n")])
    notebook.cells[0].metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "a",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    nbformat.write(notebook, tmp_path / "07-broken.ipynb")
    with pytest.raises(release.ReleaseError, match="nbgrader could not generate the labs"):
        release.release(tmp_path, tmp_path / "labs")
