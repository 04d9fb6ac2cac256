"""The snapshot cache: a restart on unchanged files rebuilds them from the data directory.

Files are kept by git blob id after a load; the next first revision takes each file whose bytes
have a kept id from the cache (the very models it holds, no parsing), with the same digests and
positions as parsing gives. Files with problems are never kept, so their ``path:line:col`` come
from the parser. A cache of another version or schema, or a corrupt one, is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.config.loader import load_text
from reconciler.daemon.revision import load_snapshot
from reconciler.daemon.snapshot_cache import CACHE_FILE, SnapshotCache, blob_id
from reconciler.sources import Revision
from tests.support.logs import every_log_line
from tests.support.repos import git, init_repo
from tests.support.workflows import file_workflow_yaml

GOOD = file_workflow_yaml("alpha", "/tmp/alpha.txt", "hello").encode()
OTHER = file_workflow_yaml("beta", "/tmp/beta.txt", "hello").encode()
BROKEN = b"apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {name: gamma}\nspec: {start: 1}\n"


def revision(files: dict[str, bytes], rev: str = "rev-1") -> Revision:
    return Revision(
        id=rev, files=files, changed=frozenset(files), removed=frozenset(), previous=None
    )


def saved(data_dir: Path, files: dict[str, bytes]) -> SnapshotCache:
    """A cache in ``data_dir`` that kept what a first load of ``files`` gave."""
    cache = SnapshotCache(data_dir)
    cache.save(load_snapshot(revision(files), None).files, files)
    return cache


def test_the_blob_id_is_gits_own(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "alpha.yaml").write_bytes(GOOD)
    assert blob_id(GOOD) == git(repo, "hash-object", "alpha.yaml")


def test_a_restart_on_unchanged_files_takes_them_from_the_cache(tmp_path: Path) -> None:
    files = {"alpha.yaml": GOOD, "beta.yaml": OTHER}
    saved(tmp_path, files)

    restarted = SnapshotCache(tmp_path)
    kept = restarted.load()
    snapshot = load_snapshot(revision(files), None, cached=kept)
    parsed = load_snapshot(revision(files), None)

    assert snapshot.workflows["alpha"].workflow is kept[blob_id(GOOD)][0][2]  # not parsed again
    for name, lw in parsed.workflows.items():
        again = snapshot.workflows[name]
        assert again.workflow == lw.workflow and again.digest == lw.digest
        assert (again.path, again.line) == (lw.path, lw.line)
        for loc in [("metadata", "name"), ("spec", "states", "write", "do", 0, "plugin")]:
            assert again.locate(loc) == lw.locate(loc)
    assert snapshot.files["alpha.yaml"].digest == parsed.files["alpha.yaml"].digest


def test_a_file_at_another_path_with_the_same_bytes_is_a_hit_under_its_own_path(
    tmp_path: Path,
) -> None:
    cache = saved(tmp_path, {"alpha.yaml": GOOD})
    snapshot = load_snapshot(revision({"moved/alpha.yaml": GOOD}), None, cached=cache.load())
    assert snapshot.workflows["alpha"].path == "moved/alpha.yaml"


def test_files_with_problems_are_not_kept_and_are_parsed_with_their_positions(
    tmp_path: Path,
) -> None:
    files = {"alpha.yaml": GOOD, "gamma.yaml": BROKEN}
    kept = saved(tmp_path, files).load()
    assert set(kept) == {blob_id(GOOD)}

    snapshot = load_snapshot(revision(files), None, cached=kept)
    assert [str(p) for p in snapshot.problems] == [
        str(p) for p in load_text(BROKEN, path="gamma.yaml").problems
    ]
    assert snapshot.problems[0].path == "gamma.yaml" and snapshot.problems[0].line == 4
    assert list(snapshot.invalid) == ["gamma"]


def test_a_changed_file_is_parsed_again(tmp_path: Path) -> None:
    kept = saved(tmp_path, {"alpha.yaml": GOOD}).load()
    edited = GOOD.replace(b"hello", b"changed")
    snapshot = load_snapshot(revision({"alpha.yaml": edited}), None, cached=kept)
    assert snapshot.workflows["alpha"].workflow.spec.inputs["content"] == "changed"


def test_a_corrupt_cache_is_a_warning_and_ignored(tmp_path: Path) -> None:
    saved(tmp_path, {"alpha.yaml": GOOD})
    path = tmp_path / CACHE_FILE
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])

    with every_log_line() as logs:
        kept = SnapshotCache(tmp_path).load()
    assert kept == {}
    assert [e["log_level"] for e in logs] == ["warning"]
    assert "snapshot cache unreadable" in logs[0]["event"]
    snapshot = load_snapshot(revision({"alpha.yaml": GOOD}), None, cached=kept)
    assert list(snapshot.workflows) == ["alpha"]


def test_a_cache_of_another_version_or_schema_is_ignored(tmp_path: Path) -> None:
    saved(tmp_path, {"alpha.yaml": GOOD})
    path = tmp_path / CACHE_FILE
    document = json.loads(path.read_bytes())
    document["key"] = "0.0.1/1/0000000000000000"
    path.write_text(json.dumps(document))
    with every_log_line() as logs:
        assert SnapshotCache(tmp_path).load() == {}
    assert [e["log_level"] for e in logs] == ["info"]


def test_an_unchanged_cache_is_not_written_again(tmp_path: Path) -> None:
    files = {"alpha.yaml": GOOD}
    saved(tmp_path, files)
    path = tmp_path / CACHE_FILE
    path.write_bytes(path.read_bytes() + b" ")  # still valid JSON: shows whether it is rewritten
    restarted = SnapshotCache(tmp_path)
    snapshot = load_snapshot(revision(files), None, cached=restarted.load())
    assert restarted.save(snapshot.files, files) == 1
    assert path.read_bytes().endswith(b" ")
    changed = {**files, "beta.yaml": OTHER}
    assert restarted.save(load_snapshot(revision(changed), None).files, changed) == 2
    assert not path.read_bytes().endswith(b" ")


def test_a_missing_cache_is_silent(tmp_path: Path) -> None:
    with every_log_line() as logs:
        assert SnapshotCache(tmp_path).load() == {}
    assert logs == []


def test_a_cache_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    files = {"alpha.yaml": GOOD}
    loaded = load_snapshot(revision(files), None).files
    with every_log_line() as logs:
        kept = SnapshotCache(tmp_path / "missing").save(loaded, files)
    assert kept == 0
    assert [e["log_level"] for e in logs] == ["warning"]
    assert not (tmp_path / "missing").exists()
