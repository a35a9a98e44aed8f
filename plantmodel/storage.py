"""The ranges of the database columns that hold integers, in one place.

The model refuses a value that its column cannot hold: MariaDB would refuse the whole batch's
transaction (and SQLite raises OverflowError past 64 bits), so a value that passes validation
must also fit where it is stored.
"""

from __future__ import annotations

from plantmodel.errors import ValidationError

# Signed column types (schema.sql).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # INT
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # BIGINT

SEQ_MAX = BIGINT_MAX  # readings.seq BIGINT
PAYLOAD_BYTES_MAX = INT_MAX  # rejected_messages.payload_bytes INT


def check_column_int(value: int, column: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValidationError(f"{column} = {value} does not fit its column ({lo}..{hi})")
    return value
