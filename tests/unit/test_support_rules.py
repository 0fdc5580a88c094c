"""The rule for what a developer may lack: skip here, fail under ``CI=true`` (tests.support)."""

from __future__ import annotations

import pytest

from tests.support import skip_or_fail


@pytest.mark.parametrize("value", [None, "", "false", "1"], ids=["unset", "empty", "false", "1"])
def test_a_missing_piece_skips_the_test_outside_ci(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no server here"):
        skip_or_fail("no server here")


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_a_missing_piece_fails_the_test_under_ci_true(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(
        pytest.fail.Exception, match=r"no server here \(CI=true: this test must run"
    ):
        skip_or_fail("no server here")
