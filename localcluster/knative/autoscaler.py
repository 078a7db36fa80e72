"""The Knative Pod Autoscaler (KPA), as pure state machines driven by a clock the caller passes in.

Every `now` is in seconds (any monotonic origin); durations from the ConfigMap (nanoseconds) are
converted once. The pieces, each a port of the upstream file named:

    ConcurrencyMeter    what the queue-proxy and activator measure: time-weighted in-flight requests
                        and request counts per reporting period (pkg/queue/stats.go)
    WindowBuckets       the metric windows (pkg/autoscaler/aggregation/bucketing.go): linear average,
                        or weighted-exponential when the revision asks for it
    MetricCollection    a revision's stable and panic windows (pkg/autoscaler/metrics/collector.go)
    DeciderSpec         target, total, rates, panic threshold, windows (kpa/resources/decider.go,
                        autoscaling/resources/target.go)
    Autoscaler.scale    the decider: desired pods from the stable/panic averages, panic mode, rate
                        limits, scale-down delay, excess burst capacity (pkg/autoscaler/scaling/autoscaler.go)
    PodAutoscaler       the PA's state and the KPA reconciler's scaling step: min/max/initial scale,
                        scale-to-zero after the stable window and grace period, activation timeout,
                        the Active condition (pkg/reconciler/autoscaling/kpa/{kpa,scaler}.go)
"""

from __future__ import annotations

import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcluster.knative import keys
from localcluster.knative._go import SECOND, parse_duration
from localcluster.knative.conditions import FALSE, POD_AUTOSCALER, TRUE, UNKNOWN, ConditionManager
from localcluster.knative.config import BUCKET_SIZE, TARGET_MIN, AutoscalerConfig

#: How often the decider runs (multiscaler.go tickInterval) and the metrics are read (scrapeTickInterval).
TICK_INTERVAL = 2.0
SCRAPE_INTERVAL = 1.0
#: The deployment progress deadline when config-deployment says nothing (pkg/deployment/config.go).
DEFAULT_PROGRESS_DEADLINE = 600.0
#: Added to the progress deadline before a revision that never activated is scaled back to zero.
ACTIVATION_TIMEOUT_BUFFER = 30.0
#: Unknown desired scale (no metrics yet).
SCALE_UNKNOWN = -1

_GRANULARITY = BUCKET_SIZE // SECOND
_MIN_EXPONENT = 0.2
_WEIGHT_PRECISION = 0.9999

NO_TRAFFIC = ("NoTraffic", "The target is not receiving traffic.")
QUEUED = ("Queued", "Requests to the target are being buffered as resources are provisioned.")
TIMED_OUT = ("TimedOut", "The target could not be activated.")


def _seconds(nanoseconds: int) -> float:
    return nanoseconds / SECOND


# -- what the proxy measures ------------------------------------------------------------------------


@dataclass
class ConcurrencyMeter:
    """In-flight requests of one revision, integrated over time, reported once per period.

    The proxy calls `begin` when a request for the revision arrives (held at zero or not) and `end`
    when it is answered; `report` returns the period's time-weighted average concurrency and the
    number of requests that arrived in it, as the queue-proxy's stat reporter does each second.
    """

    in_flight: int = 0
    _since: float | None = None
    _area: float = 0.0
    _arrived: int = 0
    _last_change: float = 0.0

    def _advance(self, now: float) -> None:
        if self._since is None:
            self._since = self._last_change = now
        self._area += self.in_flight * max(0.0, now - self._last_change)
        self._last_change = max(self._last_change, now)

    def begin(self, now: float) -> None:
        self._advance(now)
        self.in_flight += 1
        self._arrived += 1

    def end(self, now: float) -> None:
        self._advance(now)
        self.in_flight = max(0, self.in_flight - 1)

    def report(self, now: float) -> tuple[float, int]:
        """(average concurrency, requests arrived) since the last report; starts the next period."""
        self._advance(now)
        elapsed = now - (self._since if self._since is not None else now)
        average = self._area / elapsed if elapsed > 0 else float(self.in_flight)
        arrived = self._arrived
        self._since, self._area, self._arrived = now, 0.0, 0
        return average, arrived


