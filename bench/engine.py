"""Engine benchmark: state transitions per second against two Python state-machine libraries,
and ``foreach`` throughput against plain ``asyncio.gather`` with a semaphore.

Exercises the engine (``reconciler/engine/runner.py`` with ``machine.py``, ``actions.py``, ``foreach.py`` and ``journal.py``), the way
``reconciler apply`` drives it: one :class:`~reconciler.engine.runner.Engine`, a
:class:`~reconciler.engine.journal.MemoryJournal`, logging configured at the one-shot default
(``warning``) by :func:`reconciler.telemetry.logging.configure_logging`.

Two measurements, each timed two ways in this one process:

* **burst** — each subject starts on a collected heap (``gc.collect()`` before it) and makes one
  run (or walk); the figure is the median of ``--repeat`` repetitions. What one run costs when
  nothing else is going on.
* **steady** — each subject loops, as a user's process does, until it has made ``--steady``
  transitions (100,000 by default) or foreach items: the garbage collector on, the heap never
  collected by hand, one engine and one journal kept for the whole loop (so the journal grows
  as it does in a long-lived process), the whole loop timed once. What the engine holds up to
  with the collector's scans counted.

The subjects:

* **linear machine** — ``--states`` states, each with only a default transition to the next, the
  last one ``end: success``. Our engine journals every transition (``state_entered`` and
  ``transition`` entries with the redacted outputs) and runs the whole run life cycle
  (``run_started`` … ``run_finished``); the peers, ``transitions`` and ``python-statemachine``,
  walk the same states with one trigger per step and record nothing.
* **foreach** — one state with ``--items`` items of a no-op plugin at concurrency 100, against a
  baseline that calls the same no-op coroutine through ``asyncio.gather`` and a
  ``Semaphore(100)``. Every item is a validated request, a plugin call, a validated response and
  a journaled action entry in the engine; the baseline does only the call.

Run ``python bench/engine.py [--states N] [--items M] [--repeat R] [--steady T]``; see
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.config.models import Workflow
from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.plugin import ActionContext, Plugin, PluginRegistry, Request, Response, RunInfo
from reconciler.telemetry.logging import configure_logging

FOREACH_CONCURRENCY = 100


class NoopRequest(Request):
    """The no-op plugin takes nothing."""


class Noop(Plugin[NoopRequest, Response]):
    """Does nothing and reports no change (the benchmark's action)."""

    Request = NoopRequest
    Response = Response

    async def run(self, request: NoopRequest, context: ActionContext) -> Response:
        return Response()


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    bench: str
    subject: str
    rate: float
    unit: str
    ratio: float | None = None
    note: str = ""


# -- workflows ----------------------------------------------------------------------------------


def linear_workflow(states: int) -> Workflow:
    """``states`` states ``s0 … s{n-1}``, each defaulting to the next; the last ends in success."""
    body: dict[str, Any] = {f"s{i}": {"transitions": [{"to": f"s{i + 1}"}]} for i in range(states)}
    body[f"s{states - 1}"] = {"end": "success"}
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "bench-linear"},
            "spec": {"start": "s0", "states": body},
        }
    )


def foreach_workflow(items: int) -> Workflow:
    """One ``foreach`` state of ``items`` no-op actions at concurrency 100, then success."""
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "bench-foreach"},
            "spec": {
                "start": "fan",
                "states": {
                    "fan": {
                        "foreach": {
                            "items": list(range(items)),
                            "concurrency": FOREACH_CONCURRENCY,
                            "do": [{"plugin": "bench.noop"}],
                        },
                        "next": "done",
                    },
                    "done": {"end": "success"},
                },
            },
        }
    )


def registry() -> PluginRegistry:
    return PluginRegistry({"bench.noop": Noop})


# -- subjects -----------------------------------------------------------------------------------


class BenchmarkFailed(RuntimeError):
    """A subject did not do what it was asked (the figures would be meaningless)."""


async def engine_linear(workflow: Workflow, states: int) -> float:
    """Seconds for one engine run of the linear machine (fresh engine and journal)."""
    journal = MemoryJournal()
    engine = Engine(registry(), journal=journal)
    started = time.process_time()
    result = await engine.run(workflow, reason="bench")
    elapsed = time.process_time() - started
    if not result.ok or len(result.path) != states:
        raise BenchmarkFailed(f"engine run ended {result.run.status} after {len(result.path)}")
    transitions = sum(1 for e in await journal.entries(result.run.id) if e.kind == "transition")
    if transitions != states - 1:
        raise BenchmarkFailed(f"engine journaled {transitions} transitions, not {states - 1}")
    return elapsed


