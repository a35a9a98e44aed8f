"""What a MariaDB restore may execute: the statements ``mariadb-dump`` writes for our schema, and
nothing else.

A restore runs the file as ``plant_admin``, and a backup file is input like any other: someone
who can write one could otherwise change the admin's password (``SET PASSWORD``), leave a trigger
that acknowledges every alarm, or an event. So every line is checked against an allow-list of
what the dump tool writes, with string literals and quoted names blanked first (the dump never
breaks a string across lines: it writes ``\\n``). Anything else refuses the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from plantmodel.errors import PlantModelError

_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'")
_NAME = re.compile(r"`(?:[^`\n]|``)*`")
# Session settings the dump saves, sets and restores around its content. Values are pinned: a
# dump that switched to NO_BACKSLASH_ESCAPES or to a multi-byte character set like gbk would make
# the server read strings differently from this check (and hide a statement in one).
_SET_ITEM = (r"(?:@\w+\s*=\s*@@\w+|"
             r"(?:CHARACTER_SET_CLIENT|CHARACTER_SET_RESULTS|COLLATION_CONNECTION|SQL_MODE|TIME_ZONE|"
             r"FOREIGN_KEY_CHECKS|UNIQUE_CHECKS|SQL_NOTES|character_set_client)\s*=\s*@\w+|"
             r"character_set_client\s*=\s*utf8mb4|TIME_ZONE\s*=\s*''|SQL_MODE\s*=\s*''|"
             r"(?:FOREIGN_KEY_CHECKS|UNIQUE_CHECKS|SQL_NOTES)\s*=\s*0)")
_SQL_MODE = re.compile(r"SQL_MODE\s*=\s*'", re.IGNORECASE)
_SQL_MODE_OK = "SQL_MODE='NO_AUTO_VALUE_ON_ZERO'"  # the only mode the dump sets
_TIME_ZONE = re.compile(r"TIME_ZONE\s*=\s*'([^']*)'", re.IGNORECASE)
_OUTSIDE = re.compile("|".join([
    r"",
    r"--(?: .*)?",  # a comment (MariaDB wants a space after the dashes)
    r"/\*M!999999\\- enable the sandbox mode \*/ ?",  # newer dump tools' first line
    rf"/\*!\d{{5}} SET (?:NAMES utf8mb4|{_SET_ITEM}(?:, {_SET_ITEM})*) \*/;",
    r"/\*!40000 ALTER TABLE `` (?:DISABLE|ENABLE) KEYS \*/;",
    r"DROP TABLE IF EXISTS ``;",
    r"LOCK TABLES `` WRITE;",
    r"UNLOCK TABLES;",
]))
_CREATE = re.compile(r"CREATE TABLE `` \(")
_INSERT = re.compile(r"INSERT INTO `` VALUES ?(.*)")
# Inside CREATE TABLE: column, key and constraint lines, then ") ENGINE=… ;".
_CREATE_BODY = re.compile(r"  [^;#]*")
_CREATE_END = re.compile(r"\) ENGINE=[^;#]*;")
# One row or several: values are numbers, NULL, blanked strings, hex literals.
_ROWS = re.compile(r"\([\w.+\-',]*\)(?:,\([\w.+\-',]*\))*[,;]?")


class UnsafeDump(PlantModelError):
    """The file holds a statement ``mariadb-dump`` does not write."""


def check_lines(lines: Iterable[bytes], name: str) -> None:
    """Raise :class:`UnsafeDump` at the first line that is not the dump tool's."""
    state = ""  # "", "create" or "insert"
    number = 0
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError:
            raise UnsafeDump(f"{name}: line {number} is not UTF-8") from None
        line = line.removesuffix("\r")
        skeleton = _NAME.sub("``", _STRING.sub("''", line))
        if "'" in skeleton.replace("''", "") or (state and ("/*" in skeleton or "--" in skeleton)):
            _refuse(name, number, line)  # a string left open, or a comment inside a statement
        if state == "create":
            if _CREATE_END.fullmatch(skeleton):
                state = ""
            elif not _CREATE_BODY.fullmatch(skeleton):
                _refuse(name, number, line)
            continue
        if state == "insert":
            if not _ROWS.fullmatch(skeleton):
                _refuse(name, number, line)
            if skeleton.endswith(";"):
                state = ""
            continue
        if _OUTSIDE.fullmatch(skeleton):
            if len(_SQL_MODE.findall(line)) != line.count(_SQL_MODE_OK) or any(
                    not re.fullmatch(r"[+-]\d\d:\d\d", tz) for tz in _TIME_ZONE.findall(line)):
                _refuse(name, number, line)
            continue
        if _CREATE.fullmatch(skeleton):
            state = "create"
            continue
        insert = _INSERT.fullmatch(skeleton)
        if insert:
            rows = insert.group(1)
            if rows and (not _ROWS.fullmatch(rows) or "--" in rows):
                _refuse(name, number, line)
            if not rows.endswith(";"):
                state = "insert"
            continue
        _refuse(name, number, line)
    if state:
        raise UnsafeDump(f"{name}: ends inside a statement (line {number})")


def _refuse(name: str, number: int, line: str) -> None:
    excerpt = line[:80].encode("unicode_escape").decode("ascii")
    raise UnsafeDump(f"{name}: line {number} is not something mariadb-dump writes, refusing to run it: "
                     f"{excerpt!r}")
