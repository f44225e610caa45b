"""What a benchmark ran on: CPU, cores, RAM, OS and the versions that matter to the numbers."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Processor", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores() -> int | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores = set()
    physical = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not key:
            if physical is not None and core is not None:
                cores.add((physical, core))
            physical = core = None
    return len(cores) or None


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _java() -> str:
    try:
        result = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def describe(*, broker: str | None = None) -> dict[str, str]:
    """The machine block: label -> value, in display order.

    ``broker`` describes the Kafka broker a section used; without one (a section that needs
    no broker) the Kafka client, broker and Java rows are left out.
    """
    import fastavro

    logical = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    physical = _physical_cores()
    cores = f"{logical} logical"
    if physical:
        cores += f", {physical} physical"
    if usable != logical:
        cores += f", {usable} usable by this process"
    block = {
        "CPU": _cpu_model(),
        "cores": cores,
        "RAM": _ram(),
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if broker is not None:
        import confluent_kafka

        block["confluent-kafka"] = getattr(confluent_kafka, "__version__", None) or str(
            confluent_kafka.version()
        )
        block["librdkafka"] = confluent_kafka.libversion()[0]
        block["Kafka broker"] = broker
        block["Java"] = _java()
    block["fastavro"] = f"{fastavro.__version__}{_fastavro_build()}"
    return block


def _fastavro_build() -> str:
    """`` (C extension)`` or `` (pure Python)``: the two run at very different speeds."""
    try:
        from fastavro import _read, _write  # noqa: F401  (the compiled modules)
    except ImportError:
        return " (pure Python)"
    return " (C extension)"


def markdown(block: dict[str, str]) -> list[str]:
    """The "Machine" subsection of a benchmark section, as Markdown lines."""
    return [
        "### Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in block.items()),
    ]
