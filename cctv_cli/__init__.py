"""The `cctv` command line and the demo: the entry points above every floor.

This package is the composition root: the only code that knows all the parts (the kernel in
`cctv/`, the contracts in `schemas/`, the processors in `stream_processors/`, the processes in
`services/`, the local servers in `infra/`) and wires them together. Nothing below imports it;
tests/unit/test_layering.py keeps it that way.
"""
