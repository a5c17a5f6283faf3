"""What every script of the workflow shares: the log, and the one-line error naming the scan.
The work itself is the library's (tomotiff.jobs), so a job computes what the commands compute.

A user error (``TomotiffError``) becomes one line naming the scan, in the job's log and on
stderr, and the job exits with code 1; any other exception is a bug and keeps its traceback.
"""

import os
import sys
import traceback
from collections.abc import Callable


def run(snakemake, job: Callable) -> None:
    """Run ``job(jobs, say)`` (``jobs``: the module tomotiff.jobs; ``say`` writes to the job's log)."""
    from tomotiff.entry import limit_blas_threads

    limit_blas_threads()  # before numpy loads, as in the commands
    from tomotiff import jobs
    from tomotiff.errors import TomotiffError

    scan = snakemake.wildcards.get("scan") or snakemake.wildcards.get("name") or "?"
    os.makedirs(os.path.dirname(os.path.abspath(snakemake.log[0])), exist_ok=True)
    with open(snakemake.log[0], "w") as log:

        def say(text: str) -> None:
            print(text, file=log, flush=True)

        if os.environ.get("SLURM_JOB_ID"):  # first, so a log shows which allocation ran the job
            say(f"SLURM job {os.environ['SLURM_JOB_ID']} on {os.uname().nodename}")
        try:
            job(jobs, say)
        except TomotiffError as exc:
            message = f"scan {scan}: {jobs.in_config_terms(str(exc))}"
            say(message)
            print(message, file=sys.stderr, flush=True)
            sys.exit(1)
        except BaseException:
            traceback.print_exc(file=log)
            raise
