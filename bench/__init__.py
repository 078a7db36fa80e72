"""Benchmarks: each script starts what it measures in a temporary LAB_HOME and prints `name: value unit`."""