RevisionKey = tuple[str, str]


class RevisionLoad:
    """Every revision's ConcurrencyMeter: the proxy leases, the autoscaler reads.

    `lease` counts a request from its arrival (held by the activator or not) until `release`; each
    arrival is told to the listeners (the autoscaler pokes a revision that is at zero, as the
    activator's first stat does). One RevisionLoad serves one cluster: `for_store` hands the proxy
    and the controllers the same one.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._meters: dict[RevisionKey, ConcurrencyMeter] = {}
        self._listeners: list[Callable[[RevisionKey], None]] = []

    def meter(self, key: RevisionKey) -> ConcurrencyMeter:
        return self._meters.setdefault(key, ConcurrencyMeter())

    def on_arrival(self, listener: Callable[[RevisionKey], None]) -> None:
        self._listeners.append(listener)

    def lease(self, key: RevisionKey) -> Callable[[], None]:
        """Count one request in; the returned function counts it out (calling it again does nothing)."""
        meter = self.meter(key)
        meter.begin(self.clock())
        for listener in self._listeners:
            listener(key)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                meter.end(self.clock())

        return release

    def report(self, key: RevisionKey) -> tuple[float, int]:
        return self.meter(key).report(self.clock())

    def forget(self, key: RevisionKey) -> None:
        self._meters.pop(key, None)


_LOADS: weakref.WeakKeyDictionary[object, RevisionLoad] = weakref.WeakKeyDictionary()


def load_for(owner: object, clock: Callable[[], float] = time.monotonic) -> RevisionLoad:
    """The one RevisionLoad of a cluster (keyed by its store), created on first use."""
    load = _LOADS.get(owner)
    if load is None:
        load = _LOADS[owner] = RevisionLoad(clock)
    return load


# -- metric windows ---------------------------------------------------------------------------------


class WindowBuckets:
    """TimedFloat64Buckets: values added into one-second buckets, averaged over a window."""

    def __init__(self, window: float, *, weighted: bool = False) -> None:
        self.window = window
        self._buckets = [0.0] * max(1, math.ceil(window / _GRANULARITY))
        self._first_write = -math.inf
        self._last_write = -math.inf
        self._total = 0.0
        count = len(self._buckets)
        self._smoothing = max(1 - (1 - _WEIGHT_PRECISION) ** (1 / count), _MIN_EXPONENT) if weighted else None

    @staticmethod
    def _bucket(now: float) -> int:
        return int(now // _GRANULARITY) * _GRANULARITY

    def _index(self, bucket_time: float) -> int:
        return int(bucket_time) // _GRANULARITY

    def record(self, now: float, value: float) -> None:
        bucket_time = self._bucket(now)
        write = self._index(bucket_time)
        if self._last_write != bucket_time:
            if not bucket_time + self.window > self._last_write:
                return  # older than the window: ignored
            if self._first_write == -math.inf or self._first_write > bucket_time:
                self._first_write = bucket_time
            if bucket_time > self._last_write:
                if bucket_time - self._last_write >= self.window:
                    self._first_write = bucket_time
                    self._buckets = [0.0] * len(self._buckets)
                    self._total = 0.0
                else:
                    for index in range(self._index(self._last_write) + 1, write + 1):
                        slot = index % len(self._buckets)
                        self._total -= self._buckets[slot]
                        self._buckets[slot] = 0.0
                self._last_write = bucket_time
        self._buckets[write % len(self._buckets)] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        return self._bucket(now) - self._last_write > self.window

    def average(self, now: float) -> float:
        if self._smoothing is not None:
            return self._weighted_average(now)
        now = self._bucket(now)
        since_write = now - self._last_write
        span = (self._last_write - self._first_write) // _GRANULARITY + 1
        if since_write <= 0:
            return round(self._total / min(span, len(self._buckets)), 6)
        if since_write < self.window:
            start, end = self._index(self._last_write), self._index(now)
            total = self._total - sum(self._buckets[i % len(self._buckets)] for i in range(start + 1, end + 1))
            return round(total / min(span, len(self._buckets) - (end - start)), 6)
        return 0.0

    def _weighted_average(self, now: float) -> float:
        """WeightedFloat64Buckets.WindowAverage: recent buckets weigh more, decaying by the smoothing factor."""
        assert self._smoothing is not None
        now = self._bucket(now)
        if self.is_empty(now):
            return 0.0
        count = len(self._buckets)
        used = count
        multiplier = self._smoothing
        if now > self._last_write:
            zeros = int((now - self._last_write) // _GRANULARITY)
            multiplier *= (1 - self._smoothing) ** zeros
            used -= zeros
        start = self._index(self._last_write) + count
        result = 0.0
        for step in range(used):
            result += self._buckets[(start - step) % count] * multiplier
            multiplier *= 1 - self._smoothing
        return result


class NoData(Exception):
    """No metric recorded within the stable window yet: the decider waits (ErrNoData)."""


@dataclass
class MetricCollection:
    """One revision's stable and panic windows of concurrency and of requests per second."""

    stable_window: float
    panic_window: float
    weighted: bool = False
    _windows: dict[str, WindowBuckets] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric in (keys.CONCURRENCY, keys.RPS):
            self._windows[f"{metric}/stable"] = WindowBuckets(self.stable_window, weighted=self.weighted)
            self._windows[f"{metric}/panic"] = WindowBuckets(self.panic_window, weighted=self.weighted)

    def record(self, now: float, concurrency: float, requests: float) -> None:
        for metric, value in ((keys.CONCURRENCY, concurrency), (keys.RPS, requests)):
            self._windows[f"{metric}/stable"].record(now, value)
            self._windows[f"{metric}/panic"].record(now, value)

    def stable_and_panic(self, metric: str, now: float) -> tuple[float, float]:
        stable, panic = self._windows[f"{metric}/stable"], self._windows[f"{metric}/panic"]
        if stable.is_empty(now):
            raise NoData(f"no {metric} recorded in the last {stable.window:g}s")
        return stable.average(now), panic.average(now)


