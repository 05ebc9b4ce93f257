"""Microseconds per ``update`` of every controller, and its share of a reference-trainer step.

Controllers: every name of ``safecontrol.registry`` with its registered defaults (a controller
registered at run time is timed with no other edit), then SAFE with scale-invariant phases, the
entropy-bonus controller and two PIDs. Each is fed the same seeded stream of host floats
(per-token KL, entropy, reward, as a trainer hands them over once per rollout batch) through the
contract's one ``update`` signature, with the reference trainer's batch shape (``n_steps`` 32
sequences of ``tokens_per_sequence`` 16 tokens); after a warm-up, ``--repeats`` blocks of
``--block`` updates are timed with ``time.perf_counter_ns``; the median and p90 over blocks of the
per-update time are reported. Peers: safecontrol's ``PID`` alone, and the PID of the
``simple-pid`` package with the same gains, setpoint and output limits as SAFE's threshold PID
(Kp 0.3, Ki 0.01, Kd 0.05), both fed the same reward-velocity stream with dt = 1.

The share of a trainer step divides by the measured seconds per PPO iteration of the reference
trainer (``benchmarks/results/trainer_speed.json``, its "ppo" total: the smaller denominator of
the two, so the larger share). One update per rollout batch. Goals: ``SafeController.update``
≤ 20 µs on this machine and < 0.1% of a trainer step. The 1-, 5- and 15-minute load averages at
the start are in the meta: timings on a loaded machine are slower.

    python -m benchmarks.speed.overhead     # writes benchmarks/results/overhead.{json,md}
    python -m benchmarks.speed.overhead --quick --out /tmp/overhead
"""

# Only the standard library, numpy and safecontrol: the file also runs as a script.
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import safecontrol as sc
from safecontrol import registry

COMMAND = "python -m benchmarks.speed.overhead"
RESULTS = Path(__file__).resolve().parents[1] / "results"
SAFE = "safe"
"""The registry name of the controller the goals are about."""
N_STEPS = 32
"""Sequences per rollout batch (the reference trainer's ``batch_size``)."""
TOKENS_PER_SEQUENCE = 16.0
"""Mean response length (the reference trainer's ``max_new_tokens``)."""
GOAL_US = 20.0
GOAL_SHARE = 0.001


@dataclass(frozen=True)
class PIDGains:
    kp: float
    ki: float
    kd: float
    setpoint: float
    limits: tuple[float, float]


THRESHOLD_PID = PIDGains(kp=0.3, ki=0.01, kd=0.05, setpoint=-0.001, limits=(-0.2, 0.3))
"""SAFE's threshold PID: reverse action on the reward velocity (setpoint −v_target), output
limits (τ_lo − τ_base, τ_hi − τ_base) at φ = 1."""

Update = Callable[[float, float, float], Any]


@dataclass(frozen=True)
class Timing:
    """One controller's per-update microseconds over the timed blocks (``overhead.json``'s
    ``controllers`` values; the stability report reads ``safe``'s ``median_us``)."""

    median_us: float
    p90_us: float
    min_us: float
    max_us: float
    share_of_step: float | None
    """median_us over one PPO iteration of the reference trainer (None: not measured)."""


@dataclass(frozen=True)
class Goal:
    goal: float
    measured: float | None
    met: bool


@dataclass(frozen=True)
class Meta:
    command: str
    date: str
    machine: str
    load_average_at_start: list[float]
    """1-, 5- and 15-minute load averages as the timing began."""
    block: int
    repeats: int
    warmup: int
    trainer_step_seconds: float | None
    trainer_step_source: str


@dataclass(frozen=True)
class Overhead:
    """``overhead.json``."""

    meta: Meta
    controllers: dict[str, Timing]
    goals: dict[str, Goal]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Overhead:
        # By hand, not benchmarks.codec: this file also runs as a plain script, without the
        # benchmarks package on the path.
        return cls(
            meta=Meta(**data["meta"]),
            controllers={name: Timing(**row) for name, row in data["controllers"].items()},
            goals={name: Goal(**goal) for name, goal in data["goals"].items()},
        )


