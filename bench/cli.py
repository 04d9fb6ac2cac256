"""CLI benchmark: how long a one-shot ``reconciler`` command takes, process start included.

Every command is a new Python process, so its start-up (imports above all) is most of what a
short command costs. Four figures, each the wall time of a fresh process as a user's shell would
start it (the console script next to this interpreter), printed with its target and PASS/MISS,
beside ``python -c pass`` (the interpreter alone) measured in the same rounds:

- ``reconciler --help``: target under 0.3 s;
- ``reconciler validate`` of one small workflow file: target under 0.3 s;
- ``reconciler apply`` over ``--workflows`` (100) single-file workflows with nothing to do (every
  probe in sync after a first, uncounted apply): target under 0.5 s;
- ``reconciler --version``: no target, the floor of a command that does nothing.

Peers on the machine (``ansible-playbook --version``, ``argocd version --client``, ``flux
--version``) are measured in the same rounds when installed, and skipped otherwise. The rounds
are interleaved (one run of every command per round) so that other load on the machine falls on
all of them alike; each figure is the median of ``--repeat`` rounds after one uncounted warm-up
round, with the fastest round beside it, and the median CPU time (user + system) of the process,
which other load on a shared machine changes far less than the wall time (the load average is
printed under the table). The verdict compares the median wall time with the target.

Every process runs with its bytecode cached, as after ``pip install``: the warm-up round writes
the cache (``PYTHONPYCACHEPREFIX``, in the benchmark's temporary directory, so the checkout is
left as it was) even where ``PYTHONDONTWRITEBYTECODE`` is set, which would otherwise have an
editable install compile every module of reconciler at every start and time the compiler.

Run ``python bench/cli.py`` (about a minute); ``--repeat`` and ``--workflows`` make it smaller,
as the smoke test in ``tests/integration/bench/test_bench_cli_smoke.py`` does. Figures are
recorded in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  inputs: {{path: "{target}", content: "{name}\\n"}}
  observe:
    plugin: file.read
    with: {{path: "${{{{ inputs.path }}}}", missingOk: true}}
  desired: {{content: "{name}\\n"}}
  start: write
  states:
    write:
      action:
        plugin: file.write
        with: {{path: "${{{{ inputs.path }}}}", content: "${{{{ inputs.content }}}}"}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""

PEERS = {
    "ansible-playbook --version": ["ansible-playbook", "--version"],
    "argocd version --client": ["argocd", "version", "--client"],
    "flux --version": ["flux", "--version"],
}


@dataclass
class Subject:
    """One command line timed in every round, with its target (seconds) when it has one."""

    label: str
    argv: list[str]
    env: dict[str, str]
    target: float | None = None
    cwd: Path | None = None

    def once(self) -> tuple[float, float]:
        """One run: its wall time and its CPU time (user + system), in seconds."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{self.label} failed ({done.returncode}): {done.stderr.strip()}")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return elapsed, cpu


def reconciler_command() -> str:
    """The ``reconciler`` console script installed next to this interpreter."""
    found = shutil.which("reconciler", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("the reconciler console script is not installed next to this Python")
    return found


def environment(root: Path) -> dict[str, str]:
    """This environment, with bytecode written to (and read from) a cache under ``root``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return env


def workspace(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` single-file workflows in ``root/workflows`` writing under ``root/out``, and one
    more file alone for ``validate``."""
    workflows = root / "workflows"
    workflows.mkdir()
    for i in range(count):
        name = f"bench-{i:04d}"
        (workflows / f"{name}.yaml").write_text(
            WORKFLOW.format(name=name, target=root / "out" / name)
        )
    single = root / "one.yaml"
    single.write_text(WORKFLOW.format(name="one", target=root / "out" / "one"))
    return workflows, single


def subjects(root: Path, *, workflows: int) -> list[Subject]:
    cli = reconciler_command()
    directory, single = workspace(root, workflows)
    env = environment(root)
    first = subprocess.run(
        [cli, "apply", str(directory)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if first.returncode != 0:
        raise SystemExit(f"the first apply failed: {first.stdout}{first.stderr}")
    found = [
        Subject("python -c pass", [sys.executable, "-c", "pass"], env),
        Subject("reconciler --version", [cli, "--version"], env),
        Subject("reconciler --help", [cli, "--help"], env, 0.3),
        Subject("reconciler validate (one file)", [cli, "validate", str(single)], env, 0.3),
        Subject(
            f"reconciler apply ({workflows} workflows, nothing to do)",
            [cli, "apply", str(directory)],
            env,
            0.5,
            root,
        ),
    ]
    for label, argv in PEERS.items():
        if shutil.which(argv[0]):
            found.append(Subject(label, argv, env))
    return found


def measure(found: list[Subject], *, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Every subject's (wall, CPU) times over ``repeat`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[tuple[float, float]]] = {s.label: [] for s in found}
    for round_ in range(repeat + 1):
        for subject in found:
            measured = subject.once()
            if round_:
                times[subject.label].append(measured)
    return times


def report(found: list[Subject], times: dict[str, list[tuple[float, float]]]) -> int:
    """Print the table; 0 when every target is met, 1 otherwise."""
    print(f"{'command':<52}  {'median':>8}  {'fastest':>8}  {'cpu':>8}  {'target':>8}  verdict")
    print("-" * 102)
    missed = False
    for subject in found:
        walls = [wall for wall, _ in times[subject.label]]
        median, fastest = statistics.median(walls), min(walls)
        cpu = statistics.median(cpu for _, cpu in times[subject.label])
        if subject.target is None:
            target, verdict = "-", "info"
        else:
            target = f"{subject.target:.2f} s"
            verdict = "PASS" if median < subject.target else "MISS"
            missed = missed or verdict == "MISS"
        print(
            f"{subject.label:<52}  {median:>6.3f} s  {fastest:>6.3f} s  {cpu:>6.3f} s  "
            f"{target:>8}  {verdict}"
        )
    absent = [label for label, argv in PEERS.items() if not shutil.which(argv[0])]
    if absent:
        print(f"\nnot installed here, not measured: {', '.join(absent)}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load}")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds counted (after a warm-up)")
    parser.add_argument("--workflows", type=int, default=100, help="workflows for apply")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        found = subjects(Path(tmp), workflows=args.workflows)
        return report(found, measure(found, repeat=args.repeat))


if __name__ == "__main__":
    sys.exit(main())