def metric_windows(annotations: Mapping[str, str] | None, config: AutoscalerConfig) -> tuple[float, float]:
    """MakeMetric: the stable window (annotation or ConfigMap) and the panic window, a percentage of it."""
    stable = stable_window(annotations, config)
    percentage = _annotation_float(annotations, keys.PANIC_WINDOW_PERCENTAGE)
    if percentage is None:
        percentage = config.panic_window_percentage
    panic = math.floor(stable * percentage / 100.0 + 0.5)  # time.Duration.Round: halves away from zero
    return stable, max(float(panic), _seconds(BUCKET_SIZE))


def progress_deadline(annotations: Mapping[str, str] | None) -> float:
    """The revision's progress deadline (serving.knative.dev/progress-deadline), else config-deployment's default."""
    deadline = _annotation_duration(annotations, (keys.PROGRESS_DEADLINE_ANNOTATION,))
    return deadline if deadline is not None else DEFAULT_PROGRESS_DEADLINE


def stable_window(annotations: Mapping[str, str] | None, config: AutoscalerConfig) -> float:
    window = _annotation_duration(annotations, keys.WINDOW)
    return window if window is not None else _seconds(config.stable_window)


# -- the decider --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeciderSpec:
    """What the decider of one revision works with (scaling.DeciderSpec); windows in seconds."""

    max_scale_up_rate: float
    max_scale_down_rate: float
    scaling_metric: str
    target_value: float
    total_value: float
    target_burst_capacity: float
    activator_capacity: float
    panic_threshold: float
    stable_window: float
    scale_down_delay: float
    initial_scale: int
    reachable: bool = True
    activation_scale: int = 0


