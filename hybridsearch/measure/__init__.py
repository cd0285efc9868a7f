"""Measurement: latency (`measure.latency`), analytic FLOPs (`measure.flops`), the BERT profiler.

Kept light: import the submodules where they are used.
"""
