"""The KPA's decisions against upstream's formulas (pkg/autoscaler/scaling/autoscaler_test.go and the
KPA reconciler's scale-to-zero rules), with a clock the tests move by hand: no sleeps."""

from __future__ import annotations

import math

import pytest

from localcluster.knative import autoscaler as kpa
from localcluster.knative.config import AutoscalerConfig
from localcluster.knative.keys import AUTOSCALING_GROUP

#: The upstream tests' decider: target utilisation 75 %, rates 10, panic threshold 200 %.
UTILIZATION = 0.75
STABLE_WINDOW = 60.0


def decider(target: float, burst: float, *, ready: int = 1, now: float = 0.0, **overrides: object) -> kpa.Autoscaler:
    spec = kpa.DeciderSpec(
        max_scale_up_rate=10,
        max_scale_down_rate=10,
        scaling_metric="concurrency",
        target_value=target,
        total_value=target / UTILIZATION,
        target_burst_capacity=burst,
        activator_capacity=150,
        panic_threshold=2,
        stable_window=STABLE_WINDOW,
        scale_down_delay=0,
        initial_scale=1,
    )
    for name, value in overrides.items():
        spec = kpa.DeciderSpec(**{**spec.__dict__, name: value})
    return kpa.Autoscaler(spec, ready, now)


def ebc(total: float, burst: float, concurrency: float, pods: float) -> int:
    """expectedEBC of the upstream tests."""
    return math.floor(total / UTILIZATION * pods - burst - concurrency)


def test_stable_mode_sizes_to_the_stable_concurrency_over_the_target() -> None:
    scaler = decider(10, 98)
    result = scaler.scale(0, 8, 100, 100)
    assert result == kpa.ScaleResult(10, ebc(10, 98, 100, 8))
    assert scaler.scale(1, 8, 50, 50) == kpa.ScaleResult(5, ebc(10, 98, 50, 8))


def test_scale_up_and_down_are_rate_limited_per_tick() -> None:
    up = decider(10, 61)
    assert up.scale(0, 1, 1000, 1001).desired_pod_count == 10  # needs 100, may only go x10
    assert up.scale(2, 10, 1000, 1001).desired_pod_count == 100
    down = decider(10, 61)
    assert down.scale(0, 100, 1, 1).desired_pod_count == 10  # needs 1, may only go /10
    assert down.scale(2, 10, 1, 1).desired_pod_count == 1


def test_a_slow_scale_up_rate_still_grows_by_one_pod() -> None:
    scaler = decider(1, 1982, max_scale_up_rate=1.1)
    assert scaler.scale(0, 2, 3, 3.1) == kpa.ScaleResult(3, ebc(1, 1982, 3.1, 2))


def test_an_unreachable_revision_may_drop_all_at_once() -> None:
    reachable = decider(10, 1982, max_scale_down_rate=1.1)
    assert reachable.scale(0, 100, 1, 1).desired_pod_count == 90
    unreachable = decider(10, 1982, max_scale_down_rate=1.1, reachable=False)
    assert unreachable.scale(0, 100, 1, 1).desired_pod_count == 1


def test_panic_starts_over_the_threshold_holds_the_scale_and_ends_a_stable_window_later() -> None:
    scaler = decider(10, 93)
    assert scaler.scale(0, 1, 100, 100).desired_pod_count == 10
    panic_at = 10.0
    assert scaler.scale(panic_at, 10, 100, 1000).desired_pod_count == 100  # 100/10 pods >= 2: panic
    assert scaler.panicking and scaler.panic_since == panic_at
    # Traffic dropped, but no scale-down while panicking.
    assert scaler.scale(panic_at + 30, 10, 1, 1).desired_pod_count == 100
    # A stable window after the last over-threshold tick, back to stable mode.
    result = scaler.scale(panic_at + 61, 10, 1, 1)
    assert result.desired_pod_count == 1 and not scaler.panicking


def test_panic_window_is_extended_while_still_over_the_threshold() -> None:
    scaler = decider(1, 98)
    assert scaler.scale(0, 10, 11, 25).desired_pod_count == 25
    assert scaler.scale(30, 40, 30, 80) == kpa.ScaleResult(80, ebc(1, 98, 80, 40))
    assert scaler.panic_since == 30


