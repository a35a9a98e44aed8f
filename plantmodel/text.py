"""Text that is safe to write to a terminal or a log line.

Topics, payloads and reasons come from devices: an ESC (``\\x1b``) or a C1 CSI (``\\x9b``) in them
would drive the operator's terminal (colours, cursor moves, a rewritten line, a fake log entry).
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL and C1 controls; line/paragraph separators and bidirectional overrides, which
# reorder or split what is shown; lone surrogates, which cannot even be encoded to a terminal.
# Tab and newline are escaped too: one message stays one line.
_UNSAFE = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"


def printable(text: str) -> str:
    """``text`` with control characters replaced by ``\\xNN`` (``\\uNNNN`` above U+00FF) escapes;
    everything else, backslashes included, is kept as is."""
    return re.sub(_UNSAFE, _escape, text)


# What a person cannot see or that breaks a line of text: control and format characters, line and
# paragraph separators, lone surrogates, private use and unassigned code points.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def has_unprintable(text: str, *, allow: str = "") -> bool:
    """Whether ``text`` (a name, a note a person typed) holds such a character, those in ``allow``
    (e.g. a note's line breaks) aside."""
    return any(unicodedata.category(c) in _UNPRINTABLE_CATEGORIES for c in text if c not in allow)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
