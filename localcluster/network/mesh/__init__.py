"""Istio's data plane semantics for localcluster: sidecar injection, VirtualService routing,
DestinationRule subsets and load balancing, AuthorizationPolicy, and the proxies' telemetry.

Objects are compiled once per change (virtualservices.py, destinationrules.py, authorization.py);
`injection.py` is the injector's admission step. Requests only look up compiled state.
"""