def test_unpanic_after_a_slow_increase_uses_the_stable_value() -> None:
    scaler = decider(1, 98)
    assert scaler.scale(0, 10, 11, 25).desired_pod_count == 25
    assert scaler.scale(30, 40, 30, 41).desired_pod_count == 41
    assert scaler.panic_since == 0  # 41/40 pods is under the threshold: panic not extended
    assert scaler.scale(62, 55, 50, 56) == kpa.ScaleResult(50, ebc(1, 98, 56, 55))
    assert not scaler.panicking


def test_in_panic_the_larger_of_stable_and_panic_wins() -> None:
    stable_larger = decider(1, 100)
    stable_larger.panic_since, stable_larger.max_panic_pods = -5.0, 5
    assert stable_larger.scale(0, 5, 50, 30).desired_pod_count == 50
    panic_larger = decider(1, 100)
    panic_larger.panic_since, panic_larger.max_panic_pods = -5.0, 5
    assert panic_larger.scale(0, 5, 20, 30).desired_pod_count == 30


def test_a_decider_for_several_ready_pods_starts_in_panic_mode() -> None:
    assert decider(10, 100, ready=2).panicking
    assert not decider(10, 100, ready=1).panicking


def test_excess_burst_capacity_zero_and_unlimited() -> None:
    assert decider(10, 0).scale(0, 1, 50, 49) == kpa.ScaleResult(5, 0)
    assert decider(181, -1).scale(0, 1, 21, 26) == kpa.ScaleResult(1, -1)


def test_no_traffic_means_zero_pods_and_activation_scale_lifts_the_first_step() -> None:
    scaler = decider(10, 75)
    assert scaler.scale(0, 1, 1, 0).desired_pod_count == 1
    assert scaler.scale(2, 1, 0, 0).desired_pod_count == 0
    lifted = decider(10, 75, activation_scale=2)
    assert lifted.scale(0, 1, 0, 0).desired_pod_count == 0
    assert lifted.scale(2, 1, 1, 0).desired_pod_count == 2


def test_scale_down_delay_keeps_the_largest_scale_of_the_delay_window() -> None:
    scaler = decider(10, 0, scale_down_delay=300.0, max_scale_down_rate=10, panic_threshold=100)
    assert scaler.scale(2, 0, 40, 40).desired_pod_count == 4
    assert scaler.scale(300, 4, 0, 0).desired_pod_count == 4  # under the delay: kept
    assert scaler.scale(302, 4, 0, 0).desired_pod_count == 0  # the delay passed at reduced concurrency


# -- metric windows ------------------------------------------------------------------------------


def test_window_average_covers_only_the_time_since_the_first_write() -> None:
    window = kpa.WindowBuckets(60)
    for second in range(5):
        window.record(100 + second, 10.0)
    assert window.average(104) == 10.0  # five buckets of 10, averaged over the five seconds seen
    window.record(105, 40.0)
    assert window.average(105) == pytest.approx(15.0)


def test_window_average_forgets_buckets_older_than_the_window() -> None:
    window = kpa.WindowBuckets(6)
    for second in range(6):
        window.record(second, 6.0)
    for second in range(6, 12):
        window.record(second, 0.0)
    assert window.average(11) == 0.0
    assert not window.is_empty(11)
    assert window.is_empty(18)  # nothing recorded for longer than the window


def test_weighted_window_favours_recent_buckets() -> None:
    window = kpa.WindowBuckets(4, weighted=True)
    for second, value in enumerate([10.0, 10.0, 5.0, 5.0]):
        window.record(second, value)
    linear = kpa.WindowBuckets(4)
    for second, value in enumerate([10.0, 10.0, 5.0, 5.0]):
        linear.record(second, value)
    assert linear.average(3) == 7.5
    assert window.average(3) < linear.average(3)


