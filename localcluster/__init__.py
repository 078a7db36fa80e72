"""localcluster: the embedded, Kubernetes-compatible runtime the workshop runs on by default.

It serves the subset of the Kubernetes REST API the labs use on a loopback address, so the official
`kubernetes` client and `kubectl` talk to it exactly as to a real cluster.
"""
