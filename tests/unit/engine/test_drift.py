"""diff_subset: desired must be a subset of observed."""

from __future__ import annotations

from reconciler.engine.drift import FieldDiff, diff_subset


def test_extra_observed_keys_are_in_sync() -> None:
    assert diff_subset({"a": 1}, {"a": 1, "b": 2}) == []


def test_missing_key_is_reported_with_its_path() -> None:
    [d] = diff_subset({"a": {"b": 1}}, {"a": {}})
    assert d.path == "a.b" and d.missing and d.desired == 1
    assert d.as_dict()["observed"] == "<missing>"


def test_list_elements_compare_as_subsets_with_indexed_paths() -> None:
    desired = {"rows": [{"datname": "app", "owner": "app_user"}]}
    observed = {"rows": [{"datname": "app", "owner": "postgres", "oid": 5}]}
    assert diff_subset(desired, observed) == [FieldDiff("rows[0].owner", "app_user", "postgres")]


def test_lists_of_different_length_differ_as_a_whole() -> None:
    assert diff_subset({"rows": [1]}, {"rows": []}) == [FieldDiff("rows", [1], [])]


def test_scalars_must_be_equal_and_true_is_not_one() -> None:
    assert diff_subset(3, 3) == []
    assert diff_subset(True, 1) == [FieldDiff("", True, 1)]
    assert diff_subset("x", "y") == [FieldDiff("", "x", "y")]


def test_a_mapping_where_observed_has_a_scalar_differs() -> None:
    assert diff_subset({"a": {"b": 1}}, {"a": 5}) == [FieldDiff("a", {"b": 1}, 5)]


def test_every_difference_is_reported_not_just_the_first() -> None:
    diffs = diff_subset({"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 3]})
    assert [d.path for d in diffs] == ["a", "b[1]"]