def _transitions_machine(states: int, *, cyclic: bool) -> tuple[Any, Callable[[], bool]]:
    """A ``transitions`` model over ``s0 … s{n-1}`` with one ``step`` trigger per state (and,
    when ``cyclic``, one from the last state back to the first), and its ``step``."""
    from transitions import Machine

    class Model:
        state: str

    model = Model()
    names = [f"s{i}" for i in range(states)]
    machine = Machine(model=model, states=names, initial=names[0], auto_transitions=False)
    for src, dst in itertools.pairwise(names + names[:1] if cyclic else names):
        machine.add_transition("step", src, dst)
    step: Callable[[], bool] = model.step  # type: ignore[attr-defined]
    return model, step


def transitions_linear(states: int) -> float:
    """Seconds for ``transitions`` to walk the machine with one ``step`` trigger per state."""
    model, step = _transitions_machine(states, cyclic=False)
    names = [f"s{i}" for i in range(states)]
    started = time.process_time()
    for _ in range(states - 1):
        step()
    elapsed = time.process_time() - started
    if model.state != names[-1]:
        raise BenchmarkFailed(f"transitions stopped in {model.state}")
    return elapsed


def _statemachine(states: int, *, cyclic: bool) -> Any:
    """A ``python-statemachine`` machine over ``s0 … s{n-1}`` with one ``step`` event over every
    state pair (and, when ``cyclic``, from the last state back to the first, which then is not
    final)."""
    from statemachine import State, StateMachine

    last = states - 1
    nodes = [
        State(f"s{i}", initial=i == 0, final=i == last and not cyclic, value=f"s{i}")
        for i in range(states)
    ]
    step = nodes[0].to(nodes[1])
    for src, dst in itertools.pairwise(nodes[1:] + nodes[:1] if cyclic else nodes[1:]):
        step |= src.to(dst)
    attrs: dict[str, Any] = {f"s{i}": node for i, node in enumerate(nodes)}
    attrs["step"] = step
    machine_cls = type("Cyclic" if cyclic else "Linear", (StateMachine,), attrs)
    return machine_cls()


def statemachine_linear(states: int) -> float:
    """Seconds for ``python-statemachine`` to walk the machine with one ``step`` event a state."""
    machine = _statemachine(states, cyclic=False)
    send = machine.send
    started = time.process_time()
    for _ in range(states - 1):
        send("step")
    elapsed = time.process_time() - started
    final = machine.current_state_value
    if final != f"s{states - 1}":
        raise BenchmarkFailed(f"python-statemachine stopped in {final}")
    return elapsed


async def engine_foreach(workflow: Workflow, items: int) -> float:
    journal = MemoryJournal()
    engine = Engine(registry(), journal=journal)
    started = time.process_time()
    result = await engine.run(workflow, reason="bench")
    elapsed = time.process_time() - started
    done = result.outputs.get("fan", [])
    if not result.ok or len(done) != items or not all(r["ok"] for r in done):
        raise BenchmarkFailed(f"engine foreach ended {result.run.status}")
    return elapsed


async def gather_foreach(items: int) -> float:
    """The baseline: the same no-op coroutine through ``gather`` under a ``Semaphore(100)``."""
    plugin = Noop()
    request = NoopRequest()
    context = ActionContext(
        run=RunInfo(id="bench", workflow="bench"),
        idempotency_key="bench",
        logger=structlog.get_logger("bench"),
    )
    semaphore = asyncio.Semaphore(FOREACH_CONCURRENCY)

    async def one() -> Response:
        async with semaphore:
            return await plugin.run(request, context)

    started = time.process_time()
    results = await asyncio.gather(*(one() for _ in range(items)))
    elapsed = time.process_time() - started
    if len(results) != items:
        raise BenchmarkFailed("gather lost items")
    return elapsed


# -- steady state: loops as users run them ------------------------------------------------------


