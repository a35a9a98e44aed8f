"""The device registry: every unit (``units/3``) and meter (``meters/<id>``) the bridge has heard
from, with what it said of itself, and what administrators decided: a name, disabled (the bridge
rejects its data with a reason) or removed (hidden from the lists; its data stays for the auditor).

An administrator may name or disable a device before it ever connects (``PATCH`` creates the row).
Automates are not devices: an automate is shown under its unit's name.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from plantmodel.errors import ValidationError
from plantmodel.readings import MAX_UNIT, format_ts, utcnow
from plantmodel.sources import METER_ID_RE, unit_of_key
from plantmodel.text import has_unprintable
from store import models as orm
from store import queries
from webui.api import ApiError, bp
from webui.api.params import json_body, no_body, query
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.state import web_state

NAME_MAX = 64
# Control and format characters (bidirectional overrides included), line and paragraph separators,
# surrogates, private-use and unassigned code points. Spaces (no-break ones too) are fine.


def check_device(device: str) -> str:
    """A registry key, written the one way the bridge writes it: ``units/<u>`` (1..MAX_UNIT, no
    leading zero) or ``meters/<id>`` (a meter id as the topics allow it)."""
    parts = device.split("/")
    if len(parts) == 2 and parts[0] == "units":
        try:
            unit_of_key(device)
            return device
        except ValidationError:
            pass
    elif len(parts) == 2 and parts[0] == "meters" and METER_ID_RE.fullmatch(parts[1]):
        return device
    if len(parts) == 4 and parts[0] == "units" and parts[2] == "automates":
        raise ApiError(400, _("device %(device)s is not units/<1..%(max)s> or meters/<id> (an automate is part of "
                              "its unit: name the unit)", device=repr(device), max=MAX_UNIT))
    raise ApiError(400, _("device %(device)s is not units/<1..%(max)s> or meters/<id>", device=repr(device),
                          max=MAX_UNIT))


def check_name(value: Any) -> str | None:
    """null (no name) or 1..64 printable characters, surrounding spaces stripped."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, _("field %(key)s must be a string or null", key="'name'"))
    name = value.strip()
    if not name:
        raise ApiError(400, _("field %(key)s is empty (null removes the name)", key="'name'"))
    if len(name) > NAME_MAX:
        raise ApiError(400, _("field %(key)s is longer than %(max)s characters", key="'name'", max=NAME_MAX))
    if has_unprintable(name):
        raise ApiError(400, _("field %(key)s has a character that is not printable", key="'name'"))
    return name


def device_kind(device: str) -> str:
    return "unit" if device.startswith("units/") else "meter"


def _ts(value: Any) -> str | None:
    return None if value is None else format_ts(value)


def device_item(row: orm.Device, state: str | None) -> dict[str, Any]:
    return {"device": row.device, "kind": device_kind(row.device), "name": row.name, "model": row.model,
            "generation": row.generation, "firmware": row.firmware, "disabled": bool(row.disabled),
            "first_seen": _ts(row.first_seen), "last_seen": _ts(row.last_seen), "removed_at": _ts(row.removed_at),
            "updated_at": _ts(row.updated_at), "updated_by": row.updated_by, "state": state}


def _order(device: str) -> tuple[int, int, str]:
    """Units by number, then meters by id."""
    kind, _sep, rest = device.partition("/")
    return (0, int(rest), "") if kind == "units" else (1, 0, rest)


def _state(session: Session, device: str) -> str | None:
    row = session.get(orm.DeviceState, device)
    return None if row is None else row.state


def _row_or_404(session: Session, device: str) -> orm.Device:
    row = queries.get_device(session, device)
    if row is None:
        raise ApiError(404, _("device %(device)s is not in the registry", device=repr(device)))
    return row


def _known(session: Session, device: str) -> bool:
    """Whether the plant has data of this device (a unit or meter row), registered or not."""
    kind, _sep, rest = device.partition("/")
    return session.get(orm.Unit, int(rest)) is not None if kind == "units" else \
        session.get(orm.Meter, rest) is not None


def _admin() -> str:
    user = current_user()
    assert user is not None  # require_role let us in
    return user.username


# -- routes ------------------------------------------------------------------------------------------

@bp.get("/devices")
def list_devices() -> Response:
    query(())
    with web_state().make_session() as session:
        states = {d.device: d.state for d in queries.device_states(session)}
        rows = sorted(queries.device_rows(session), key=lambda r: _order(r.device))
        return jsonify(items=[device_item(r, states.get(r.device)) for r in rows])


@bp.get("/devices/<path:device>")
def get_device(device: str) -> Response:
    query(())
    check_device(device)
    with web_state().make_session() as session:
        return jsonify(device_item(_row_or_404(session, device), _state(session, device)))


@bp.patch("/devices/<path:device>")
@require_role("admin")
def patch_device(device: str) -> tuple[Response, int]:
    """Name and/or disable a device; creates its row when the bridge has not heard from it yet."""
    query(())
    check_device(device)
    body = json_body(("name", "disabled"))
    if not body:
        raise ApiError(400, _("nothing to change: send name and/or disabled"))
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = check_name(body["name"])
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise ApiError(400, _("field %(key)s must be true or false", key="'disabled'"))
        changes["disabled"] = body["disabled"]
    by = _admin()
    with web_state().make_session.begin() as session:
        old = queries.get_device(session, device)
        before = {} if old is None else {"name": old.name, "disabled": bool(old.disabled)}
        queries.register_device(session, device, changes, utcnow(), by)
        row = _row_or_404(session, device)
        item = device_item(row, _state(session, device))
        audit("device.create" if old is None else "device.update", session=session, device=device, **changes,
              **{f"old_{k}": before[k] for k in changes if k in before})
    return jsonify(item), 201 if old is None else 200


def _set_removed(device: str, removed: bool) -> Response:
    query(())
    check_device(device)
    no_body()
    by = _admin()
    with web_state().make_session.begin() as session:
        old = queries.get_device(session, device)
        if old is None and (not removed or not _known(session, device)):
            raise ApiError(404, _("device %(device)s is not in the registry", device=repr(device)))
        changed = old is None or (old.removed_at is not None) != removed
        if changed:  # removing twice keeps the first time
            queries.set_device_removed(session, device, removed, utcnow(), by)
        item = device_item(_row_or_404(session, device), _state(session, device))
        if changed:
            audit("device.remove" if removed else "device.restore", session=session, device=device)
    return jsonify(item)


@bp.post("/devices/<path:device>/remove")
@require_role("admin")
def remove_device(device: str) -> Response:
    """Hide a device from the lists (its readings, alarms and audit stay)."""
    return _set_removed(device, True)


@bp.post("/devices/<path:device>/restore")
@require_role("admin")
def restore_device(device: str) -> Response:
    return _set_removed(device, False)
