"""What the figures depend on: cores, CPU, RAM, load, and the versions doing the I/O.

Versions are read from package metadata and from subprocesses, never by importing numpy or
h5py here: the measuring process stays small (see measure.py).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from commands import Tool
from measure import last_line


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def hdf5_version() -> str:
    """The HDF5 library h5py was built with, asked of a child interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", "import h5py; print(h5py.version.hdf5_version)"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def tomotiff_build(tool: Tool) -> str:
    """What a tomotiff command says of itself (`-V`): its version and which quantisation loop runs."""
    if tool.path is None:
        return f"not available: {tool.why}"
    done = subprocess.run([tool.path, "-V"], capture_output=True, text=True)
    if done.returncode:
        return f"{tool.path} -V failed: {last_line(done.stderr)}"
    return (done.stdout or done.stderr).strip()


def load_average() -> str:
    """The machine is shared: a load near or above nproc means the figures include contention."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ram_bytes() -> int:
    """Total RAM: what a volume must exceed for the page cache not to hold it (--big)."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    return int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))) * 1024


def machine(tool: Tool) -> dict[str, str]:
    """The report's machine section, as it stands before the runs."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{ram_bytes() / 1e9:.1f} GB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "h5py": f"{package_version('h5py')} (HDF5 {hdf5_version()})",
        "tifffile": package_version("tifffile"),
        "tomotiff": tomotiff_build(tool),
        "nabu": package_version("nabu"),
        "load average at start": load_average(),
    }
