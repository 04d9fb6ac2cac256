"""select_target: the one split of a snapshot into valid, invalid and removed workflows."""

from __future__ import annotations

from reconciler.config.loader import load_text
from reconciler.config.snapshot import Snapshot
from reconciler.daemon.target import Target, select_target, unreadable_files
from reconciler.plugin import PluginRegistry
from tests.support.workflows import file_workflow, to_yaml

REGISTRY = PluginRegistry.discover()


def workflow(name: str, *, plugin: str = "file.write", depends_on: str = "") -> str:
    document = file_workflow(name, "out.txt", "x", interval=None)
    document["spec"]["states"]["write"]["action"]["plugin"] = plugin
    if depends_on:
        document["spec"]["dependsOn"] = [depends_on]
    return to_yaml(document)


def snapshot(revision: str, files: dict[str, str]) -> Snapshot:
    return Snapshot.from_files(
        revision, {path: load_text(text, path=path) for path, text in files.items()}
    )


def test_workflows_without_errors_are_valid_and_the_others_invalid() -> None:
    target = select_target(
        snapshot("r1", {"a.yaml": workflow("a"), "b.yaml": workflow("b", plugin="no.such")}),
        REGISTRY,
    )

    assert set(target.valid) == {"a"}
    assert set(target.invalid) == {"b"}
    assert "no.such" in target.invalid["b"][0].message
    assert target.removed == {} and target.revision == "r1"


def test_a_file_that_stops_parsing_keeps_its_workflows_invalid_not_removed() -> None:
    first = select_target(snapshot("r1", {"a.yaml": workflow("a")}), REGISTRY)

    broken = snapshot("r2", {"a.yaml": "apiVersion: [unclosed\n"})
    second = select_target(broken, REGISTRY, previous=first)

    assert set(second.invalid) == {"a"}
    assert second.removed == {} and second.valid == {}
    assert set(unreadable_files(broken)) == {"a.yaml"}


def test_a_workflow_gone_from_every_file_is_removed_with_its_last_spec() -> None:
    first = select_target(
        snapshot("r1", {"a.yaml": workflow("a"), "b.yaml": workflow("b")}), REGISTRY
    )

    second = select_target(snapshot("r2", {"a.yaml": workflow("a")}), REGISTRY, previous=first)

    assert set(second.valid) == {"a"}
    assert second.removed == {"b": first.valid["b"]}


def test_removed_workflows_stay_removed_until_they_come_back() -> None:
    first = select_target(
        snapshot("r1", {"a.yaml": workflow("a"), "b.yaml": workflow("b")}), REGISTRY
    )
    second = select_target(snapshot("r2", {"a.yaml": workflow("a")}), REGISTRY, previous=first)
    third = select_target(snapshot("r3", {"a.yaml": workflow("a")}), REGISTRY, previous=second)
    back = select_target(
        snapshot("r4", {"a.yaml": workflow("a"), "b2.yaml": workflow("b")}),
        REGISTRY,
        previous=third,
    )

    assert set(third.removed) == {"b"}
    assert back.removed == {} and set(back.valid) == {"a", "b"}


def test_orphans_carry_over_until_their_workflow_returns() -> None:
    start = Target(orphans={"gone", "b"})
    target = select_target(snapshot("r1", {"b.yaml": workflow("b")}), REGISTRY, previous=start)

    assert target.orphans == {"gone"}


def test_dependents_are_indexed_by_the_workflow_they_wait_for() -> None:
    target = select_target(
        snapshot(
            "r1",
            {
                "db.yaml": workflow("db"),
                "app.yaml": workflow("app", depends_on="db"),
                "web.yaml": workflow("web", depends_on="db"),
            },
        ),
        REGISTRY,
    )

    assert sorted(target.dependents["db"]) == ["app", "web"]
    assert target.knows("app") and not target.knows("gone")


def test_dependents_follow_each_revision_as_if_built_afresh() -> None:
    texts = {
        "db.yaml": workflow("db"),
        "cache.yaml": workflow("cache"),
        "app.yaml": workflow("app", depends_on="db"),
        "web.yaml": workflow("web", depends_on="db"),
    }
    results = {path: load_text(text, path=path) for path, text in texts.items()}
    first = select_target(Snapshot.from_files("r1", results), REGISTRY)
    # the next revision reuses the unchanged files' results, as the daemon does
    results = dict(results)
    results["app.yaml"] = load_text(workflow("app", depends_on="cache"), path="app.yaml")
    del results["web.yaml"]
    results["api.yaml"] = load_text(workflow("api", depends_on="db"), path="api.yaml")
    second_snapshot = Snapshot.from_files("r2", results, previous=first.snapshot)
    second = select_target(second_snapshot, REGISTRY, previous=first)

    def index(target: Target) -> dict[str, list[str]]:
        return {name: sorted(others) for name, others in target.dependents.items()}

    assert index(second) == {"db": ["api"], "cache": ["app"]}
    assert index(second) == index(select_target(second_snapshot, REGISTRY))
