"""One written timestamp form (UTC, milliseconds, Z) and one parser."""
from datetime import datetime, timedelta, timezone

import pytest

from runtime.support import timestamps

MOMENT = datetime(2026, 11, 30, 14, 13, 55, 123456, tzinfo=timezone.utc)


def test_the_written_form_is_utc_with_milliseconds_and_z():
    assert timestamps.format_time(MOMENT) == "2026-11-30T14:13:55.123Z"
    east = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert timestamps.format_time(east) == "2026-11-30T14:13:55.123Z"
    assert timestamps.format_time(MOMENT.replace(tzinfo=None)) == "2026-11-30T14:13:55.123Z"


def test_from_ms_and_now_write_the_same_form():
    assert timestamps.from_ms(MOMENT.timestamp() * 1000) == "2026-11-30T14:13:55.123Z"
    assert timestamps.from_ms(0) == "1970-01-01T00:00:00.000Z"
    written = timestamps.now()
    assert written.endswith("Z") and len(written) == len("2026-11-30T14:13:55.123Z")


@pytest.mark.parametrize("text", ["2026-11-30T14:13:55.123Z", "2026-11-30T14:13:55.123000+00:00",
                                  "2026-11-30T16:13:55.123+02:00"])
def test_parse_reads_the_written_form_and_earlier_offsets(text):
    assert timestamps.parse(text) == MOMENT.replace(microsecond=123000)


def test_parse_round_trips_the_written_form():
    assert timestamps.format_time(timestamps.parse(timestamps.format_time(MOMENT))) == "2026-11-30T14:13:55.123Z"


@pytest.mark.parametrize("text", ["2026-11-30T14:13:55", "yesterday", ""])
def test_parse_refuses_what_is_not_a_zoned_timestamp(text):
    with pytest.raises(ValueError):
        timestamps.parse(text)
    assert timestamps.parse_optional(text) is None


def test_parse_optional_passes_unset_through():
    assert timestamps.parse_optional(None) is None
    assert timestamps.parse_optional("2026-11-30T14:13:55.123Z") == MOMENT.replace(microsecond=123000)