async def engine_linear_loop(workflow: Workflow, states: int, total: int) -> tuple[float, int]:
    """Seconds for one engine and one journal to run the loaded linear machine back to back until
    ``total`` transitions are made (whole runs: the count may pass ``total``), and that count."""
    journal = MemoryJournal()
    engine = Engine(registry(), journal=journal)
    runs = -(-total // (states - 1))
    started = time.process_time()
    for _ in range(runs):
        result = await engine.run(workflow, reason="bench")
        if not result.ok:
            raise BenchmarkFailed(f"engine run ended {result.run.status}")
    elapsed = time.process_time() - started
    made = 0
    for run_id in journal.runs:
        made += sum(1 for e in await journal.entries(run_id) if e.kind == "transition")
    if made != runs * (states - 1):
        raise BenchmarkFailed(f"engine journaled {made} transitions, not {runs * (states - 1)}")
    return elapsed, made


def transitions_loop(states: int, total: int) -> float:
    """Seconds for ``transitions`` to make ``total`` steps round a cycle of ``states`` states."""
    model, step = _transitions_machine(states, cyclic=True)
    started = time.process_time()
    for _ in range(total):
        step()
    elapsed = time.process_time() - started
    if model.state != f"s{total % states}":
        raise BenchmarkFailed(f"transitions stopped in {model.state}")
    return elapsed


def statemachine_loop(states: int, total: int) -> float:
    """Seconds for ``python-statemachine`` to make ``total`` steps round a cycle of ``states``."""
    machine = _statemachine(states, cyclic=True)
    send = machine.send
    started = time.process_time()
    for _ in range(total):
        send("step")
    elapsed = time.process_time() - started
    if machine.current_state_value != f"s{total % states}":
        raise BenchmarkFailed(f"python-statemachine stopped in {machine.current_state_value}")
    return elapsed


async def engine_foreach_loop(workflow: Workflow, items: int, rounds: int) -> float:
    """Seconds for one engine and one journal to run the foreach workflow ``rounds`` times."""
    journal = MemoryJournal()
    engine = Engine(registry(), journal=journal)
    started = time.process_time()
    for _ in range(rounds):
        result = await engine.run(workflow, reason="bench")
        if not result.ok or len(result.outputs.get("fan", [])) != items:
            raise BenchmarkFailed(f"engine foreach ended {result.run.status}")
    return time.process_time() - started


async def gather_loop(items: int, rounds: int) -> float:
    """Seconds for the gather baseline to run ``rounds`` rounds of ``items`` calls."""
    elapsed = 0.0
    for _ in range(rounds):
        elapsed += await gather_foreach(items)
    return elapsed


async def measure_steady(*, states: int, items: int, total: int) -> list[Row]:
    """The steady-state rows: each subject's loop of ``total`` transitions (or foreach items),
    timed once, the collector on and never run by hand."""
    linear = linear_workflow(states)
    fan = foreach_workflow(items)
    ours, made = await engine_linear_loop(linear, states, total)
    peer_tr = transitions_loop(states, total)
    peer_psm = statemachine_loop(states, total)
    rounds = -(-total // items)
    fe = await engine_foreach_loop(fan, items, rounds)
    base = await gather_loop(items, rounds)
    rates = {"ours": made / ours, "tr": total / peer_tr, "psm": total / peer_psm}
    faster = max(rates["tr"], rates["psm"])
    fe_rate, base_rate = rounds * items / fe, rounds * items / base
    machine = f"steady: linear machine, {states} states, loop of {total:,} transitions"
    fan_name = f"steady: foreach, {items} items, loop of {rounds} runs"
    return [
        Row(
            machine,
            "reconciler engine",
            rates["ours"],
            "transitions/s",
            rates["ours"] / faster,
            f"{made:,} transitions in {made // (states - 1)} runs, journals all",
        ),
        Row(machine, "transitions", rates["tr"], "transitions/s", rates["tr"] / faster),
        Row(machine, "python-statemachine", rates["psm"], "transitions/s", rates["psm"] / faster),
        Row(
            fan_name,
            "reconciler engine",
            fe_rate,
            "items/s",
            fe_rate / base_rate,
            f"{rounds} runs, journals all",
        ),
        Row(fan_name, "asyncio.gather+Semaphore", base_rate, "items/s", 1.0),
    ]


# -- driver -------------------------------------------------------------------------------------


def _median_rate(count: int, seconds: Sequence[float]) -> float:
    return count / statistics.median(seconds)


async def measure(*, states: int, items: int, repeat: int, steady: int = 0) -> list[Row]:
    """Run every subject ``repeat`` times (interleaved) and return the table rows: the steady
    loops of ``steady`` transitions first (none when 0), right after the warm-up, before any
    collection by hand, then the burst measurements."""
    if states < 2:
        raise ValueError("--states must be at least 2")
    if items < 1 or repeat < 1:
        raise ValueError("--items and --repeat must be at least 1")
    if steady < 0:
        raise ValueError("--steady cannot be negative")
    linear = linear_workflow(states)
    fan = foreach_workflow(items)
    keys = ("engine", "cold", "tr", "psm", "fe", "gather")
    times: dict[str, list[float]] = {k: [] for k in keys}
    # one warm-up round (imports, caches) that is not counted
    await engine_linear(linear, states)
    transitions_linear(states)
    statemachine_linear(states)
    await engine_foreach(fan, items)
    await gather_foreach(items)
    rows = await measure_steady(states=states, items=items, total=steady) if steady else []
    for _ in range(repeat):
        # each subject starts on a collected heap, so none pays for another's garbage
        gc.collect()
        times["engine"].append(await engine_linear(linear, states))
        fresh = linear_workflow(states)  # as after a reload: nothing learnt about it yet
        gc.collect()
        times["cold"].append(await engine_linear(fresh, states))
        gc.collect()
        times["tr"].append(transitions_linear(states))
        gc.collect()
        times["psm"].append(statemachine_linear(states))
        gc.collect()
        times["fe"].append(await engine_foreach(fan, items))
        gc.collect()
        times["gather"].append(await gather_foreach(items))
    steps = states - 1
    ours = _median_rate(steps, times["engine"])
    cold = _median_rate(steps, times["cold"])
    peer_tr = _median_rate(steps, times["tr"])
    peer_psm = _median_rate(steps, times["psm"])
    faster = max(peer_tr, peer_psm)
    fe = _median_rate(items, times["fe"])
    base = _median_rate(items, times["gather"])
    machine = f"burst: linear machine, {states} states"
    fan_name = f"burst: foreach, {items} items, concurrency {FOREACH_CONCURRENCY}"
    return [
        *rows,
        Row(machine, "reconciler engine", ours, "transitions/s", ours / faster, "journals all"),
        Row(
            machine,
            "reconciler engine, first run",
            cold,
            "transitions/s",
            cold / faster,
            "of a just-loaded Workflow",
        ),
        Row(machine, "transitions", peer_tr, "transitions/s", peer_tr / faster),
        Row(machine, "python-statemachine", peer_psm, "transitions/s", peer_psm / faster),
        Row(fan_name, "reconciler engine", fe, "items/s", fe / base, "journals all"),
        Row(fan_name, "asyncio.gather+Semaphore", base, "items/s", 1.0),
    ]


def _peer_versions() -> str:
    from importlib.metadata import version

    return (
        f"transitions {version('transitions')}, "
        f"python-statemachine {version('python-statemachine')}"
    )


def render_table(
    rows: Sequence[Row], *, states: int, items: int, repeat: int, steady: int = 0
) -> str:
    """The printed report: configuration, then one line per subject."""
    lines = [
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        f"peers: {_peer_versions()}",
        f"config: --states {states} --items {items} --repeat {repeat} --steady {steady} "
        "(CPU time of this process, so other load on the machine skews little; logging at "
        "'warning', the one-shot default)",
        "timing: 'steady' rows time one loop per subject of --steady transitions (or foreach "
        "items: whole runs of --items), the garbage collector on and never run by hand, one "
        "engine and one journal for the whole loop, as a long-lived process runs it; 'burst' "
        "rows time one run per subject on a heap collected just before it, median of --repeat",
        "note: the reconciler engine journals every transition to a MemoryJournal (with the "
        "redacted outputs) and every action; the peers record nothing",
        "note: 'reconciler engine' re-runs one loaded Workflow (as drift checks and retries do); "
        "'first run' runs a Workflow object that was just loaded, so the engine still has to sort "
        "each state's transitions on its first visit",
        "",
    ]
    header = ("bench", "subject", "rate", "unit", "ratio", "note")
    body = [
        (
            r.bench,
            r.subject,
            f"{r.rate:,.0f}",
            r.unit,
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines.append(fmt(header))
    lines.append(fmt(["-" * w for w in widths]))
    lines.extend(fmt(row) for row in body)
    lines.append("")
    lines.append(
        "ratio: transitions/s against the faster peer of the same block; foreach items/s "
        "against the gather baseline of the same block"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--states", type=int, default=1000, help="states of the linear machine")
    parser.add_argument("--items", type=int, default=10_000, help="items of the foreach state")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median is reported)")
    parser.add_argument(
        "--steady",
        type=int,
        default=100_000,
        help="transitions (and foreach items) of each steady-state loop; 0 skips them",
    )
    args = parser.parse_args(argv)
    if args.states < 2:
        parser.error("--states must be at least 2 (a machine needs a transition)")
    if args.items < 1 or args.repeat < 1:
        parser.error("--items and --repeat must be at least 1")
    if args.steady < 0:
        parser.error("--steady cannot be negative")
    configure_logging("warning", json_lines=True)
    rows = asyncio.run(
        measure(states=args.states, items=args.items, repeat=args.repeat, steady=args.steady)
    )
    print(
        render_table(
            rows, states=args.states, items=args.items, repeat=args.repeat, steady=args.steady
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