def stream(n: int, seed: int = 0) -> list[tuple[float, float, float]]:
    """(kl per token, entropy, batch-mean reward) as host floats, like a trainer's statistics."""
    rng = np.random.default_rng(seed)
    kl = np.abs(rng.normal(0.5, 0.3, n))
    entropy = 3.0 + np.abs(rng.normal(0.0, 1.0, n))
    reward = np.cumsum(rng.normal(0.002, 0.05, n))
    return [(float(k), float(h), float(r)) for k, h, r in zip(kl, entropy, reward, strict=True)]


def controllers() -> dict[str, Callable[[], Update]]:
    """Factories of one ``update(kl, entropy, reward)`` closure per benchmarked controller: every
    registered one (read at call time), then the peers."""

    def contract(controller: Any) -> Update:
        return lambda k, h, r: controller.update(
            kl=k, entropy=h, reward=r, n_steps=N_STEPS, tokens_per_sequence=TOKENS_PER_SEQUENCE
        )

    def registered(name: str) -> Callable[[], Update]:
        return lambda: contract(registry.make(name))

    def our_pid() -> Update:
        p = THRESHOLD_PID
        pid = sc.PID(p.kp, p.ki, p.kd, setpoint=p.setpoint, output_limits=p.limits)
        return lambda k, h, r: pid.update(-r, 1.0)

    def simple_pid() -> Update:
        from simple_pid import PID as SimplePID

        p = THRESHOLD_PID
        pid = SimplePID(
            p.kp, p.ki, p.kd, setpoint=p.setpoint, sample_time=None, output_limits=p.limits
        )
        return lambda k, h, r: pid(-r, dt=1.0)

    factories = {name: registered(name) for name in registry.names()}
    factories.update(
        {
            "safe (scale-invariant phases)": lambda: contract(
                registry.make(SAFE, phase_mode="scale_invariant")
            ),
            "EntropyTargetController": lambda: contract(sc.EntropyTargetController(target=3.5)),
            "safecontrol.PID": our_pid,
            "simple_pid.PID (peer)": simple_pid,
        }
    )
    return factories


