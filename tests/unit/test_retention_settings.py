"""Retention settings (store/retention.py): defaults, validation of each variable, and the bridge
reading RETENTION_RAW_DAYS through the same parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.settings import BridgeSettings
from plantmodel.errors import PlantModelError, ValidationError
from store.__main__ import build_parser
from store.retention import MAX_DAYS, RetentionSettings, Target, targets


def test_defaults() -> None:
    s = RetentionSettings.from_env({})
    assert (s.raw_days, s.rollup_days, s.rejected_days, s.batch) == (730, 3650, 90, 1000)
    assert RetentionSettings.from_env({"RETENTION_RAW_DAYS": " 30 ", "RETENTION_ROLLUP_DAYS": "30",
                                       "RETENTION_REJECTED_DAYS": "1", "RETENTION_BATCH": "7"}) == \
        RetentionSettings(30, 30, 1, 7)


@pytest.mark.parametrize("name", ["RETENTION_RAW_DAYS", "RETENTION_ROLLUP_DAYS", "RETENTION_REJECTED_DAYS",
                                  "RETENTION_BATCH"])
@pytest.mark.parametrize("value, says", [("0", "must be >= 1"), ("-5", "must be >= 1"), ("abc", "not an integer"),
                                         ("1.5", "not an integer")])
def test_each_variable_must_be_a_whole_number_of_at_least_one(name: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as info:
        RetentionSettings.from_env({name: value})
    assert name in str(info.value) and isinstance(info.value, PlantModelError)


@pytest.mark.parametrize("name", ["RETENTION_RAW_DAYS", "RETENTION_ROLLUP_DAYS", "RETENTION_REJECTED_DAYS"])
def test_a_period_too_long_to_be_a_date_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match=f"{name}={MAX_DAYS + 1} must be <= {MAX_DAYS}"):
        RetentionSettings.from_env({name: str(MAX_DAYS + 1), "RETENTION_ROLLUP_DAYS": str(MAX_DAYS)}
                                   if name != "RETENTION_ROLLUP_DAYS" else {name: str(MAX_DAYS + 1)})


def test_raw_data_may_not_outlive_its_rollups() -> None:
    assert RetentionSettings.from_env({"RETENTION_RAW_DAYS": "3650"}).raw_days == 3650
    with pytest.raises(ValidationError, match="RETENTION_RAW_DAYS=3651 must be <= RETENTION_ROLLUP_DAYS=3650"):
        RetentionSettings.from_env({"RETENTION_RAW_DAYS": "3651"})
    with pytest.raises(ValidationError, match="RETENTION_RAW_DAYS=730 must be <= RETENTION_ROLLUP_DAYS=100"):
        RetentionSettings.from_env({"RETENTION_ROLLUP_DAYS": "100"})
    with pytest.raises(ValidationError, match="RETENTION_BATCH=0"):
        RetentionSettings(batch=0)


def test_the_bridge_reads_the_raw_retention_with_the_same_parser() -> None:
    assert BridgeSettings.from_env({}).retention_raw_days == 730
    assert BridgeSettings.from_env({"RETENTION_RAW_DAYS": "400"}).retention_raw_days == 400
    with pytest.raises(ValidationError, match="RETENTION_RAW_DAYS"):
        BridgeSettings.from_env({"RETENTION_RAW_DAYS": "0"})


def test_a_rollup_bucket_goes_only_once_it_has_wholly_ended_before_the_cutoff() -> None:
    hour = next(t for t in targets() if t.name == "readings_hour")
    assert isinstance(hour, Target) and hour.width == 3600
    cutoff = datetime(2016, 11, 21, 10, 30, tzinfo=UTC)
    bound = hour.bound(cutoff)  # buckets below this go
    ends_at_cutoff = int(datetime(2016, 11, 21, 9, 30, tzinfo=UTC).timestamp())
    assert ends_at_cutoff < bound <= ends_at_cutoff + 1  # [09:30, 10:30) has ended: it goes
    assert int(datetime(2016, 11, 21, 10, tzinfo=UTC).timestamp()) >= bound  # [10:00, 11:00) stays


def test_the_command_line_documents_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retention", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("DATABASE_URL", "RETENTION_RAW_DAYS", "RETENTION_ROLLUP_DAYS", "RETENTION_REJECTED_DAYS",
                 "RETENTION_BATCH", "--dry-run", "--every"):
        assert name in out
    args = build_parser().parse_args(["retention", "--dry-run", "--every", "3600"])
    assert args.dry_run and args.every == 3600.0
