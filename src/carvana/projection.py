"""What each stage of the workflow costs at the competition's counts, beside what a Slurm job gets.

A stage's cost is measured on a sample (``make scale``, the package benchmarks/scale) as a fixed part and
a part per item (an image, a row), each on one core, with its peak memory; this module turns
those figures into one job's wall time at the competition's counts on N cores, and holds them
against the runtime, memory and CPUs that ``profiles/slurm`` gives the job's rule. Stages that
split their items over the job's cores (``parallel``) are assumed to scale perfectly: the
projection is the measured work over the cores, and the profile's margin covers the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from carvana.competition import COMPETITION_TEST_IMAGES, COMPETITION_TRAIN_IMAGES

CORES = (2, 8, 16, 32)  # the machines the table projects for


@dataclass(frozen=True)
class Counts:
    """The work of one run of the competition config."""

    folds: int
    models: int
    shards: int
    train_images: int = COMPETITION_TRAIN_IMAGES
    test_images: int = COMPETITION_TEST_IMAGES

    @property
    def held_out(self) -> float:
        """Training images a fold holds out (on average)."""
        return self.train_images / self.folds

    @classmethod
    def of_config(cls, config: Mapping[str, Any]) -> Counts:
        return cls(
            folds=int(config["folds"]["n_folds"]),
            models=len(config["models"]),
            shards=int(config["predict"]["shards"]),
        )


@dataclass(frozen=True)
class Stage:
    """One rule's jobs at the competition's counts: ``jobs`` of them, each ``fixed_s`` seconds
    plus ``per_item_s`` for each of its ``items`` (one core's seconds), split over the job's cores
    where ``parallel``; ``memory_mib`` is one job's projected peak (None: not measured here).
    ``source`` says where the figures come from (measured here, gpu_check, assumed)."""

    rule: str
    jobs: int
    items: float
    per_item_s: float
    fixed_s: float
    memory_mib: float | None
    source: str
    parallel: bool = False
    note: str = ""

    def seconds(self, cores: int) -> float:
        """One job's wall time on ``cores`` cores."""
        share = max(1, cores) if self.parallel else 1
        return self.fixed_s + self.per_item_s * self.items / share


@dataclass(frozen=True)
class Allowance:
    """What a Slurm job of a rule gets: minutes, MB of memory and CPUs."""

    runtime_min: float
    mem_mb: float
    cpus: int
    threads: int | None = None


@dataclass(frozen=True)
class SlurmProfile:
    """profiles/slurm/config.yaml: the default resources and each rule's own."""

    default: Allowance
    rules: dict[str, Allowance] = field(default_factory=dict)
    local: tuple[str, ...] = ()

    def of(self, rule: str) -> Allowance:
        return self.rules.get(rule, self.default)


def read_profile(path: Path) -> SlurmProfile:
    """The resources of a Snakemake profile for snakemake-executor-plugin-slurm."""
    profile = yaml.safe_load(path.read_text()) or {}
    default_resources = profile.get("default-resources") or {}
    threads = profile.get("set-threads") or {}

    def allowance(given: Mapping[str, Any], rule: str | None) -> Allowance:
        merged = {**default_resources, **given}
        return Allowance(
            float(merged.get("runtime", 0)),
            float(merged.get("mem_mb", 0)),
            int(merged.get("cpus_per_task", 1)),
            int(threads[rule]) if rule in threads else None,
        )

    rules = {
        rule: allowance(given or {}, rule) for rule, given in (profile.get("set-resources") or {}).items()
    }
    return SlurmProfile(allowance({}, None), rules)


@dataclass(frozen=True)
class Verdict:
    """A stage against its rule's Slurm allowance: the job's projected seconds on the job's CPUs,
    and what exceeds the allowance (empty: it fits)."""

    stage: Stage
    allowance: Allowance
    seconds: float
    problems: list[str]


def judge(stages: list[Stage], profile: SlurmProfile) -> list[Verdict]:
    """Each stage's projection on the CPUs its Slurm job gets, against that job's runtime and
    memory."""
    verdicts = []
    for stage in stages:
        allowance = profile.of(stage.rule)
        cores = allowance.threads or allowance.cpus
        seconds = stage.seconds(cores)
        problems = []
        if seconds > allowance.runtime_min * 60:
            problems.append(
                f"{stage.rule}: one job projected at {hours(seconds)} on {cores} CPUs, over its Slurm "
                f"runtime of {allowance.runtime_min:g} min: raise set-resources {stage.rule}: runtime"
            )
        if stage.memory_mib is not None and stage.memory_mib > allowance.mem_mb:
            problems.append(
                f"{stage.rule}: one job projected at {stage.memory_mib:,.0f} MiB, over its Slurm mem_mb "
                f"of {allowance.mem_mb:,.0f}: raise set-resources {stage.rule}: mem_mb"
            )
        verdicts.append(Verdict(stage, allowance, seconds, problems))
    return verdicts


def hours(seconds: float) -> str:
    """A duration as a person reads it: 42 s, 13.5 min, 6.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(byte_count: float) -> str:
    """A size in MiB or GiB."""
    if byte_count < 2**30:
        return f"{byte_count / 2**20:,.0f} MiB"
    return f"{byte_count / 2**30:,.1f} GiB"


def table(verdicts: list[Verdict], cores: tuple[int, ...] = CORES) -> list[str]:
    """The projection as aligned lines of text: one row per stage."""
    slurm = "Slurm: runtime, mem, cpus"
    head = ["stage", "jobs", *(f"{n} cores" for n in cores), "peak memory", slurm, "from"]
    rows = [head]
    for verdict in verdicts:
        stage, allowance = verdict.stage, verdict.allowance
        memory = f"{stage.memory_mib:,.0f} MiB" if stage.memory_mib is not None else "-"
        slurm = f"{hours(allowance.runtime_min * 60)}, {allowance.mem_mb / 1000:g} GB, {allowance.cpus}"
        mark = " OVER" if verdict.problems else ""
        rows.append(
            [
                stage.rule,
                str(stage.jobs),
                *(hours(stage.seconds(n)) for n in cores),
                memory,
                slurm + mark,
                stage.source + (f" ({stage.note})" if stage.note else ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    ]


def ceil_to(value: float, step: float) -> float:
    """``value`` rounded up to a multiple of ``step``."""
    return math.ceil(value / step) * step


@dataclass(frozen=True)
class NetworkCost:
    """One model's figures for the GPU stages: its epochs, and seconds per image on one GPU of a
    training step, of a forward of the whole image (validation, OOF, prediction: one view)."""

    epochs: int
    train_s: float
    forward_s: float


def gpu_stages(
    counts: Counts, networks: Mapping[str, NetworkCost], views: int, source: str, writers: Mapping[str, float]
) -> list[Stage]:
    """The GPU rules' jobs at the competition's counts, each job on one GPU: a training job (the
    slowest model's: every epoch's training and held-out images), an OOF job (its held-out
    images with the TTA's ``views`` and once alone), a prediction shard (its images through
    every model of every fold, each with its views) and a pseudo labels shard (through one
    fold's networks). A job takes at least as long as its writer thread (``writers``: one
    core's seconds per image: oof, predict, pseudo_labels) needs."""
    held, trained = counts.held_out, counts.train_images - counts.held_out
    per_shard = counts.test_images / counts.shards
    training = {
        name: cost.epochs * (trained * cost.train_s + held * cost.forward_s)
        for name, cost in networks.items()
    }
    slowest = max(training, key=lambda name: training[name])
    oof = max(held * (views + 1) * cost.forward_s for cost in networks.values())
    ensemble = views * sum(cost.forward_s for cost in networks.values())  # one fold's networks
    predict = max(per_shard * counts.folds * ensemble, per_shard * writers["predict"])
    labels = max(per_shard * ensemble, per_shard * writers["pseudo_labels"])
    jobs = counts.folds * counts.models
    return [
        Stage("train", jobs, 0, 0.0, training[slowest], None, source, note=f"{slowest}, the slowest"),
        Stage("oof", jobs, 0, 0.0, max(oof, held * writers["oof"]), None, source),
        Stage("predict", counts.shards, 0, 0.0, predict, None, source),
        Stage("pseudo_labels", counts.folds * counts.shards, 0, 0.0, labels, None, source, note="a round"),
    ]
