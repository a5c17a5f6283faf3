"""Shared fixtures: the real beamline files in ../shared, synthetic volumes, and CLI runs."""

import io
import json
import shutil
import subprocess
import sys
from contextlib import chdir, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def real() -> Path:
    """The directory of real beamline files, or a skip saying why they are missing."""
    if not (REAL / "PROVENANCE.md").exists():
        pytest.skip(f"real beamline files not found at {REAL} (the shared/ folder beside the repository)")
    return REAL


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_script(command: str, *args: object, cwd: Path | None = None, timeout: float = 300) -> Run:
    """Run an installed console script the way a user would, in a real subprocess: for what only a
    process shows (the scripts themselves, signals, limits, other users)."""
    executable = BIN / command
    assert executable.exists(), f"{executable} is not installed; pip install -e . first"
    done = subprocess.run(
        [str(executable), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def run_cli(command: str, *args: object, cwd: Path | None = None) -> Run:
    """Run a command in this process (``tomotiff.cli.<command>_main(argv)``), capturing what it
    prints: what its console script does, without starting an interpreter for every call."""
    from tomotiff import cli

    main = getattr(cli, f"{command}_main")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), chdir(cwd or "."):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse: -h, -V and usage errors
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    return Run(code, out.getvalue(), err.getvalue())


SLURM_VENV = REPO / ".venv-slurm"
# The node's memory as SLURM sees it. The workflow profile asks for what real scans need
# (4 GB a shard, several shards per allocation); nothing here enforces memory (no cgroups),
# and slurm.conf's config_overrides lets the node claim more than the machine has.
SLURM_NODE_MEMORY_MB = 16000


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """One real single-node SLURM cluster for the session (tests/slurm_cluster.py), or a skip
    saying why it cannot start here. Started before anything is built for it."""
    from slurm_cluster import SlurmCluster, SlurmUnavailable

    try:
        with SlurmCluster(tmp_path_factory.mktemp("slurm"), real_memory_mb=SLURM_NODE_MEMORY_MB) as running:
            running.wait_ready(60)
            yield running
    except SlurmUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def slurm_snakemake(cluster) -> Path:
    """snakemake with snakemake-executor-plugin-slurm, in its own environment (.venv-slurm,
    made on first use): where a SLURM client is installed, the plugin's import costs every other
    Snakemake start a 10 s `scontrol` timeout, so it stays out of the test environment.
    Depends on `cluster`, so where SLURM cannot run the tests skip before the ~100 s build."""
    executable = SLURM_VENV / "bin" / "snakemake"
    built = SLURM_VENV / ".tomotiff-slurm-complete"  # written last: an interrupted build is redone
    if not built.exists():
        shutil.rmtree(SLURM_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(SLURM_VENV)], check=True)
        done = subprocess.run(
            [str(SLURM_VENV / "bin" / "pip"), "install", "-q", "-e", f"{REPO}[slurm]"], capture_output=True, text=True
        )
        if done.returncode != 0:
            shutil.rmtree(SLURM_VENV)
            pytest.skip(f"cannot install tomotiff[slurm]: {done.stderr.strip()[-300:]}")
        built.touch()
    return executable


def read_tiff(path: Path) -> tuple[np.ndarray, dict]:
    """Pixels and the JSON metadata tomotiff writes in ImageDescription."""
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        description = tif.pages[0].description
        return tif.pages[0].asarray(), json.loads(description) if description else {}


def tiff_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".tif")


def expected_quantised(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """The documented formula, computed independently of tomotiff: x as float64, then
    ((clip(x, lo, hi) - lo) / (hi - lo)) * (2**bits - 1), one float64 rounding per operation in
    that order, rounded half to even; NaN -> 0 (clip takes +-Inf to hi and lo)."""
    lo, hi, top = float(lo), float(hi), float(2**bits - 1)
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore"):
        v = ((np.clip(x, lo, hi) - lo) / (hi - lo)) * top
    return np.rint(np.where(np.isnan(x), 0.0, v)).astype(np.int64)


def assert_quantised(actual: np.ndarray, x: np.ndarray, lo: float, hi: float, bits: int) -> None:
    """Every pixel equals the formula exactly."""
    expected = expected_quantised(x, lo, hi, bits)
    assert np.shape(actual) == expected.shape, f"shape {np.shape(actual)}, not the input's {expected.shape}"
    wrong = np.flatnonzero(np.asarray(actual, np.int64) != expected)
    if wrong.size:
        first = wrong[0]
        raise AssertionError(
            f"{wrong.size} pixels differ from the formula (lo={lo!r}, hi={hi!r}, bits={bits}); the first: "
            f"x = {np.asarray(x).flat[first]!r}, got {np.asarray(actual).flat[first]}, formula {expected.flat[first]}"
        )
