"""A real, throw-away single-node SLURM cluster on loopback, for tests and CI.

``SlurmCluster`` runs munged, slurmctld and slurmd from the Debian packages
(see ``.ci/install-slurm.sh``) with every config, state, log, socket and pid
file kept in directories it owns, and stops exactly the processes it started.
It needs root: slurmd must be able to run jobs as the submitting user and
munged must be started as the ``munge`` user.

There is no accounting database (``AccountingStorageType=accounting_storage/none``),
so ``sacct`` cannot see jobs. Snakemake's SLURM executor plugin must therefore
be told ``--slurm-status-command squeue``; ``MinJobAge`` is kept at 300 s so
that finished jobs stay visible to ``squeue --states=all`` long enough (the
plugin falls back to sacct when MinJobAge < 3 * init-seconds-before-status-checks).

Only one cluster can run at a time on a machine (a second one raises
``SlurmUnavailable``): jobs started by the plugin call ``srun`` without
``SLURM_CONF``, so the config is also linked at ``/etc/slurm/slurm.conf`` for
the cluster's lifetime.

Usage::

    with SlurmCluster(tmp_path / "slurm") as cluster:
        cluster.wait_ready(60)
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env, check=True)
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, closing, suppress
from pathlib import Path
from types import TracebackType
from typing import Self

SYSTEM_SLURM_CONF = Path("/etc/slurm/slurm.conf")
LOCK_FILE = Path(tempfile.gettempdir()) / "tomotiff-slurm-cluster.lock"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
PARTITION = "debug"
FINAL_JOB_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"})

_SUBMIT_RE = re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+)")
_COMPLETE_RE = re.compile(r"_job_complete: JobId=(\d+) done")


class SlurmUnavailable(RuntimeError):
    """The cluster cannot run here; tests should skip with ``str(exc)`` as the reason."""


def check_available() -> None:
    """Raise ``SlurmUnavailable`` unless root and every needed binary is installed.

    Checked up front so a missing package gives a skip with a clear reason
    instead of a daemon start-up failure deep inside a test.
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("the SLURM test cluster needs root")
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name, path=_sbin_path()) is None]
    if missing:
        raise SlurmUnavailable(f"SLURM/munge binaries missing ({', '.join(missing)}); run .ci/install-slurm.sh")
    try:
        pwd.getpwnam("munge")
    except KeyError as exc:
        raise SlurmUnavailable("no 'munge' user; run .ci/install-slurm.sh") from exc


def _sbin_path() -> str:
    """PATH including the sbin directories, where the Debian daemons live."""
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def free_ports(count: int) -> list[int]:
    """Ports the kernel reports free on loopback, so we never collide with other services.

    All sockets are held open together so the ports are distinct.
    """
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def available_cpus() -> int:
    """CPUs this process may use (like ``nproc``), which is what the node offers jobs."""
    return len(os.sched_getaffinity(0))