def test_collection_raises_no_data_before_the_first_record() -> None:
    collection = kpa.MetricCollection(60, 6)
    with pytest.raises(kpa.NoData):
        collection.stable_and_panic("concurrency", 0)
    collection.record(0, 3.0, 1.0)
    assert collection.stable_and_panic("concurrency", 0) == (3.0, 3.0)
    assert collection.stable_and_panic("rps", 0) == (1.0, 1.0)


def test_meter_reports_time_weighted_concurrency_and_arrivals() -> None:
    meter = kpa.ConcurrencyMeter()
    meter.report(0.0)
    meter.begin(0.0)
    meter.begin(0.5)
    meter.end(0.75)
    average, arrived = meter.report(1.0)
    assert average == pytest.approx(1.0 * 0.5 + 2 * 0.25 + 1 * 0.25)
    assert arrived == 2
    assert meter.report(2.0) == (1.0, 0)  # one request still in flight the whole second


def test_leases_count_held_requests_and_release_once() -> None:
    now = [0.0]
    load = kpa.RevisionLoad(lambda: now[0])
    arrivals: list[kpa.RevisionKey] = []
    load.on_arrival(arrivals.append)
    release = load.lease(("ns", "echo-00001"))
    assert arrivals == [("ns", "echo-00001")]
    now[0] = 2.0
    release()
    release()
    assert load.meter(("ns", "echo-00001")).in_flight == 0
    assert load.report(("ns", "echo-00001"))[0] == pytest.approx(1.0)


# -- what the annotations and the ConfigMap decide -------------------------------------------------


def annotations(**values: str) -> dict[str, str]:
    return {f"{AUTOSCALING_GROUP}/{key.replace('_', '-')}": value for key, value in values.items()}


def test_defaults_target_seventy_percent_of_a_hundred() -> None:
    spec = kpa.decider_spec({}, 0, AutoscalerConfig())
    assert (spec.target_value, spec.total_value) == (70.0, 100.0)
    assert spec.stable_window == 60 and spec.panic_threshold == 2.0 and spec.target_burst_capacity == 211


def test_container_concurrency_caps_the_target_annotation() -> None:
    spec = kpa.decider_spec(annotations(target="50"), 10, AutoscalerConfig())
    assert (spec.total_value, spec.target_value) == (10.0, 7.0)
    utilised = kpa.decider_spec(annotations(target="10", target_utilization_percentage="50"), 0, AutoscalerConfig())
    assert utilised.target_value == 5.0


def test_windows_from_annotations_and_the_panic_percentage() -> None:
    assert kpa.metric_windows({}, AutoscalerConfig()) == (60.0, 6.0)
    assert kpa.metric_windows(annotations(window="6s"), AutoscalerConfig()) == (6.0, 1.0)
    assert kpa.metric_windows(annotations(window="20s", panic_window_percentage="25"), AutoscalerConfig()) == (
        20.0,
        5.0,
    )


def test_bounds_and_initial_scale() -> None:
    config = AutoscalerConfig()
    assert kpa.scale_bounds(annotations(min_scale="2", max_scale="5"), config) == (2, 5)
    assert kpa.scale_bounds(annotations(minScale="2"), config, reachable=False) == (0, 0)
    assert kpa.initial_scale(annotations(initial_scale="0"), config) == 1  # not allowed by the cluster
    allowing = AutoscalerConfig(allow_zero_initial_scale=True)
    assert kpa.initial_scale(annotations(initial_scale="0"), allowing) == 0


# -- the KPA reconciler's scale-to-zero rules ----------------------------------------------------------


def pa(**annotation_values: str) -> kpa.PodAutoscaler:
    autoscaler = kpa.PodAutoscaler(annotations(**annotation_values), container_concurrency=0)
    autoscaler.service_name = "echo-00001-private"
    return autoscaler


