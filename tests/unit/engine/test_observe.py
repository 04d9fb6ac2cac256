"""Engine.observe: the probe's response compared with desired (subset) or inSync (CEL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry

STATES = {"a": {"action": {"plugin": "test.echo"}, "next": "done"}, "done": {"end": "success"}}


async def test_no_probe_means_unknown(engine: Engine, wf: Any) -> None:
    obs = await engine.observe(wf(STATES))
    assert (obs.observed, obs.in_sync, obs.diff, obs.error) == (None, None, [], None)


async def test_desired_subset_in_sync_and_out_of_sync_with_diff(engine: Engine, wf: Any) -> None:
    rows = [{"datname": "app", "owner": "postgres", "oid": 1}]
    probe = {"plugin": "test.probe", "with": {"value": rows}}
    synced = await engine.observe(
        wf(STATES, observe=probe, desired={"value": [{"datname": "app"}]})
    )
    assert synced.in_sync is True and synced.diff == [] and synced.observed["value"] == rows
    drifted = await engine.observe(
        wf(
            STATES,
            observe=probe,
            desired={"value": [{"owner": "${{ inputs.owner }}"}]},
            inputs={"owner": "app_user"},
        )
    )
    assert drifted.in_sync is False
    assert [(d.path, d.desired, d.observed) for d in drifted.diff] == [
        ("value[0].owner", "app_user", "postgres")
    ]


async def test_in_sync_cel_over_observed(engine: Engine, wf: Any) -> None:
    probe = {"plugin": "test.probe", "with": {"value": [1, 2]}}
    w = wf(STATES, observe=probe, inSync="size(observed.value) == inputs.n", inputs={"n": 2})
    assert (await engine.observe(w)).in_sync is True
    assert (await engine.observe(w, inputs={"n": 3})).in_sync is False


async def test_a_failing_probe_is_reported_not_raised(engine: Engine, wf: Any) -> None:
    w = wf(
        STATES,
        observe={"plugin": "test.fail", "with": {"error": "ConnectionFailed"}},
        inSync="true",
    )
    obs = await engine.observe(w)
    assert obs.in_sync is None and obs.error is not None and obs.error.name == "ConnectionFailed"


async def test_observed_value_is_available_to_the_run(engine: Engine, wf: Any) -> None:
    w = wf(
        {
            "a": {"transitions": [{"to": "done", "when": "observed.value == 7"}, {"to": "bad"}]},
            "done": {"end": "success"},
            "bad": {"end": "failure"},
        },
        observe={"plugin": "test.probe", "with": {"value": 7}},
        inSync="false",
    )
    obs = await engine.observe(w)
    assert (await engine.run(w, observed=obs.observed)).path == ["a", "done"]


async def test_observed_values_and_diffs_are_redacted(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECONCILER_TEST_DSN", "postgres://admin:pw-Xy7@db")
    grants = Grants.local(tmp_path, allow_env=["RECONCILER_TEST_DSN"])
    engine = Engine(registry, journal=journal, workdir=tmp_path, grants=grants)
    w = wf(
        STATES,
        secrets={"dsn": "env:RECONCILER_TEST_DSN"},
        observe={"plugin": "test.probe", "with": {"value": "${{ secrets.dsn }}"}},
        desired={"value": "something else"},
    )
    obs = await engine.observe(w)
    assert obs.in_sync is False
    assert obs.observed == {"changed": False, "value": "***"}
    assert obs.diff[0].observed == "***"