def render_slurm_conf(
    *,
    hostname: str,
    cpus: int,
    real_memory_mb: int,
    ctld_port: int,
    slurmd_port: int,
    state_dir: Path,
    log_dir: Path,
    munge_socket: Path,
) -> str:
    """slurm.conf for one node on loopback, without cgroups or accounting.

    Why the less obvious settings:
    - proctrack/linuxproc and task/none: containers and CI have no usable cgroups.
    - EnforcePartLimits=ALL: a job asking for more than the node has is rejected
      at submission instead of pending forever.
    - DefMemPerCPU: with memory as a consumable resource, a job without --mem
      would otherwise take all node memory and serialise everything.
    - MinJobAge=300: finished jobs stay visible to ``squeue --states=all``,
      which is how the Snakemake plugin sees them finish without sacct.
    - SlurmdParameters=config_overrides: the node registers even if the
      detected hardware layout differs from this minimal description.
    """
    return f"""\
ClusterName=tomotiff
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={state_dir / "ctld"}
SlurmdSpoolDir={state_dir / "slurmd"}
SlurmctldPidFile={state_dir / "slurmctld.pid"}
SlurmdPidFile={state_dir / "slurmd.pid"}
SlurmctldLogFile={log_dir / "slurmctld.log"}
SlurmdLogFile={log_dir / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=100
EnforcePartLimits=ALL
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=300
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=5
TCPTimeout=2
InactiveLimit=0
KillWait=2
Waittime=0
NodeName={hostname} NodeAddr=127.0.0.1 NodeHostname={hostname} CPUs={cpus} RealMemory={real_memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={hostname} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """Context manager owning munged, slurmctld and slurmd for one test session.

    ``workdir`` receives slurm.conf, state and logs. munged's key, socket and
    log live in a separate munge-owned 0755 directory under the system temp
    dir, because munged refuses a socket whose parent directories are not
    executable by all, which pytest's 0700 temp dirs are not.
    """

    def __init__(self, workdir: Path, *, cpus: int | None = None, real_memory_mb: int = 4000) -> None:
        self.workdir = Path(workdir).resolve()
        self.cpus = cpus or available_cpus()
        self.real_memory_mb = real_memory_mb
        self.hostname = socket.gethostname().split(".")[0]
        self.conf_path = self.workdir / "slurm.conf"
        self.log_dir = self.workdir / "log"
        self.state_dir = self.workdir / "state"
        self.munge_dir: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._cleanups: list[Callable[[], None]] = []

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> Self:
        check_available()
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config and start munged, slurmctld and slurmd in that order."""
        self._lock_machine()
        for directory in (self.log_dir, self.state_dir / "ctld", self.state_dir / "slurmd"):
            directory.mkdir(parents=True, exist_ok=True)
        munge_socket = self._start_munged()
        ctld_port, slurmd_port = free_ports(2)
        self.conf_path.write_text(
            render_slurm_conf(
                hostname=self.hostname,
                cpus=self.cpus,
                real_memory_mb=self.real_memory_mb,
                ctld_port=ctld_port,
                slurmd_port=slurmd_port,
                state_dir=self.state_dir,
                log_dir=self.log_dir,
                munge_socket=munge_socket,
            )
        )
        self._link_system_conf()
        # -c: start from clean state, -i: ignore unreadable old state.
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf_path)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf_path)])

    def stop(self) -> None:
        """Cancel jobs, stop our daemons by PID, undo /etc changes; safe to call twice."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self._cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc)
        while self._cleanups:
            self._cleanups.pop()()

    # -- daemons -------------------------------------------------------------

    def _start_munged(self) -> Path:
        """Run munged as the munge user with a fresh key; return its socket path."""
        munge_user = pwd.getpwnam("munge")
        self.munge_dir = Path(tempfile.mkdtemp(prefix="tomotiff-munge-"))
        munge_dir = self.munge_dir
        self._cleanups.append(lambda: shutil.rmtree(munge_dir, ignore_errors=True))
        os.chmod(munge_dir, 0o755)
        os.chown(munge_dir, munge_user.pw_uid, munge_user.pw_gid)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chown(key, munge_user.pw_uid, munge_user.pw_gid)
        os.chmod(key, 0o400)
        sock = munge_dir / "munge.socket"
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user=munge_user.pw_uid,
            group=munge_user.pw_gid,
        )
        _wait_for(sock.exists, 10, "munged socket", self._procs["munged"])
        return sock

    def _spawn(self, name: str, argv: list[str], **kwargs: object) -> None:
        """Start a foreground daemon, its output in log/<name>.out, in its own session."""
        with open(self.log_dir / f"{name}.out", "wb") as out:
            self._procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                **kwargs,  # type: ignore[arg-type]
            )

    def _lock_machine(self) -> None:
        """Hold an exclusive lock so a second cluster cannot take over /etc/slurm/slurm.conf."""
        lock = LOCK_FILE.open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise SlurmUnavailable("another SLURM test cluster is running on this machine") from exc
        self._cleanups.append(lock.close)

    def _link_system_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at our config, keeping any existing file aside."""
        SYSTEM_SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        backup = SYSTEM_SLURM_CONF.with_name(f"slurm.conf.before-{os.getpid()}")
        had_conf = SYSTEM_SLURM_CONF.is_symlink() or SYSTEM_SLURM_CONF.exists()
        if had_conf:
            SYSTEM_SLURM_CONF.rename(backup)
        SYSTEM_SLURM_CONF.symlink_to(self.conf_path)

        def restore() -> None:
            if SYSTEM_SLURM_CONF.is_symlink() and SYSTEM_SLURM_CONF.readlink() == self.conf_path:
                SYSTEM_SLURM_CONF.unlink()
            if had_conf:
                backup.rename(SYSTEM_SLURM_CONF)

        self._cleanups.append(restore)

    # -- client side ---------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses that talk to this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf_path)
        env["PATH"] = _sbin_path()
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command against this cluster and capture its output."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the node is idle, i.e. slurmd registered and jobs can start."""

        def node_idle() -> bool:
            self._check_alive()
            result = self.run("sinfo", "--noheader", "--format=%t", check=False, timeout=10)
            return result.returncode == 0 and result.stdout.split() == ["idle"]

        _wait_for(node_idle, timeout, "SLURM node idle", None, self.diagnostics)

    def _check_alive(self) -> None:
        """Fail fast with the logs when a daemon died instead of waiting for a timeout."""
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.diagnostics()}")

    def jobs_seen(self) -> dict[int, str]:
        """Job ids slurmctld accepted, mapped to 'submitted' or 'completed'.

        Read from the slurmctld log because there is no accounting database;
        this covers jobs already purged from squeue.
        """
        log = self.log_dir / "slurmctld.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        jobs = {int(job_id): "submitted" for job_id in _SUBMIT_RE.findall(text)}
        jobs.update({int(job_id): "completed" for job_id in _COMPLETE_RE.findall(text)})
        return jobs

    def job_state(self, job_id: int) -> str:
        """Return the job's state (PENDING, RUNNING, COMPLETED...) while slurmctld knows it."""
        result = self.run("squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={job_id}", check=False)
        return result.stdout.strip() or "UNKNOWN"

    def wait_job(self, job_id: int, timeout: float = 60) -> str:
        """Wait until a job leaves the pending/running states and return its final state."""
        _wait_for(
            lambda: self.job_state(job_id) in FINAL_JOB_STATES,
            timeout,
            f"job {job_id}",
            None,
            self.diagnostics,
        )
        return self.job_state(job_id)

    def cancel(self, job_id: int) -> None:
        """Cancel one job."""
        self.run("scancel", str(job_id))

    def _cancel_all_jobs(self) -> None:
        """Cancel every job and wait for them to end, so no slurmstepd outlives slurmd."""
        self.run("scancel", "--full", f"--partition={PARTITION}", check=False)

        def none_active() -> bool:
            result = self.run(
                "squeue",
                "--noheader",
                "--states=PENDING,RUNNING,COMPLETING,SUSPENDED",
                "--format=%i",
                check=False,
            )
            return result.returncode != 0 or not result.stdout.strip()

        # On timeout, stopping slurmd is still the best we can do.
        with suppress(TimeoutError):
            _wait_for(none_active, 15, "jobs to end", None)

    def diagnostics(self) -> str:
        """Tail of every daemon log, for failure messages."""
        parts = []
        logs = sorted(self.log_dir.glob("*")) if self.log_dir.exists() else []
        if self.munge_dir is not None:
            logs.append(self.munge_dir / "munged.log")
        for path in logs:
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-30:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM one process we started, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` until true; fail early if ``proc`` died, else after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{details()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{details()}")
        time.sleep(0.2)