def decider_spec(
    annotations: Mapping[str, str] | None,
    container_concurrency: int,
    config: AutoscalerConfig,
    *,
    reachable: bool = True,
) -> DeciderSpec:
    """MakeDecider with ResolveMetricTarget: the revision's annotations over the ConfigMap's values."""
    metric = metric_of(annotations)
    if metric == keys.RPS:
        total, utilization = config.rps_target_default, config.target_utilization
    else:
        total = float(container_concurrency) or config.container_concurrency_target_default
        utilization = config.container_concurrency_target_fraction
    target_annotation = _annotation_float(annotations, keys.TARGET)
    if target_annotation is not None:
        total = target_annotation
        if metric == keys.CONCURRENCY and container_concurrency:
            # Never aim above what a pod can take at once.
            total = min(target_annotation, float(container_concurrency))
    utilization_annotation = _annotation_float(annotations, keys.TARGET_UTILIZATION_PERCENTAGE)
    if utilization_annotation is not None:
        utilization = utilization_annotation / 100
    threshold = _annotation_float(annotations, keys.PANIC_THRESHOLD_PERCENTAGE)
    burst = _annotation_float(annotations, keys.TARGET_BURST_CAPACITY)
    delay = _annotation_duration(annotations, keys.SCALE_DOWN_DELAY)
    activation = _annotation_int(annotations, keys.ACTIVATION_SCALE)
    return DeciderSpec(
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        scaling_metric=metric,
        target_value=max(TARGET_MIN, total * utilization),
        total_value=total,
        target_burst_capacity=burst if burst is not None else config.target_burst_capacity,
        activator_capacity=config.activator_capacity,
        panic_threshold=(threshold if threshold is not None else config.panic_threshold_percentage) / 100.0,
        stable_window=stable_window(annotations, config),
        scale_down_delay=delay if delay is not None else _seconds(config.scale_down_delay),
        initial_scale=initial_scale(annotations, config),
        reachable=reachable,
        activation_scale=activation or 0,
    )


@dataclass(frozen=True)
class ScaleResult:
    desired_pod_count: int
    excess_burst_capacity: int
    valid: bool = True


