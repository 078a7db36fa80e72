"""Label and annotation keys, as knative/serving spells them (pkg/apis/serving, pkg/apis/autoscaling)."""

from __future__ import annotations

from collections.abc import Mapping

GROUP = "serving.knative.dev"
API_VERSION = f"{GROUP}/v1"

SERVICE_LABEL = f"{GROUP}/service"
SERVICE_UID_LABEL = f"{GROUP}/serviceUID"
CONFIGURATION_LABEL = f"{GROUP}/configuration"
CONFIGURATION_UID_LABEL = f"{GROUP}/configurationUID"
CONFIGURATION_GENERATION_LABEL = f"{GROUP}/configurationGeneration"
REVISION_LABEL = f"{GROUP}/revision"
REVISION_UID_LABEL = f"{GROUP}/revisionUID"
ROUTE_LABEL = f"{GROUP}/route"
ROUTING_STATE_LABEL = f"{GROUP}/routingState"
ROUTES_ANNOTATION = f"{GROUP}/routes"
ROUTING_STATE_MODIFIED_ANNOTATION = f"{GROUP}/routingStateModified"
PROGRESS_DEADLINE_ANNOTATION = f"{GROUP}/progress-deadline"
ROLLOUT_DURATION_ANNOTATIONS = (f"{GROUP}/rollout-duration", f"{GROUP}/rolloutDuration")
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
#: `app` is filled with the revision name when the user sets none, for tracing (resources/meta.go).
APP_LABEL = "app"

VISIBILITY_LABEL = "networking.knative.dev/visibility"
VISIBILITY_CLUSTER_LOCAL = "cluster-local"
SERVICE_TYPE_LABEL = "networking.internal.knative.dev/serviceType"

AUTOSCALING_GROUP = "autoscaling.knative.dev"
KPA_CLASS = "kpa.autoscaling.knative.dev"
HPA_CLASS = "hpa.autoscaling.knative.dev"
CONCURRENCY = "concurrency"
RPS = "rps"

#: Each annotation with the older camelCase spellings upstream still reads (kmap.KeyPriority).
CLASS = (f"{AUTOSCALING_GROUP}/class",)
METRIC = (f"{AUTOSCALING_GROUP}/metric",)
TARGET = (f"{AUTOSCALING_GROUP}/target",)
MIN_SCALE = (f"{AUTOSCALING_GROUP}/min-scale", f"{AUTOSCALING_GROUP}/minScale")
MAX_SCALE = (f"{AUTOSCALING_GROUP}/max-scale", f"{AUTOSCALING_GROUP}/maxScale")
INITIAL_SCALE = (f"{AUTOSCALING_GROUP}/initial-scale", f"{AUTOSCALING_GROUP}/initialScale")
ACTIVATION_SCALE = (f"{AUTOSCALING_GROUP}/activation-scale",)
SCALE_DOWN_DELAY = (f"{AUTOSCALING_GROUP}/scale-down-delay", f"{AUTOSCALING_GROUP}/scaleDownDelay")
WINDOW = (f"{AUTOSCALING_GROUP}/window",)
PANIC_WINDOW_PERCENTAGE = (
    f"{AUTOSCALING_GROUP}/panic-window-percentage",
    f"{AUTOSCALING_GROUP}/panicWindowPercentage",
)
PANIC_THRESHOLD_PERCENTAGE = (
    f"{AUTOSCALING_GROUP}/panic-threshold-percentage",
    f"{AUTOSCALING_GROUP}/panicThresholdPercentage",
)
TARGET_UTILIZATION_PERCENTAGE = (
    f"{AUTOSCALING_GROUP}/target-utilization-percentage",
    f"{AUTOSCALING_GROUP}/targetUtilizationPercentage",
)
TARGET_BURST_CAPACITY = (
    f"{AUTOSCALING_GROUP}/target-burst-capacity",
    f"{AUTOSCALING_GROUP}/targetBurstCapacity",
)
SCALE_TO_ZERO_POD_RETENTION_PERIOD = (
    f"{AUTOSCALING_GROUP}/scale-to-zero-pod-retention-period",
    f"{AUTOSCALING_GROUP}/scaleToZeroPodRetentionPeriod",
)
METRIC_AGGREGATION_ALGORITHM = (
    f"{AUTOSCALING_GROUP}/metric-aggregation-algorithm",
    f"{AUTOSCALING_GROUP}/metricAggregationAlgorithm",
)

KeyPriority = tuple[str, ...]


def lookup(annotations: Mapping[str, str] | None, key: KeyPriority) -> tuple[str, str] | None:
    """(the key found, its value) for the first spelling present, as kmap.KeyPriority.Get; None if absent."""
    for spelling in key:
        if annotations and spelling in annotations:
            return spelling, annotations[spelling]
    return None