def safe_before(revision: str) -> Callable[[], Update]:
    """A factory of ``SafeController.update`` as the package stood at git ``revision``: its
    ``safecontrol/`` extracted to a temporary directory and imported as ``safecontrol_before``
    (every import inside the package is relative), so the two implementations are timed side by
    side, interleaved, in one process."""
    import importlib.util
    import io
    import subprocess
    import tarfile
    import tempfile

    root = Path(__file__).resolve().parents[2]
    archive = subprocess.run(
        ["git", "archive", revision, "safecontrol"], cwd=root, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise ValueError(f"--before {revision!r}: {archive.stderr.decode().strip()}")
    directory = Path(tempfile.mkdtemp(prefix="safecontrol-before-"))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    package = directory / "safecontrol"
    spec = importlib.util.spec_from_file_location(
        "safecontrol_before", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["safecontrol_before"] = module
    spec.loader.exec_module(module)

    def factory() -> Update:
        controller = module.SafeController()
        return lambda k, h, r: controller.update(kl=k, entropy=h, reward=r, n_steps=N_STEPS)

    return factory


def time_updates(
    updates: dict[str, Update],
    data: list[tuple[float, float, float]],
    block: int,
    repeats: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Per-update microseconds of each of ``repeats`` timed blocks, per controller.

    The blocks are interleaved (block i of every controller, then block i + 1): this machine's
    speed drifts by up to 2x over minutes, and interleaving spreads the drift over all
    controllers alike instead of favouring whichever ran in a fast minute."""
    for update in updates.values():
        for k, h, r in data[:warmup]:
            update(k, h, r)
    per_update: dict[str, list[float]] = {name: [] for name in updates}
    clock = time.perf_counter_ns
    for i in range(repeats):
        chunk = data[warmup + i * block : warmup + (i + 1) * block]
        for name, update in updates.items():
            started = clock()
            for k, h, r in chunk:
                update(k, h, r)
            per_update[name].append((clock() - started) / 1000.0 / len(chunk))
    return per_update


def trainer_step_seconds(results_dir: Path) -> tuple[float | None, str]:
    """The reference trainer's seconds per PPO iteration and where they come from."""
    path = results_dir / "trainer_speed.json"
    if not path.is_file():
        return None, f"{path} missing: run python -m benchmarks.speed.trainer_speed"
    speed = json.loads(path.read_text())
    return speed["results"]["ppo"]["total"], f"{path.name}: {speed['meta']['command']}"


def timing(times: list[float], step_seconds: float | None) -> Timing:
    median = statistics.median(times)
    return Timing(
        median_us=median,
        p90_us=float(np.percentile(times, 90)),
        min_us=min(times),
        max_us=max(times),
        share_of_step=None if step_seconds is None else median / (step_seconds * 1e6),
    )


def measure(
    block: int,
    repeats: int,
    warmup: int,
    results_dir: Path,
    before: str | None = None,
    command: str = COMMAND,
) -> Overhead:
    data = stream(warmup + block * repeats)
    step, source = trainer_step_seconds(results_dir)
    factories = controllers()
    if before is not None:
        factories[f"{SAFE} (before: {before})"] = safe_before(before)
    load = list(os.getloadavg())
    timed = time_updates(
        {name: factory() for name, factory in factories.items()}, data, block, repeats, warmup
    )
    rows = {name: timing(times, step) for name, times in timed.items()}
    safe = rows[SAFE]
    share = safe.share_of_step
    return Overhead(
        meta=Meta(
            command=command,
            date=time.strftime("%Y-%m-%d"),
            machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, numpy {np.__version__}",
            load_average_at_start=load,
            block=block,
            repeats=repeats,
            warmup=warmup,
            trainer_step_seconds=step,
            trainer_step_source=source,
        ),
        controllers=rows,
        goals={
            "safe_update_us": Goal(GOAL_US, safe.median_us, safe.median_us <= GOAL_US),
            "safe_share_of_step": Goal(GOAL_SHARE, share, share is not None and share < GOAL_SHARE),
        },
    )


def markdown(result: Overhead) -> str:
    meta = result.meta
    lines = [
        "# Controller overhead",
        "",
        f"`{meta.command}` on {meta.machine} ({meta.date}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in meta.load_average_at_start)}). Median and p90 over "
        f"{meta.repeats} blocks of {meta.block} updates after {meta.warmup} warm-up "
        f"updates. Share of a trainer step: median / {meta.trainer_step_seconds} s per PPO "
        f"iteration ({meta.trainer_step_source}).",
        "",
        "| controller | µs per update (median) | p90 | range over blocks | share of a step |",
        "|---|---|---|---|---|",
    ]
    for name, row in result.controllers.items():
        share = "–" if row.share_of_step is None else f"{100 * row.share_of_step:.4f}%"
        lines.append(
            f"| {name} | {row.median_us:.2f} | {row.p90_us:.2f} | "
            f"{row.min_us:.2f} – {row.max_us:.2f} | {share} |"
        )
    lines += ["", "Goals:", ""]
    for name, goal in result.goals.items():
        verdict = "met" if goal.met else "NOT met"
        lines.append(f"- {name}: goal {goal.goal}, measured {goal.measured} — {verdict}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few tiny blocks (CI smoke test)")
    parser.add_argument("--block", type=int, default=2000, help="updates per timed block")
    parser.add_argument("--repeats", type=int, default=60, help="timed blocks per controller")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--before",
        metavar="REVISION",
        help="also time SafeController.update as it was at this git revision, interleaved",
    )
    parser.add_argument(
        "--render", action="store_true", help="rewrite --out's overhead.md from its json only"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        result = Overhead.from_json(json.loads((out / "overhead.json").read_text()))
        (out / "overhead.md").write_text(markdown(result))
        return 0
    block, repeats, warmup = (50, 3, 20) if args.quick else (args.block, args.repeats, 500)
    for name, value in (("--block", block), ("--repeats", repeats)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    command = COMMAND + (" --quick" if args.quick else "")
    if args.before:
        command += f" --before {args.before}"
    try:
        result = measure(block, repeats, warmup, RESULTS, args.before, command)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(asdict(result), indent=1))
    (out / "overhead.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
