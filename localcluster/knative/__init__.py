"""Knative Serving's semantics as pure functions: what every localcluster part that plays Knative shares.

The admission webhook (defaults and validation), the reconcilers in `localcluster.controllers.knative`
and the activator in `localcluster.network.knative` all read the same rules from here, each a port of
the knative/serving (or knative/pkg) code named in its docstring:

    keys          label and annotation keys (pkg/apis/serving, pkg/apis/autoscaling)
    fielderrors   apis.FieldError: the webhook's error messages and field paths
    conditions    apis.ConditionSet: Ready and its dependent conditions
    config        the config-autoscaler, config-defaults, config-domain and config-network ConfigMaps
    names         kmeta.ChildName and the names of the objects Knative creates
    domains       route URLs from the domain and tag templates
    webhook       SetDefaults and Validate of Service, Configuration, Route and Revision
    traffic       a Route's traffic: which revisions, by tag, with which percents
    autoscaler    the KPA: metric windows, the decider's formulas, scale bounds and scale-to-zero

Nothing here touches the store or the network, so every rule is unit-tested with plain values and,
where time matters, a clock the test controls.
"""
