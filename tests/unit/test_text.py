"""plantmodel.text.printable: device-controlled text made safe for a terminal or a log line."""

from __future__ import annotations

import pytest

from plantmodel.text import has_unprintable, printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b[2J\x1b[31mfake", "\\x1b[2J\\x1b[31mfake"),  # ESC: clear screen, colours
    ("\x9b2J", "\\x9b2J"),  # C1 CSI, the one-byte ESC [
    ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),  # NUL, BEL, backspace, DEL
    ("one\ntwo\r\tthree", "one\\x0atwo\\x0d\\x09three"),  # one message stays one line
    ("a\u2028b\u202eevil", "a\\u2028b\\u202eevil"),  # line separator, right-to-left override
    ("bad \udcff byte", "bad \\udcff byte"),  # a lone surrogate cannot even be encoded
])
def test_control_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_ordinary_text_is_unchanged() -> None:
    text = 'plant/units/3 {"ph": 7.0, "label": "crème fraîche 日本", "path": "C:\\\\x"} ±°µ'
    assert printable(text) == text


def test_has_unprintable_sees_controls_format_and_separators_but_what_it_is_told_to_allow() -> None:
    assert not has_unprintable("Cuve n°3 vidée, lot 7 bloqué 🧈")
    for bad in ("a\x1b[31m", "a\u200eb", "a\u2028b", "a\ue000", "a\nb"):
        assert has_unprintable(bad), repr(bad)
    assert not has_unprintable("line 1\r\nline 2", allow="\r\n")
    assert has_unprintable("line 1\r\nline\x07 2", allow="\r\n")
