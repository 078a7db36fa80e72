import sys

import pytest

import labkit
from checkers import CheckEnvironmentError, CheckFailed, CheckResult, Status
from labkit import CheckPanel

from .fake_cluster import FakeConnection


def panel(status: Status, **evidence: object) -> CheckPanel:
    hints = () if status is Status.PASSED else ("Apply <hello-pod.yaml>",)
    return CheckPanel(CheckResult(status, "The pod <hello> is missing.", hints, evidence).named("00.3", "Pod", 0.1))


def test_plain_text_reads_well_in_a_terminal_and_in_papermill_output() -> None:
    assert str(panel(Status.FAILED)) == (
        "✘ 00.3 FAILED: Pod\n  The pod <hello> is missing.\n  Hint: Apply <hello-pod.yaml>"
    )
    assert str(panel(Status.PASSED)).splitlines()[0] == "✔ 00.3 PASSED: Pod"


@pytest.mark.parametrize(
    ("status", "colour"), [(Status.PASSED, "#1b873f"), (Status.FAILED, "#c62828"), (Status.ERROR, "#b26a00")]
)
def test_html_is_coloured_by_status_and_escaped(status: Status, colour: str) -> None:
    html = panel(status)._repr_html_()
    assert colour in html
    assert "&lt;hello&gt;" in html
    assert "<hello>" not in html


def test_evidence_is_folded_away() -> None:
    html = panel(Status.FAILED, phase="Pending")._repr_html_()
    assert "<details><summary>Evidence</summary>" in html
    assert "phase: Pending" in html
    assert "<details>" not in panel(Status.FAILED)._repr_html_()


def test_outside_a_kernel_the_bundle_has_no_widget() -> None:
    bundle = panel(Status.PASSED)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}


def test_the_widget_shows_header_and_a_closed_evidence_accordion() -> None:
    import ipywidgets

    widget = panel(Status.ERROR, traceback="Traceback ...").widget()
    header, evidence = widget.children
    assert "#b26a00" in header.value
    assert isinstance(evidence, ipywidgets.Accordion)
    assert evidence.titles == ("Evidence",)
    assert evidence.selected_index is None
    widget.close_all()


def test_raise_for_status_is_what_hidden_tests_call() -> None:
    assert panel(Status.PASSED).raise_for_status() is None
    with pytest.raises(CheckFailed):
        panel(Status.FAILED).raise_for_status()
    with pytest.raises(CheckEnvironmentError):
        panel(Status.ERROR).raise_for_status()


def test_labkit_check_runs_one_check_on_the_given_connection(cluster: FakeConnection) -> None:
    shown = labkit.check("00.2", connection=cluster)  # type: ignore[arg-type]
    assert shown.result.status is Status.PASSED
    assert shown.result.check_id == "00.2"


def test_labkit_check_wants_one_check_id(cluster: FakeConnection) -> None:
    with pytest.raises(ValueError, match=r"one check id like '00\.2', not '00'"):
        labkit.check("00", connection=cluster)  # type: ignore[arg-type]


def test_import_labkit_does_not_load_widgets_or_the_kubernetes_client() -> None:
    import subprocess

    probe = "import sys, labkit, labkit.cli; print([m for m in ('ipywidgets', 'kubernetes') if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def ladder() -> CheckPanel:
    hints = ("Look: `kubectl describe pod x`", "Fix: `kubectl apply -f x.yaml`")
    return CheckPanel(CheckResult(Status.FAILED, "Pod x cannot start.", hints).named("01.1", "Pod", 0.1))


def test_the_panel_shows_the_first_hint_and_offers_the_next() -> None:
    panel = ladder()
    assert str(panel).splitlines()[2:] == [
        "  Hint 1 of 2: Look: `kubectl describe pod x`",
        "  (stuck? another hint: labkit.hint('01.1'))",
    ]
    assert "<code>kubectl describe pod x</code>" in panel._repr_html_()
    assert "<details><summary>Stuck? More hints</summary>" in panel._repr_html_()


def test_the_button_climbs_the_ladder_then_goes_away() -> None:
    panel = ladder()
    widget = panel.widget()
    header, button = widget.children
    assert button.description == "Stuck? Show hint 2 of 2"
    assert "kubectl apply" not in header.value
    button.click()
    assert "<code>kubectl apply -f x.yaml</code>" in header.value
    assert button.layout.display == "none"
    assert panel.reveal() is None
    widget.close_all()


def test_labkit_hint_climbs_the_ladder_of_the_verdict_last_shown(cluster: FakeConnection) -> None:
    cluster.core.namespaces.clear()
    shown = labkit.check("00.2", connection=cluster)  # type: ignore[arg-type]
    assert shown.shown == 1
    second = labkit.hint("00.2")
    assert (second.level, second.count) == (2, 2)
    assert "labkit.apply(" in second.text and "(the last one" in str(second)
    assert labkit.hint("00.2").level == 2  # the last stays the last
