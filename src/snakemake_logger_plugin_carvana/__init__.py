"""Snakemake logger plugin ``carvana``: on a cluster, each finished job's line on the console.

Run locally, every job prints its last line itself (``carvana logged``), and Snakemake passes it to
the console. A cluster job's standard output goes to its Slurm output file instead, so the
profiles that send jobs elsewhere (``profiles/slurm``) add ``logger: [carvana]``: this handler
remembers each job's log from Snakemake's job record and, when Snakemake sees the job finished,
prints the log's last line, the same line a local run shows. Jobs that Snakemake runs itself
(local rules) print their own. Snakemake's usual console output is left as it is: this handler
only adds lines.
"""

from __future__ import annotations

import sys
from logging import LogRecord
from pathlib import Path

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from carvana.job_log import summary


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        self.logs: dict[int, Path] = {}  # Snakemake's job id -> the job's log, for remote jobs

    def emit(self, record: LogRecord) -> None:
        fields = record.__dict__  # Snakemake's ``extra``: the event and its data
        event = fields.get("event")
        if event == LogEvent.JOB_INFO:
            logs = fields.get("log") or []
            if logs and not fields.get("local", False):
                self.logs[int(fields["jobid"])] = Path(str(logs[0]).split(" (")[0])
        elif event == LogEvent.JOB_FINISHED:
            log = self.logs.pop(int(fields["job_id"]), None)
            line = summary(log) if log is not None else ""
            if line:
                print(line, file=sys.stdout, flush=True)

    @property
    def writes_to_stream(self) -> bool:
        return False  # Snakemake keeps its own console handler; this one adds lines beside it

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # every record reaches emit, which picks the two events it needs

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