class _MaxWindow:
    """max.TimeWindow: the largest value recorded in the last `duration` (the scale-down delay)."""

    def __init__(self, duration: float, granularity: float) -> None:
        self._size = max(1, math.ceil(duration / granularity))
        self._granularity = granularity
        self._entries: deque[tuple[int, int]] = deque()

    def record(self, now: float, value: int) -> None:
        index = int(now // self._granularity)
        while self._entries and self._entries[-1][1] <= value:
            self._entries.pop()
        while self._entries and index - self._entries[0][0] >= self._size:
            self._entries.popleft()
        self._entries.append((index, value))

    def current(self) -> int:
        return self._entries[0][1]


class Autoscaler:
    """One revision's decider: `scale(now, ...)` every tick, as pkg/autoscaler/scaling.autoscaler.Scale."""

    def __init__(self, spec: DeciderSpec, ready_pods: int, now: float) -> None:
        self.spec = spec
        # With more than one pod the decider starts in panic mode, so a restart (lost history) does
        # not scale down before it has seen enough data.
        self.panic_since: float | None = now if ready_pods > 1 else None
        self.max_panic_pods = ready_pods
        self._delay = _MaxWindow(spec.scale_down_delay, TICK_INTERVAL) if spec.scale_down_delay > 0 else None

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None

    def update(self, spec: DeciderSpec) -> None:
        if spec.scale_down_delay != self.spec.scale_down_delay:
            self._delay = _MaxWindow(spec.scale_down_delay, TICK_INTERVAL) if spec.scale_down_delay > 0 else None
        self.spec = spec

    def scale(self, now: float, ready_pods: int, observed_stable: float, observed_panic: float) -> ScaleResult:
        spec = self.spec
        ready = max(1.0, float(ready_pods))
        # Always allow growing by at least one pod, and shrinking by at least one when reachable.
        max_scale_up = math.ceil(spec.max_scale_up_rate * ready)
        max_scale_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0.0
        desired_stable_raw = math.ceil(observed_stable / spec.target_value)
        desired_panic_raw = math.ceil(observed_panic / spec.target_value)
        desired_stable = int(min(max(desired_stable_raw, max_scale_down), max_scale_up))
        desired_panic = int(min(max(desired_panic_raw, max_scale_down), max_scale_up))
        if spec.activation_scale > 1:
            if desired_stable_raw > 0 and spec.activation_scale > desired_stable:
                desired_stable = spec.activation_scale
            if desired_panic_raw > 0 and spec.activation_scale > desired_panic:
                desired_panic = spec.activation_scale

        over_threshold = desired_panic_raw / ready >= spec.panic_threshold
        if over_threshold:
            self.panic_since = now  # begin panicking, or extend the panic
        elif self.panic_since is not None and self.panic_since + spec.stable_window < now:
            # The surge has made its way into the stable window: back to stable mode.
            self.panic_since = None
            self.max_panic_pods = 0

        desired = desired_stable
        if self.panic_since is not None:
            # In panic mode provision for the larger of the two, and never scale down.
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods

        if spec.reachable and self._delay is not None:
            self._delay.record(now, desired)
            desired = self._delay.current()

        if spec.target_burst_capacity == 0:
            excess = 0.0
        elif spec.target_burst_capacity > 0:
            excess = math.floor(ready_pods * spec.total_value - spec.target_burst_capacity - observed_panic)
        else:
            excess = -1.0
        return ScaleResult(desired, int(excess))


def initial_excess_burst_capacity(spec: DeciderSpec) -> int:
    """What a new decider reports before its first scale (multiscaler.createScaler)."""
    if spec.target_burst_capacity in (-1, 0):
        return int(spec.target_burst_capacity)
    return int(spec.initial_scale * spec.total_value - spec.target_burst_capacity)


# -- the PodAutoscaler and the KPA's scaling step -------------------------------------------------------


def scale_bounds(
    annotations: Mapping[str, str] | None, config: AutoscalerConfig, *, reachable: bool = True
) -> tuple[int, int]:
    """(min, max) scale: annotations over the ConfigMap; min is ignored for an unreachable revision."""
    low = 0
    if reachable:
        low = config.min_scale
        annotated = _annotation_int(annotations, keys.MIN_SCALE)
        if annotated is not None:
            low = annotated
    high = config.max_scale
    annotated = _annotation_int(annotations, keys.MAX_SCALE)
    if annotated is not None:
        high = annotated
    return low, high


def initial_scale(annotations: Mapping[str, str] | None, config: AutoscalerConfig) -> int:
    """GetInitialScale: the annotation, unless it asks for 0 and the cluster does not allow that."""
    annotated = _annotation_int(annotations, keys.INITIAL_SCALE)
    if annotated is None or (annotated == 0 and not config.allow_zero_initial_scale):
        return config.initial_scale
    return annotated


def metric_of(annotations: Mapping[str, str] | None) -> str:
    found = keys.lookup(annotations, keys.METRIC)
    return found[1] if found else keys.CONCURRENCY


def apply_bounds(low: int, high: int, value: int) -> int:
    if value < low:
        return low
    if high != 0 and value > high:
        return high
    return value


@dataclass(frozen=True)
class PodCounts:
    want: int
    ready: int = 0
    not_ready: int = 0
    pending: int = 0
    terminating: int = 0


@dataclass(frozen=True)
class ScaleStep:
    """What the KPA's scaling step decided: the scale it wants, whether to write it, when to look again."""

    want: int
    apply: bool
    again_in: float | None = None


@dataclass
class PodAutoscaler:
    """The PodAutoscaler of one revision, kept by the autoscaler controller (no PA kind is served).

    `status` holds the PA's conditions (Active, ScaleTargetInitialized, SKSReady and Ready) with their
    transition times in the controller's clock. The ServerlessService's mode is tracked here too: in
    Proxy mode the activator is in the request path, and how long it has been there shortens the
    scale-to-zero grace period, as upstream's `ProxyFor` does.
    """

    annotations: Mapping[str, str]
    container_concurrency: int
    progress_deadline: float = DEFAULT_PROGRESS_DEADLINE
    reachable: bool = True
    status: dict[str, Any] = field(default_factory=dict)
    desired_scale: int | None = None
    actual_scale: int | None = None
    proxy_since: float | None = None
    service_name: str = ""

    def conditions(self, now: float) -> ConditionManager:
        return POD_AUTOSCALER.manage(self.status, now)

    def condition(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.status.get("conditions", []) if c["type"] == kind), None)

    def _active_status(self) -> str | None:
        active = self.condition("Active")
        return None if active is None else active["status"]

    @property
    def is_active(self) -> bool:
        return self._active_status() == TRUE

    @property
    def is_inactive(self) -> bool:
        return self._active_status() == FALSE

    @property
    def is_activating(self) -> bool:
        return self._active_status() in (UNKNOWN, None)

    @property
    def scale_target_initialized(self) -> bool:
        initialized = self.condition("ScaleTargetInitialized")
        return initialized is not None and initialized["status"] == TRUE

    def _in_status_for(self, status: str, now: float) -> float:
        active = self.condition("Active")
        if active is None or active["status"] != status:
            return -1.0
        return now - float(active["lastTransitionTime"])

    def active_for(self, now: float) -> float:
        return self._in_status_for(TRUE, now)

    def inactive_for(self, now: float) -> float:
        return self._in_status_for(FALSE, now)

    def activating_for(self, now: float) -> float:
        return self._in_status_for(UNKNOWN, now)

    def set_proxy_mode(self, proxy: bool, now: float) -> None:
        """The SKS mode: Proxy (activator in the path) or Serve; ProxyFor counts from the switch to Proxy."""
        if proxy and self.proxy_since is None:
            self.proxy_since = now
        elif not proxy:
            self.proxy_since = None

    def proxy_for(self, now: float) -> float:
        return 0.0 if self.proxy_since is None else now - self.proxy_since

    def scale(self, decided: int, current: int, config: AutoscalerConfig, now: float) -> ScaleStep:
        """scaler.scale: bounds, initial scale, then scale-to-zero rules, for the decider's desired scale."""
        if decided < 0 and not self.is_activating:
            return ScaleStep(decided, apply=False)  # metrics are not being collected yet
        low, high = scale_bounds(self.annotations, config, reachable=self.reachable)
        initial = initial_scale(self.annotations, config)
        if initial > 1 and not self.scale_target_initialized and self.reachable:
            low = max(initial, low)
        desired = apply_bounds(low, high, decided)
        step = self._handle_scale_to_zero(desired, config, now)
        if not step.apply:
            return step
        return ScaleStep(step.want, apply=step.want != current, again_in=step.again_in)

    def _handle_scale_to_zero(self, desired: int, config: AutoscalerConfig, now: float) -> ScaleStep:
        if desired != 0:
            return ScaleStep(desired, apply=True)
        if not config.enable_scale_to_zero:
            return ScaleStep(1, apply=True)
        activation_timeout = self.progress_deadline + ACTIVATION_TIMEOUT_BUFFER
        if self.is_activating:
            if self.activating_for(now) > activation_timeout:
                return ScaleStep(desired, apply=True)  # activation timed out: give up, scale to zero
            return ScaleStep(SCALE_UNKNOWN, apply=False, again_in=activation_timeout)
        if self.is_active:
            window = stable_window(self.annotations, config)
            active_for = self.active_for(now)
            if active_for >= window:
                return ScaleStep(desired, apply=False, again_in=3.0)  # mark inactive first
            # Keep one pod for the rest of the stable window after the last request.
            return ScaleStep(1, apply=True, again_in=window - active_for)
        # Inactive: the activator is in the path (localcluster's proxy always is).
        retention = self._last_pod_retention(config)
        longest = max(_seconds(config.scale_to_zero_grace_period), retention)
        inactive_for = self.inactive_for(now)
        if inactive_for >= longest:
            return ScaleStep(desired, apply=True)
        if retention > 0 and inactive_for < retention:
            return ScaleStep(desired, apply=False, again_in=retention - inactive_for)
        remaining = _seconds(config.scale_to_zero_grace_period) - self.proxy_for(now)
        if remaining <= 0:
            return ScaleStep(desired, apply=True)  # the activator has been in the path long enough
        return ScaleStep(desired, apply=False, again_in=remaining)

    def _last_pod_retention(self, config: AutoscalerConfig) -> float:
        if not self.reachable:
            return 0.0
        annotated = _annotation_duration(self.annotations, keys.SCALE_TO_ZERO_POD_RETENTION_PERIOD)
        return annotated if annotated is not None else _seconds(config.scale_to_zero_pod_retention_period)

    def active_threshold(self, config: AutoscalerConfig) -> int:
        low, _high = scale_bounds(self.annotations, config, reachable=self.reachable)
        if not self.scale_target_initialized:
            return max(low, initial_scale(self.annotations, config))
        return max(low, 1)

    def compute_status(self, counts: PodCounts, config: AutoscalerConfig, now: float) -> None:
        """computeStatus and computeActiveCondition: actual and desired scale, and the Active condition."""
        self.actual_scale = counts.ready
        if not (counts.want == SCALE_UNKNOWN and self.desired_scale is not None and self.desired_scale >= 0):
            self.desired_scale = counts.want
        manager = self.conditions(now)
        manager.initialize()
        minimum = self.active_threshold(config)
        if counts.ready >= minimum and self.service_name:
            manager.mark_true("ScaleTargetInitialized")
        if counts.want == 0 or minimum == 0:
            if self.is_activating and minimum > 0:
                manager.mark_false("Active", *TIMED_OUT)
            else:
                manager.mark_false("Active", *NO_TRAFFIC)
        elif counts.ready < minimum:
            if counts.want > 0 or not self.is_inactive:
                manager.mark_unknown("Active", *QUEUED)
            else:
                manager.mark_false("Active", *NO_TRAFFIC)
        elif counts.want > 0 or not self.is_inactive:
            manager.mark_true("Active")

    def mark_sks_ready(self, ready: bool, now: float, message: str = "") -> None:
        manager = self.conditions(now)
        if ready:
            manager.mark_true("SKSReady")
        else:
            manager.mark_unknown("SKSReady", "NotReady", message)


def wants_activator(want: int, excess_burst_capacity: int, inactive: bool) -> bool:
    """The SKS mode the KPA asks for: Proxy unless there are pods to serve and burst capacity to spare."""
    if want == SCALE_UNKNOWN and inactive:
        return True
    return not (want > 0 and excess_burst_capacity >= 0)


# -- annotation readers (the values are validated by the webhook) ----------------------------------------


def _annotation(annotations: Mapping[str, str] | None, key: keys.KeyPriority) -> str | None:
    found = keys.lookup(annotations, key)
    return None if found is None else found[1]


def _annotation_float(annotations: Mapping[str, str] | None, key: keys.KeyPriority) -> float | None:
    raw = _annotation(annotations, key)
    try:
        return None if raw is None else float(raw)
    except ValueError:
        return None


def _annotation_int(annotations: Mapping[str, str] | None, key: keys.KeyPriority) -> int | None:
    raw = _annotation(annotations, key)
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


def _annotation_duration(annotations: Mapping[str, str] | None, key: keys.KeyPriority) -> float | None:
    raw = _annotation(annotations, key)
    try:
        return None if raw is None else _seconds(parse_duration(raw))
    except ValueError:
        return None