def test_a_new_revision_activates_then_waits_a_stable_window_before_zero() -> None:
    config = AutoscalerConfig()
    autoscaler = pa(window="6s")
    # No metrics yet, activating: nothing is written, the deployment keeps its initial scale.
    step = autoscaler.scale(kpa.SCALE_UNKNOWN, 1, config, now=0)
    assert step == kpa.ScaleStep(kpa.SCALE_UNKNOWN, apply=False, again_in=630.0)
    autoscaler.compute_status(kpa.PodCounts(step.want, ready=0), config, now=0)
    assert autoscaler.condition("Active")["reason"] == "Queued"
    autoscaler.compute_status(kpa.PodCounts(kpa.SCALE_UNKNOWN, ready=1), config, now=1)
    assert autoscaler.is_active and autoscaler.scale_target_initialized
    # The decider says zero, but the revision was active for less than its 6 s window: keep one pod.
    step = autoscaler.scale(0, 1, config, now=4)
    assert step == kpa.ScaleStep(1, apply=False, again_in=3.0)
    # Active for the whole window: first marked inactive (nothing scaled yet) ...
    step = autoscaler.scale(0, 1, config, now=7)
    assert step.want == 0 and not step.apply
    autoscaler.set_proxy_mode(True, now=7)
    autoscaler.compute_status(kpa.PodCounts(0, ready=1), config, now=7)
    assert autoscaler.is_inactive and autoscaler.condition("Active")["reason"] == "NoTraffic"
    # ... then, with the activator in the path only just now, the grace period (30 s) applies.
    assert autoscaler.scale(0, 1, config, now=8) == kpa.ScaleStep(0, apply=False, again_in=29.0)
    assert autoscaler.scale(0, 1, config, now=37) == kpa.ScaleStep(0, apply=True)


def test_with_the_activator_long_in_the_path_zero_comes_at_once() -> None:
    config = AutoscalerConfig()
    autoscaler = pa()
    autoscaler.set_proxy_mode(True, now=0)
    autoscaler.compute_status(kpa.PodCounts(kpa.SCALE_UNKNOWN, ready=1), config, now=0)
    autoscaler.compute_status(kpa.PodCounts(0, ready=1), config, now=100)
    assert autoscaler.is_inactive
    assert autoscaler.scale(0, 1, config, now=101) == kpa.ScaleStep(0, apply=True)


def test_pod_retention_and_disabled_scale_to_zero_keep_the_last_pod() -> None:
    config = AutoscalerConfig()
    retained = pa(scale_to_zero_pod_retention_period="1m")
    retained.set_proxy_mode(True, now=0)
    retained.compute_status(kpa.PodCounts(0, ready=1), config, now=0)
    assert retained.scale(0, 1, config, now=10) == kpa.ScaleStep(0, apply=False, again_in=50.0)
    assert retained.scale(0, 1, config, now=60).apply
    never = pa()
    assert never.scale(0, 1, AutoscalerConfig(enable_scale_to_zero=False), now=0) == kpa.ScaleStep(1, apply=False)


def test_min_scale_and_initial_scale_bound_the_decision() -> None:
    config = AutoscalerConfig()
    assert pa(min_scale="2").scale(0, 1, config, now=0) == kpa.ScaleStep(2, apply=True)
    assert pa(max_scale="3").scale(10, 1, config, now=0) == kpa.ScaleStep(3, apply=True)
    assert pa(initial_scale="4").scale(1, 4, config, now=0) == kpa.ScaleStep(4, apply=False)


def test_an_activation_that_never_succeeds_times_out_to_zero() -> None:
    config = AutoscalerConfig()
    autoscaler = pa()
    autoscaler.progress_deadline = 10
    autoscaler.compute_status(kpa.PodCounts(1, ready=0), config, now=0)
    assert autoscaler.is_activating
    assert not autoscaler.scale(0, 1, config, now=39).apply
    assert autoscaler.scale(0, 1, config, now=41) == kpa.ScaleStep(0, apply=True)
    autoscaler.compute_status(kpa.PodCounts(0, ready=0), config, now=41)
    assert autoscaler.condition("Active")["reason"] == "TimedOut"


def test_the_sks_stays_in_proxy_mode_without_burst_capacity() -> None:
    assert kpa.wants_activator(1, -10, inactive=False)
    assert not kpa.wants_activator(1, 0, inactive=False)
    assert kpa.wants_activator(0, 100, inactive=False)
    assert kpa.wants_activator(kpa.SCALE_UNKNOWN, 100, inactive=True)
