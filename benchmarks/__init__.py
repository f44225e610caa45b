"""Benchmarks of the event backbone, run by `make bench` (``python -m benchmarks``).

Every benchmark reports *ratios* against a baseline measured in the same run on the same
machine; absolute events/s depend on the machine and its load and are context only. Results
go to ``docs/BENCHMARKS.md``, one marked section per benchmark (see :mod:`benchmarks.report`).
"""
