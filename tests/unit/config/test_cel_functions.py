"""The string extension functions and ``now()``, evaluated by the real CEL binding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.config.cel_functions import MAX_RESULT_CHARS, MAX_RESULT_ITEMS
from reconciler.config.expressions import evaluate, evaluate_async
from reconciler.errors import EvaluationError, ExpressionBudgetExceeded

SCOPE: dict[str, Any] = {"inputs": {"name": " Web-01 ", "hosts": ["a", "b", "c"], "n": 3}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"hello".charAt(1)', "e"),
        ('"hello".charAt(5)', ""),
        ('charAt("hello", 0)', "h"),
        ('"hello".indexOf("l")', 2),
        ('"hello".indexOf("l", 3)', 3),
        ('"hello".indexOf("z")', -1),
        ('"hello".indexOf("")', 0),
        ('"hello".lastIndexOf("l")', 3),
        ('"hello".lastIndexOf("l", 2)', 2),
        ('"hello".lastIndexOf("z")', -1),
        ('"HeLLo Ünïcode".lowerAscii()', "hello Ünïcode"),
        ('"hello ünïcode".upperAscii()', "HELLO üNïCODE"),
        ('"a-b-c".replace("-", "_")', "a_b_c"),
        ('"a-b-c".replace("-", "_", 1)', "a_b-c"),
        ('"a-b-c".replace("-", "_", 0)', "a-b-c"),
        ('"a,b,c".split(",")', ["a", "b", "c"]),
        ('"a,b,c".split(",", 2)', ["a", "b,c"]),
        ('"a,b,c".split(",", 0)', []),
        ('"abc".split("")', ["a", "b", "c"]),
        ('"abc".split("", 2)', ["a", "bc"]),
        ('"hello".substring(1)', "ello"),
        ('"hello".substring(1, 3)', "el"),
        ('"hello".substring(5)', ""),
        ('"  \\t padded \\n".trim()', "padded"),
        ('["a", "b"].join()', "ab"),
        ('["a", "b"].join(", ")', "a, b"),
        ("[].join(',')", ""),
        ("inputs.name.trim().lowerAscii()", "web-01"),
        ('inputs.hosts.join(",").split(",") == inputs.hosts', True),
        ('inputs.hosts.map(h, h.upperAscii()).join(" ")', "A B C"),
    ],
)
def test_string_functions_behave_as_cel_go_ext_strings(source: str, expected: Any) -> None:
    assert evaluate(source, SCOPE) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('"hello".charAt(6)', "charAt: index 6 is out of range for a string of 5 characters"),
        ('"hello".charAt(-1)', "charAt: index -1 is out of range"),
        ('"hello".charAt("1")', "charAt: the index must be an int, got string"),
        ("inputs.n.charAt(0)", "charAt: the receiver must be a string, got int"),
        ('"hello".indexOf("l", 9)', "indexOf: offset 9 is out of range"),
        ('"hello".indexOf(1)', "indexOf: the argument must be a string, got int"),
        ('"hello".lastIndexOf("l", -2)', "lastIndexOf: offset -2 is out of range"),
        ("inputs.hosts.lowerAscii()", "lowerAscii: the receiver must be a string, got list"),
        ("true.upperAscii()", "upperAscii: the receiver must be a string, got bool"),
        ('"a".replace("a", 1)', "replace: the replacement must be a string, got int"),
        ('"a".replace("a", "b", 1.5)', "replace: the limit must be an int, got double"),
        ('"a,b".split(1)', "split: the separator must be a string, got int"),
        ('"hello".substring(2, 9)', "substring: end 9 is out of range"),
        ('"hello".substring(3, 1)', "substring: start 3 is after end 1"),
        ("null.trim()", "trim: the receiver must be a string, got null"),
        ('"abc".join(",")', "join: the receiver must be a list of strings, got string"),
        ('[1, 2].join(",")', "join: item 0 is int, not a string"),
        ('"hello".charAt()', "char_at()"),
    ],
)
def test_a_wrong_call_is_an_evaluation_error_naming_the_function(source: str, message: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        evaluate(source, SCOPE)

    assert message in caught.value.message
    assert "Python function call failed" not in caught.value.message


def test_a_replace_chain_that_would_grow_past_the_limit_is_refused_before_it_builds() -> None:
    grow = '.replace("a", "aaaaaaaaaa")' * 8  # 10**8 characters if it were built

    with pytest.raises(EvaluationError) as caught:
        evaluate('"a"' + grow, {})

    assert f"over the limit of {MAX_RESULT_CHARS:,}" in caught.value.message


def test_a_split_into_more_items_than_the_limit_is_refused() -> None:
    scope = {"observed": {"content": "x" * (MAX_RESULT_ITEMS + 1)}}

    with pytest.raises(EvaluationError) as caught:
        evaluate('observed.content.split("").size()', scope)

    assert f"over the limit of {MAX_RESULT_ITEMS:,}" in caught.value.message


def test_a_long_split_and_join_chain_over_a_large_value_is_over_the_budget() -> None:
    scope = {"observed": {"content": "line\n" * 200_000}}
    chain = "observed.content" + '.split("\\n").join("\\n")' * 10

    with pytest.raises(ExpressionBudgetExceeded) as caught:
        evaluate(chain + ".size()", scope)

    assert caught.value.details["limit"] == 1_000_000


def test_a_single_split_of_a_moderate_value_is_within_the_budget() -> None:
    scope = {"observed": {"content": "line\n" * 20_000}}

    assert evaluate('observed.content.split("\\n").size()', scope) == 20_001


def test_now_is_the_instant_the_evaluation_began_for_every_call_in_it() -> None:
    before = datetime.now(UTC)
    value = evaluate("now()", {})
    after = datetime.now(UTC)

    assert before <= value <= after
    assert evaluate("now() == now()", {}) is True


def test_now_can_be_pinned_and_compared_with_timestamps_and_durations() -> None:
    pinned = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    scope = {"observed": {"expires": "2030-01-10T00:00:00Z"}}

    assert evaluate("now()", {}, now=pinned) == pinned
    assert evaluate("now().getFullYear()", {}, now=pinned) == 2030
    assert (
        evaluate('timestamp(observed.expires) - now() > duration("168h")', scope, now=pinned)
        is True
    )
    assert evaluate('now() + duration("1h")', {}, now=pinned) == pinned + timedelta(hours=1)


async def test_functions_work_in_the_worker_process_for_expensive_expressions() -> None:
    scope = {"inputs": {"hosts": [f"Host-{i}" for i in range(300)]}}
    source = "inputs.hosts.map(h, inputs.hosts.exists(g, g.lowerAscii() == h.lowerAscii()))"

    result = await evaluate_async(source + ".all(x, x)", scope)

    assert result is True
    assert await evaluate_async("now() == now()", scope) is True
