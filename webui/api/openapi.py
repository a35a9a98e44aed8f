"""``GET /api/openapi.json``: the OpenAPI 3.1 description of every ``/api`` route.

Written by hand (no generator dependency); ``tests/unit/test_webui_api_openapi.py`` fails when a
route of the app is missing here or documented with other methods, so it cannot drift silently.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from plantmodel import legacy
from plantmodel.i18n import LANGUAGES
from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES
from plantmodel.thresholds import SEVERITIES
from store.history import ALARM_STATES
from store.users import ROLES
from webui.api import bp
from webui.api.params import query

Schema = dict[str, Any]

def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


# A user's language: one the product speaks, or null (the browser's, else the plant's).
LANGUAGE: Schema = _nullable({"type": "string", "enum": list(LANGUAGES)})


def _obj(props: dict[str, Schema], *, required: list[str] | None = None, extra: bool = False) -> Schema:
    out: Schema = {"type": "object", "properties": props,
                   "required": list(props) if required is None else required}
    if not extra:
        out["additionalProperties"] = False
    return out


def _page_of(item: Schema) -> Schema:
    return _obj({"items": {"type": "array", "items": item}, "page": {"type": "integer", "minimum": 1},
                 "per_page": {"type": "integer"}, "total": {"type": "integer"}, "pages": {"type": "integer"}})


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(*codes: int) -> dict[str, Schema]:
    names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}
    return {str(c): {"$ref": f"#/components/responses/{names[c]}"} for c in (401, *codes)}


def _param(name: str, where: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def _p(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _op(summary: str, responses: dict[str, Schema], *, params: list[Schema] | None = None,
        body: Schema | None = None, role: str = "viewer", description: str = "") -> Schema:
    op: Schema = {"summary": summary, "responses": responses}
    if role != "viewer":
        description = f"Needs the **{role}** role. " + description
    if description:
        op["description"] = description.strip()
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _schemas() -> dict[str, Schema]:
    ts = {"type": "string", "format": "date-time", "examples": ["2026-11-21T10:15:00.000Z"]}
    num = {"type": "number"}
    reading: dict[str, Schema] = {
        "unit": {"type": "integer"}, "automate": {"type": "integer"},
        "type": {"type": "string", "pattern": "^0x[0-9A-F]{8}$", "examples": ["0x0000BA27"]},
        "seq": {"type": "integer"}, "ts": ts,
        **{m.name: {**num, "description": f"{m.label} ({m.unit})"} for m in AUTOMATE_MEASURES.values()},
    }
    power: dict[str, Schema] = {
        "meter": {"type": "string"}, "ts": ts, "output": _nullable({"type": "boolean"}),
        **{m.name: _nullable({**num, "description": f"{m.label} ({m.unit})"}) for m in METER_MEASURES.values()},
        "errors": {"type": "array", "items": {"type": "string"},
                   "description": "the device's error flags (overtemp, overpower, overvoltage, …)"},
        "energy_offset_wh": {**num, "description": "energy the counter's resets lost before this sample (Wh)"},
        "energy_total_wh": _nullable({**num, "description": "energy_wh + energy_offset_wh: counted across "
                                                           "resets, never going back (Wh)"}),
    }
    received = {**ts, "description": "when the server received it"}
    device_name = {"type": "string", "minLength": 1, "maxLength": 64, "examples": ["Ligne 2"]}
    name = _nullable({**device_name, "description": "the name an administrator gave it (device registry)"})
    stored = _nullable({**ts, "description": "when the bridge wrote it (null for rows stored before this field)"})
    alarm = _obj({
        "id": {"type": "integer"}, "source": {"type": "string", "examples": ["units/1/automates/2"]},
        "label": {"type": "string"}, "unit": {"type": "integer"}, "automate": {"type": "integer"},
        "meter": {"type": "string"}, "measure": {"type": "string", "enum": list(MEASURES)},
        "unit_of_measure": {"type": "string"}, "value": num, "limit": num,
        "bound": {"type": "string", "enum": ["low", "high"]}, "severity": {"type": "string", "enum": list(SEVERITIES)},
        "state": {"type": "string", "enum": ["active", "cleared"]}, "since": ts, "raised_at": ts,
        "cleared_at": _nullable(ts), "acknowledged_at": _nullable(ts), "acknowledged_by": _nullable({"type": "string"}),
        "ack_note": _nullable({"type": "string", "description": "the corrective action recorded with the "
                                                                "acknowledgement"}),
        "ack_disposition": _nullable({"type": "string", "enum": ["hold", "release", "none"],
                                      "description": "what became of the product, recorded with the acknowledgement"}),
        "name": _nullable({**device_name, "description": "the registry's name of its unit or meter"}),
        "detail": _nullable({"type": "string", "description": "what explains it beyond the value: a "
                                                               "`probe_fault`'s last rejection reason"}),
    }, required=["id", "source", "label", "measure", "value", "limit", "bound", "severity", "state", "since",
                 "raised_at", "cleared_at", "acknowledged_at", "acknowledged_by"])
    limit_values = {"low": _nullable(num), "high": _nullable(num)}
    # Changes written before inheritance existed carry no inherit flags.
    threshold_change_values = _obj({**limit_values, "deadband": num, "severity": {"type": "string"},
                                    "inherit_low": {"type": "boolean"}, "inherit_high": {"type": "boolean"}},
                                   required=["low", "high", "deadband", "severity"])
    origin = _nullable({"type": "string", "description": "the scope it comes from; null: set at no scope "
                                                         "(no limit, or the measure's own default)"})
    effective_fields = _obj({k: _obj({"value": _nullable(num if k != "severity" else {"type": "string"}),
                                      "from": origin}) for k in ("low", "high", "deadband", "severity")})
    series_values = {"type": "array", "items": _nullable(num)}
    return {
        "Error": _obj({"error": {"type": "string", "description": "what is wrong, naming the parameter"},
                       "status": {"type": "integer"}}),
        "Reading": _obj(reading),
        "ReadingRow": _obj({**reading, "received_at": received, "stored_at": stored}),
        "PowerSample": _obj(power),
        "PowerRow": _obj({**power, "received_at": received, "stored_at": stored}),
        "Alarm": alarm,
        "AuditEntry": _obj({
            "id": {"type": "integer"}, "at": ts, "actor": _nullable({"type": "string", "description": "user name, "
                                                                     "`cli:<os user>`, or the name tried"}),
            "address": _nullable({"type": "string", "description": "the client's address (HTTP)"}),
            "action": {"type": "string", "examples": ["alarm.acknowledge", "login.failed", "user.update"]},
            "details": {"type": "object", "description": "what changed (never a password)"},
            "prev_hash": {"type": "string", "description": "SHA-256 of the previous entry"},
            "hash": {"type": "string", "description": "SHA-256 of prev_hash and this entry"}}),
        "Unit": _obj({"unit": {"type": "integer"}, "name": name,
                      "state": _nullable({"type": "string", "enum": ["online", "offline"]}),
                      "automates": {"type": "array", "items": _obj({"automate": {"type": "integer"},
                                                                    "type": {"type": "string"}})}}),
        "Automate": _obj({"unit": {"type": "integer"}, "automate": {"type": "integer"}, "type": {"type": "string"},
                          "name": {**name, "description": "its unit's name"},
                          "latest": _nullable(_ref("Reading"))}),
        "Meter": _obj({"meter": {"type": "string"}, "name": name, "first_seen": ts, "last_seen": ts,
                       "state": _nullable({"type": "string", "enum": ["online", "offline"]}),
                       "latest": _nullable(_ref("PowerSample"))}),
        "Series": _obj({
            "source": {"type": "string"}, "start": ts, "end": ts,
            "bucket_ms": {"type": "integer", "description": "0 = raw rows; else each point is the bucket "
                                                            "[t, t + bucket_ms)"},
            "aggregated": {"type": "boolean"},
            "limits": {"type": "object", "additionalProperties": _obj(limit_values),
                       "description": "per measure, the threshold that applies (null: no limit)"},
            "alarms": {"type": "array", "items": _ref("Alarm"),
                       "description": "alarms of this source active at some time in the window"},
            "t": {"type": "array", "items": {"type": "integer"}, "description": "epoch milliseconds"},
            "measures": {"type": "object", "additionalProperties": _obj(
                {"v": series_values, "min": series_values, "max": series_values}, required=["v"]),
                "description": "v = value (average when aggregated); min/max only when aggregated"},
        }),
        "Threshold": _obj({"scope": {"type": "string", "examples": ["*", "units/3", "units/3/automates/7",
                                                                     "meters/shellypro1pm-a8032ab1c2d3"]},
                           "measure": {"type": "string", "enum": list(MEASURES)}, **limit_values,
                           "inherit_low": {"type": "boolean", "description": "low comes live from the wider scope"},
                           "inherit_high": {"type": "boolean", "description": "high comes live from the wider scope"},
                           "deadband": num, "severity": {"type": "string", "enum": list(SEVERITIES)},
                           "updated_at": ts, "updated_by": {"type": "string"}}),
        "ThresholdInput": _obj({
            "scope": {"type": "string", "description": "*, units/N, units/N/automates/M or meters/<id>"},
            "measure": {"type": "string", "enum": list(MEASURES)},
            "low": {**_nullable(num), "description": "a number; null = no limit; left out = inherited from "
                                                      "the wider scope (at `*`: no limit)"},
            "high": {**_nullable(num), "description": "as `low`"},
            "deadband": {**num, "minimum": 0, "description": "default: the wider scope's (else the measure's)"},
            "severity": {"type": "string", "enum": list(SEVERITIES),
                         "description": "default: the wider scope's (else the measure's)"},
            "confirm": {"type": "boolean", "description": "needed (else 409) when the change removes a limit "
                                                          "that applies or widens one past the normal range"},
        }, required=["scope", "measure"]),
        "ThresholdConfirm": _obj({"error": {"type": "string"}, "status": {"type": "integer"},
                                  "confirm": {"type": "array", "items": {"type": "string"},
                                              "description": "each limit the change would remove or widen"}}),
        "EffectiveThreshold": _obj({"measure": {"type": "string", "enum": list(MEASURES)},
                                    "own": _nullable(_ref("Threshold")),
                                    "effective": effective_fields, "inherited": effective_fields,
                                    "normal": _obj(limit_values)}),
        "ThresholdChange": _obj({"changed_at": ts, "changed_by": {"type": "string"}, "scope": {"type": "string"},
                                 "measure": {"type": "string"}, "action": {"type": "string", "enum": ["set", "delete"]},
                                 "old": _nullable(threshold_change_values),
                                 "new": _nullable(threshold_change_values)}),
        "Device": _obj({
            "device": {"type": "string", "examples": ["units/3", "meters/shellypro1pm-a8032ab1c2d3"]},
            "kind": {"type": "string", "enum": ["unit", "meter"]}, "name": name,
            "model": _nullable({"type": "string", "description": "as the device says it (Shelly.GetDeviceInfo, "
                                                                 "Gen1 announce)"}),
            "generation": _nullable({"type": "integer", "description": "Shelly API generation; null for units"}),
            "firmware": _nullable({"type": "string"}),
            "disabled": {"type": "boolean", "description": "the bridge rejects its data, with a reason"},
            "first_seen": _nullable({**ts, "description": "null: registered by an administrator, never heard from"}),
            "last_seen": _nullable(ts),
            "removed_at": _nullable({**ts, "description": "hidden from the lists since (its data stays)"}),
            "updated_at": _nullable({**ts, "description": "the last administrator's change"}),
            "updated_by": _nullable({"type": "string"}),
            "state": _nullable({"type": "string", "enum": ["online", "offline"]}),
        }),
        "DeviceInput": _obj({
            "name": _nullable({**device_name, "description": "1 to 64 printable characters (surrounding spaces "
                                                             "are stripped); null removes the name"}),
            "disabled": {"type": "boolean"},
        }, required=[]),
        "User": _obj({"username": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
                      "created_at": ts, "last_login_at": _nullable(ts), "has_token": {"type": "boolean"},
                      "language": LANGUAGE}),
        "Me": _obj({"username": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
                    "language": LANGUAGE}),
        "Measurement": _obj({"meter": {"type": "string"}, "power": _nullable(num), "voltage": _nullable(num),
                             "current": _nullable(num), "energy": _nullable({**num, "description": "Wh"}),
                             "timestamp": ts}),
        **_device_token_schemas(ts),
    }


def _parameters() -> dict[str, Schema]:
    dt = {"type": "string", "format": "date-time"}
    return {
        "unit": _param("unit", "path", {"type": "integer", "minimum": 1}, "unit number"),
        "automate": _param("automate", "path", {"type": "integer", "minimum": 1}, "automate number in the unit"),
        "meter": _param("meter", "path", {"type": "string"}, "meter id, e.g. shellypro1pm-a8032ab1c2d3"),
        "device": _param("device", "path", {"type": "string",
                                            "pattern": r"^(units/[1-9][0-9]*|meters/[A-Za-z0-9][A-Za-z0-9_.-]*)$"},
                         "`units/<u>` or `meters/<id>`, its slash unescaped: /api/devices/units/3"),
        "removed": _param("removed", "query", {"type": "string", "enum": ["0", "1"], "default": "0"},
                          "1: also the devices an administrator removed"),
        "start": _param("start", "query", dt, "ISO 8601 (Z or offset; no offset = UTC); inclusive"),
        "end": _param("end", "query", dt, "ISO 8601; inclusive; must not be before start"),
        "page": _param("page", "query", {"type": "integer", "minimum": 1, "default": 1},
                       "page number; past the last page = 404"),
        "per_page": _param("per_page", "query", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                 "default": 100}, "items per page"),
        "order": _param("order", "query", {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                        "by device timestamp"),
        "points": _param("points", "query", {"type": "integer", "minimum": 1, "maximum": 5000, "default": 1500},
                         "most points per measure; more rows are aggregated in equal time buckets"),
        "format": _param("format", "query", {"type": "string", "enum": ["standard", "spreadsheet"],
                                             "default": "standard"},
                         "`standard`: `,` separator, `.` decimals, UTC ISO 8601 times (for scripts). "
                         "`spreadsheet`: `;` separator, decimal comma, UTF-8 BOM, local date-times in the "
                         "plant's zone (PLANT_TZ), named in each time column's header, e.g. `ts (Europe/Paris)`"),
    }


def _history_paths(prefix: str, what: str, ids: list[Schema], row: str, csv_header: str) -> dict[str, Schema]:
    return {
        f"{prefix}/readings": {"get": _op(
            f"Stored readings of {what}, paginated", {"200": _json("a page", _page_of(_ref(row))),
                                                      **_err(400, 404)},
            params=[*ids, _p("start"), _p("end"), _p("order"), _p("page"), _p("per_page")])},
        f"{prefix}/series": {"get": _op(
            f"Chart data of {what}", {"200": _json("the series", _ref("Series")), **_err(400, 404)},
            params=[*ids, _p("start"), _p("end"), _p("points")],
            description="Default window: the 60 minutes ending now (or ending at `end`); `end` defaults "
                        "to now.")},
        f"{prefix}/readings.csv": {"get": _op(
            f"All readings of {what} in a range, as a streamed CSV download",
            {"200": {"description": f"CSV with header `{csv_header}`",
                     "content": {"text/csv": {"schema": {"type": "string"}}}}, **_err(400, 404)},
            params=[*ids, _p("start"), _p("end"), _p("format")])},
    }


def _switch_paths() -> dict[str, Schema]:
    ts = {"type": "string", "format": "date-time"}
    state = _nullable({"type": "string", "enum": ["on", "off"]})
    common: dict[str, Schema] = {
        "outcome": {"type": "string", "enum": ["confirmed", "error", "timeout"]}, "meter": {"type": "string"},
        "on": {"type": "boolean", "description": "the state asked for"},
        "was_on": _nullable({"type": "boolean", "description": "Gen2: the device's answer; Gen1: the latest "
                                                               "state known before the command"}),
        "action_id": {"type": "integer", "description": "the row of GET .../switch-actions"}}
    failed = _obj({"error": {"type": "string"}, "status": {"type": "integer"}, **common,
                   "code": {"type": "integer", "description": "the device's RPC error code (Gen2)"}},
                  required=["error", "status", *common])
    action = _obj({"id": {"type": "integer"}, "meter": {"type": "string"}, "requested_at": ts,
                   "requested_by": {"type": "string"}, "remote_addr": _nullable({"type": "string"}),
                   "from_state": {**state, "description": "null: not known"},
                   "to_state": {"type": "string", "enum": ["on", "off"]},
                   "outcome": {"type": "string", "enum": ["pending", "confirmed", "error", "timeout"]},
                   "answered_at": _nullable(ts), "detail": _nullable({"type": "string"})})
    return {
        "/api/meters/{meter}/switch": {"post": _op(
            "Switch the meter's output on or off and wait for the device's answer", {
                "200": _json("the device confirmed", _obj({**common, "answered_at": ts,
                                                           "detail": {"type": "string"}})),
                "502": _json("the device refused (its RPC error)", failed),
                "503": _json("not sent: the web UI is not connected to the MQTT broker", failed),
                "504": _json("no answer within WEBUI_SWITCH_TIMEOUT (5 s): the state is unknown", failed),
                **_err(400, 403, 404)},
            params=[_p("meter")], role="operator",
            body=_obj({"on": {"type": "boolean", "description": "true = on, false = off"}}),
            description="Gen2 meters get `Switch.Set` over MQTT RPC (`<meter>/rpc`, answer on "
                        "`<meter>/webui/rpc`), Gen1 meters `on`/`off` on `shellies/<meter>/relay/0/command` "
                        "(confirmed by their next `relay/0` state). Every attempt is audited (see "
                        "`switch-actions`) before anything is sent.")},
        "/api/meters/{meter}/switch-actions": {"get": _op(
            "Audit of the meter's remote switching, newest first", {
                "200": _json("a page of switch actions", _page_of(action)), **_err(400, 404)},
            params=[_p("meter"), _p("page"), _p("per_page")])},
    }


def _notification_paths() -> dict[str, Schema]:
    """Alarm notification routes and the notifier's outbox (webui/api/notifications.py)."""
    ts = {"type": "string", "format": "date-time"}
    sev = {"type": "string", "enum": list(SEVERITIES)}
    fields: dict[str, Schema] = {
        "name": {"type": "string", "maxLength": 64},
        "channel": {"type": "string", "enum": ["email", "webhook"]},
        "target": {"type": "string", "maxLength": 1024,
                   "description": "comma-separated e-mail addresses, or the webhook's http(s) URL"},
        "min_severity": {**sev, "description": "alarms of at least this severity (default critical)"},
        "scope": {"type": "string", "examples": ["*", "units/3", "units/3/automates/7", "meters/<id>"],
                  "description": "alarms of sources within it (default `*`)"},
        "events": {"type": "array", "items": {"type": "string", "enum": ["raise", "clear", "escalate"]},
                   "description": "raise and/or clear (default both); `[\"escalate\"]` for an escalation route"},
        "escalate_after_min": _nullable({"type": "integer", "minimum": 1, "maximum": 10080,
                                         "description": "set: an escalation route, told only when an alarm is "
                                                        "still unacknowledged this many minutes after it was "
                                                        "raised"}),
        "enabled": {"type": "boolean"}}
    route = _obj({"id": {"type": "integer"}, **fields, "updated_at": ts, "updated_by": {"type": "string"}})
    route_id = _param("route_id", "path", {"type": "integer"}, "the route's id")
    note = _obj({"id": {"type": "integer"}, "alarm_id": {"type": "integer"}, "route_id": {"type": "integer"},
                 "route": _nullable({"type": "string", "description": "its name; null once deleted"}),
                 "event": {"type": "string", "enum": ["raise", "clear", "escalate"]},
                 "created_at": ts, "status": {"type": "string", "enum": ["pending", "sent", "failed", "skipped"],
                                             "description": "skipped: an escalation whose alarm was "
                                                            "acknowledged before it could be sent"},
                 "attempts": {"type": "integer"}, "next_attempt_at": _nullable(ts), "sent_at": _nullable(ts),
                 "last_error": _nullable({"type": "string"})})
    return {
        "/api/notification-routes": {
            "get": _op("Alarm notification routes", {"200": _json("every route", _obj(
                {"items": {"type": "array", "items": route}})), **_err(400, 403)}, role="admin"),
            "post": _op("Add a notification route", {"201": _json("the new route", route), **_err(400, 403)},
                        role="admin", body=_obj(fields, required=["name", "channel", "target"]),
                        description="Validated (addresses, http(s) URL, severity, scope, events); audited as "
                                    "`notification_route.set`. The notifier uses it within seconds; alarm "
                                    "events from before it was saved are not notified."),
        },
        "/api/notification-routes/{route_id}": {
            "patch": _op("Change a notification route", {"200": _json("the route", route), **_err(400, 403, 404)},
                         role="admin", params=[route_id], body=_obj(fields, required=[]),
                         description="Any subset of the fields; audited (old and new values)."),
            "delete": _op("Delete a notification route", {"200": _json("the deleted route", _obj(
                {"deleted": route})), **_err(400, 403, 404)}, role="admin", params=[route_id],
                description="Its pending notifications fail with that reason; audited."),
        },
        "/api/notifications": {"get": _op(
            "The notifier's outbox, newest first: one row per alarm, route and event", {
                "200": _json("a page of notifications", _page_of(note)), **_err(400, 403, 404)},
            role="admin", params=[_p("page"), _p("per_page"),
                                  _param("status", "query", {"type": "string",
                                                             "enum": ["pending", "sent", "failed", "skipped"]},
                                         "only these")])},
    }


def _device_token_schemas(ts: Schema) -> dict[str, Schema]:
    token: dict[str, Schema] = {
        "id": {"type": "integer"},
        "device": {"type": "string", "examples": ["units/3", "meters/legacy-pro1pm"]},
        "kind": {"type": "string", "enum": ["unit", "meter"]},
        "route": {"type": "string", "enum": ["/collector/info", "/webhook/"], "description": "where it may send"},
        "label": _nullable({"type": "string", "maxLength": 64}), "active": {"type": "boolean"},
        "created_at": ts, "created_by": {"type": "string"}, "revoked_at": _nullable(ts),
        "revoked_by": _nullable({"type": "string"}), "last_used_at": _nullable(
            {**ts, "description": "last accepted request (updated at most once a minute)"}),
    }
    return {"DeviceToken": _obj(token),
            "NewDeviceToken": _obj({**token, "token": {"type": "string", "description": "the secret, shown once "
                                                                                        "(only its SHA-256 is kept)"}})}


def _device_token_paths() -> dict[str, Schema]:
    return {"/api/device-tokens": {
        "get": _op("Tokens of the legacy HTTP senders (never the secrets)", {"200": _json(
            "every token, active first", _obj({"items": {"type": "array", "items": _ref("DeviceToken")}})),
            **_err(400, 403)}, role="admin"),
        "post": _op("Create a legacy HTTP sender's token", {"201": _json(
            "the token, with its secret shown this once", _ref("NewDeviceToken")), **_err(400, 403)},
            role="admin", body=_obj({"device": {"type": "string", "description": "units/<u> (may POST "
                                                "/collector/info for that unit) or meters/<id> (may call /webhook/)"},
                                     "label": _nullable({"type": "string", "maxLength": 64})}, required=["device"]),
            description="Audited (`device_token.create`)."),
        "delete": _op("Revoke a legacy HTTP sender's token", {"200": _json(
            "the revoked token", _obj({"revoked": _ref("DeviceToken")})), **_err(400, 403, 404, 409)},
            role="admin", params=[_param("id", "query", {"type": "integer", "minimum": 1}, "the token's id",
                                         required=True)],
            description="The row is kept (who revoked it, when); the sender gets 401 from then on. 409 when "
                        "already revoked. Audited (`device_token.revoke`)."),
    }}


def _ingest_paths() -> dict[str, Schema]:
    num = {"oneOf": [{"type": "number"}, {"type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
                                                                       r"([eE][+-]?[0-9]+)?$"}]}
    collector = _obj({
        "unityId": {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "the token's unit"},
        **{f: {**num, "description": f"-> {name}"} for f, name in legacy.COLLECTOR_FIELDS.items()},
        "automate": {"type": "integer", "minimum": 1, "default": 1},
        "timestamp": {"type": "string", "format": "date-time", "description": "the unit's clock, ISO 8601 UTC "
                                                                                "(or `ts`); default: receive time"},
        "type": {"type": "string", "pattern": "^0[xX][0-9A-Fa-f]{8}$",
                 "description": "default: the automate's stored type, else 0x00000000 (unknown)"},
        "product_kg": {**num, "description": "default: the drop of milk since the automate's previous reading"},
    }, required=["unityId", *legacy.COLLECTOR_FIELDS], extra=True)
    meter_fields = {"power": "W", "voltage": "V", "current": "A", "energy": "Wh"}
    webhook = _obj({f: {**num, "description": unit} for f, unit in meter_fields.items()}, extra=True)
    token = _param("token", "query", {"type": "string"}, "the device token, when the sender can only set a URL "
                                                          "(it is then a secret in the URL)")
    answers = {
        **_err(400, 403),
        "413": _json("the body is too large", _ref("Error")),
        "429": _json("too many requests (see Retry-After)", _ref("Error")),
        "503": _json("the broker did not accept it: send it again (see Retry-After)", _ref("Error")),
    }
    accepted = {"accepted": {"type": "boolean"}, "topic": {"type": "string"}}
    how = ("Authenticated by a device token (`Authorization: Bearer <token>` or `Token <token>`, "
           "`X-Device-Token`, or `?token=`); 401 unknown or revoked, 403 a token of another device. "
           "Published on the broker at QoS 1 (answered after its PUBACK), then stored by the bridge. "
           "Unknown fields are ignored; a missing, repeated or non-numeric field is a 400 naming it.")

    def body(schema: Schema) -> Schema:
        return {"required": True, "content": {"application/json": {"schema": schema},
                                              "application/x-www-form-urlencoded": {"schema": schema}}}

    sample = _json("accepted by the broker; the original collector's fields", _obj({
        **accepted, "meter": {"type": "string"}, "power": {"type": "number"}, "voltage": {"type": "number"},
        "current": {"type": "number"}, "energy": {"type": "number"},
        "timestamp": {"type": "string", "format": "date-time"}}))
    return {
        "/collector/info": {"post": {**_op("A legacy production unit's reading (seed 1)", {
            "200": _json("accepted by the broker", _obj({**accepted, "reading": _ref("Reading")})), **answers},
            params=[token], description=how), "requestBody": body(collector)}},
        "/webhook/": {
            "get": _op("A Shelly webhook's measurement, as a query string (seed 2)", {"200": sample, **answers},
                       params=[token, *(_param(f, "query", num, u, required=True) for f, u in meter_fields.items())],
                       description=how + " The server adds the timestamp."),
            "post": {**_op("A Shelly webhook's measurement, as JSON (seed 2)", {"200": sample, **answers},
                           params=[token], description=how + " The server adds the timestamp."),
                     "requestBody": body(webhook)},
        },
    }


def openapi_document() -> dict[str, Any]:
    automate_ids = [_p("unit"), _p("automate")]
    automate_csv = "ts,received_at,stored_at,seq," + ",".join(AUTOMATE_MEASURES)
    meter_csv = "ts,received_at,stored_at,output," + ",".join(METER_MEASURES)
    alarm_params = [
        _param("state", "query", {"type": "string", "enum": list(ALARM_STATES), "default": "all"},
               "open = active or not yet acknowledged"),
        _param("unit", "query", {"type": "integer", "minimum": 1}, "alarms of this unit's automates"),
        _param("automate", "query", {"type": "integer", "minimum": 1}, "needs unit"),
        _param("meter", "query", {"type": "string"}, "alarms of this meter (not with unit)"),
        _param("measure", "query", {"type": "string", "enum": list(MEASURES)}, "one measure"),
        {**_p("start"), "description": "raised at or after (ISO 8601)"},
        {**_p("end"), "description": "raised at or before (ISO 8601)"}, _p("page"), _p("per_page"),
    ]
    audit_params = [
        _param("action", "query", {"type": "string"}, "one action (`user.update`), or every action starting "
                                                      "with a prefix ending in `.` (`login.`)"),
        _param("actor", "query", {"type": "string"}, "who (a user name, `cli:<os user>`)"),
        {**_p("start"), "description": "at or after (ISO 8601)"},
        {**_p("end"), "description": "at or before (ISO 8601)"},
    ]
    paths: dict[str, Schema] = {
        "/api/me": {
            "get": _op("Who is calling", {"200": _json("the user", _ref("Me")), **_err()}),
            "patch": _op("Change the caller's own settings", {"200": _json("the user", _ref("Me")), **_err(400)},
                         body=_obj({"language": LANGUAGE}),
                         description="`language`: the pages' language for this user (fr, en), or null: the "
                                     "browser's Accept-Language, else the plant's (PLANT_LANGUAGE)."),
        },
        "/api/me/token": {
            "post": _op("Create or rotate the caller's API token", {"200": _json(
                "the token, shown once (only its hash is stored)", _obj({"token": {"type": "string"}})),
                **_err(403)}, description="The previous token stops working."),
            "delete": _op("Revoke the caller's API token", {"200": _json(
                "whether a token was revoked", _obj({"revoked": {"type": "boolean"}})), **_err(403)}),
        },
        "/api/latest": {"get": _op("The plant snapshot the dashboard starts from", {"200": _json(
            "units with their automates' latest readings, meters, device states, active alarms, measures",
            {"type": "object"}), **_err()})},
        "/api/units": {"get": _op("Units and their automates", {"200": _json(
            "all units but the removed ones", _obj({"items": {"type": "array", "items": _ref("Unit")}})),
            **_err(400)}, params=[_p("removed")])},
        "/api/units/{unit}": {"get": _op("One unit", {"200": _json("the unit", _ref("Unit")), **_err(400, 404)},
                                         params=[_p("unit")])},
        "/api/automates": {"get": _op("Every automate with its latest reading", {"200": _json(
            "all automates but those of removed units", _obj({"items": {"type": "array", "items": _ref("Automate")}})),
            **_err(400)}, params=[_p("removed")])},
        "/api/units/{unit}/automates": {"get": _op("The automates of one unit", {"200": _json(
            "its automates", _obj({"items": {"type": "array", "items": _ref("Automate")}})), **_err(400, 404)},
            params=[_p("unit")])},
        "/api/units/{unit}/automates/{automate}": {"get": _op(
            "One automate with its latest reading", {"200": _json("the automate", _ref("Automate")),
                                                     **_err(400, 404)}, params=automate_ids)},
        **_history_paths("/api/units/{unit}/automates/{automate}", "one automate", automate_ids, "ReadingRow",
                         automate_csv),
        "/api/meters": {"get": _op("Power meters with their state and latest sample", {"200": _json(
            "all meters but the removed ones", _obj({"items": {"type": "array", "items": _ref("Meter")}})),
            **_err(400)}, params=[_p("removed")])},
        "/api/meters/{meter}": {"get": _op("One meter", {"200": _json("the meter", _ref("Meter")),
                                                         **_err(400, 404)}, params=[_p("meter")])},
        **_history_paths("/api/meters/{meter}", "one meter", [_p("meter")], "PowerRow", meter_csv),
        **_switch_paths(),
        "/api/alarms": {"get": _op("Alarm history, newest raised first", {"200": _json(
            "a page of alarms", _page_of(_ref("Alarm"))), **_err(400, 404)}, params=alarm_params)},
        "/api/alarms.csv": {"get": _op(
            "Alarm history (every match, newest raised first) as a streamed CSV download",
            {"200": {"description": "CSV with header `id,source,name,measure,severity,bound,value,limit,last_value,"
                                    "state,raised_at,cleared_at,acknowledged_at,acknowledged_by,ack_note,"
                                    "ack_disposition,detail`",
                     "content": {"text/csv": {"schema": {"type": "string"}}}}, **_err(400, 404)},
            params=[*alarm_params[:-2], _p("format")])},
        "/api/alarms/{alarm_id}/ack": {"post": {**_op(
            "Acknowledge an alarm, with the corrective action",
            {"200": _json("the acknowledged alarm", _ref("Alarm")), **_err(400, 403, 404, 409)},
            params=[_param("alarm_id", "path", {"type": "integer"}, "the alarm's id")], role="operator",
            description="A **critical** alarm needs `note` (the corrective action taken: not blank, at most 2000 "
                        "printable characters, new lines allowed) and `disposition` (what becomes of the product: "
                        "`hold`, `release` or `none`), else 400; for warnings and info both are optional and the "
                        "body may be empty or absent. Unknown fields are a 400. 409 when it was already "
                        "acknowledged (the message says by whom and when). Every browser receives the updated "
                        "alarm on its Socket.IO `alarm` event; the audit trail records who, the note and the "
                        "disposition."),
            "requestBody": {"required": False, "content": {"application/json": {"schema": _obj({
                "note": {"type": "string", "maxLength": 2000},
                "disposition": {"type": "string", "enum": ["hold", "release", "none"]}}, required=[])}}}}},
        "/api/audit": {"get": _op(
            "The audit trail, newest first", {"200": _json("a page of entries", _page_of(_ref("AuditEntry"))),
                                              **_err(400, 403, 404)},
            params=[*audit_params, _p("page"), _p("per_page")], role="admin",
            description="Log-ins (and failures, lock-outs), acknowledgements, threshold, user, device and token "
                        "changes, remote switching. Each entry carries the SHA-256 of the previous one: "
                        "`python -m store audit verify` detects an edited, inserted or deleted entry.")},
        "/api/rejected": {"get": _op(
            "Messages the bridge rejected, newest first", {"200": _json("a page of rejected messages", _page_of(_obj({
                "id": {"type": "integer"}, "received_at": {"type": "string", "format": "date-time"},
                "source": _nullable({"type": "string", "description": "the device the topic names",
                                     "examples": ["units/1/automates/2", "meters/shellypro1pm-a8032ab1c2d3"]}),
                "topic": {"type": "string"}, "reason": {"type": "string"},
                "payload": {"type": "string", "description": "as received (device text: show it as text), "
                                                             "truncated, undecodable bytes escaped"},
                "payload_bytes": {"type": "integer", "description": "size received"}}))), **_err(400, 403, 404)},
            params=[_param("source", "query", {"type": "string"}, "one source, or a unit (`units/3`: it and its "
                                                                   "automates)"),
                    _param("reason", "query", {"type": "string"}, "the reason contains this text"),
                    {**_p("start"), "description": "received at or after (ISO 8601)"},
                    {**_p("end"), "description": "received at or before (ISO 8601)"}, _p("page"), _p("per_page")],
            role="admin",
            description="A source whose messages keep being rejected raises a `probe_fault` alarm carrying the "
                        "last reason (its `detail`).")},
        "/api/health": {"get": _op(
            "Every service's health: this web server, each bridge, the notifier",
            {"200": _json("the services", _obj({
                "ok": {"type": "boolean", "description": "every service healthy, and at least one bridge reports"},
                "ts": {"type": "string", "format": "date-time"},
                "services": {"type": "array", "items": _obj({
                    "service": {"type": "string", "enum": ["webui", "bridge", "notifier"]},
                    "instance": {"type": "string", "description": "host/pid, a bridge's MQTT user, or `outbox`"},
                    "ts": {"type": "string", "format": "date-time", "description": "when it was measured"},
                    "ok": {"type": "boolean"},
                    "stale": {"type": "boolean", "description": "a bridge's report older than 3 of its periods"},
                    "age_s": _nullable({"type": "number"}),
                    "checks": {"type": "object", "additionalProperties": _obj({
                        "ok": _nullable({"type": "boolean"}), "detail": {"type": "string"}})},
                    "values": {"type": "object", "additionalProperties": _nullable({"type": "number"}),
                               "description": "ingest_lag_s, last_commit_age_s, queue_depth, pending, "
                                              "oldest_pending_s, failed_24h…"}})}})), **_err(400, 403)},
            role="admin",
            description="A bridge reports (retained, on MQTT) whether its broker and database answer and how long "
                        "the oldest received message has waited for its commit; the notifier is judged by its "
                        "outbox (a notification pending over 15 min). The services page shows this.")},
        "/api/audit.csv": {"get": _op(
            "The audit trail (every match, newest first) as a streamed CSV download",
            {"200": {"description": "CSV with header `id,at,actor,address,action,details,hash`",
                     "content": {"text/csv": {"schema": {"type": "string"}}}}, **_err(400, 403)},
            params=[*audit_params, _p("format")], role="admin")},
        "/api/thresholds": {
            "get": _op("Every threshold (defaults `*` first)", {"200": _json(
                "all thresholds", _obj({"items": {"type": "array", "items": _ref("Threshold")}})), **_err(400)}),
            "put": _op("Create or replace the threshold of (scope, measure)", {
                "200": _json("replaced", _ref("Threshold")), "201": _json("created", _ref("Threshold")),
                **_err(400, 403), "409": _json("needs `\"confirm\": true`: the message says which limit would "
                                               "be removed or widened", _ref("ThresholdConfirm"))},
                body=_ref("ThresholdInput"), role="admin",
                description="A limit left out is inherited live from the wider scope; `null` is no limit. "
                            "Removing a limit that applies or widening one past the measure's normal range "
                            "needs `\"confirm\": true`, else 409. "
                            "Validated like the bridge's thresholds (low <= high, measure valid for the "
                            "scope); audited. The bridge applies it within seconds."),
            "delete": _op("Remove a threshold (the scope inherits the wider one again)", {
                "200": _json("the removed threshold", _obj({"deleted": _ref("Threshold")})),
                **_err(400, 403, 404), "409": _json("needs `confirm=true`", _ref("ThresholdConfirm"))},
                role="admin",
                params=[_param("scope", "query", {"type": "string"}, "not `*`", required=True),
                        _param("measure", "query", {"type": "string", "enum": list(MEASURES)}, "",
                               required=True),
                        _param("confirm", "query", {"type": "string", "enum": ["true", "false"]},
                               "`true` when the removal drops or widens a limit (else 409)")]),
        },
        "/api/thresholds/effective": {"get": _op(
            "What applies at a scope, per measure, and where each value comes from", {"200": _json(
                "`effective`: what applies at the scope; `inherited`: what the wider scopes alone give "
                "(what a field left out of PUT means)",
                _obj({"scope": {"type": "string"}, "chain": {"type": "array", "items": {"type": "string"},
                                                              "description": "the scope, then the wider ones"},
                      "items": {"type": "array", "items": _ref("EffectiveThreshold")}})), **_err(400)},
            params=[_param("scope", "query", {"type": "string"}, "*, units/N, units/N/automates/M or meters/<id>",
                           required=True),
                    _param("measure", "query", {"type": "string", "enum": list(MEASURES)}, "only this one")])},
        "/api/thresholds/changes": {"get": _op("Audit trail of threshold changes, newest first", {
            "200": _json("a page of changes", _page_of(_ref("ThresholdChange"))), **_err(400, 404)},
            params=[_p("page"), _p("per_page")])},
        "/api/devices": {"get": _op("The device registry: every unit and meter", {"200": _json(
            "units by number, then meters; removed ones included",
            _obj({"items": {"type": "array", "items": _ref("Device")}})), **_err(400)})},
        "/api/devices/{device}": {
            "get": _op("One device of the registry", {"200": _json("the device", _ref("Device")),
                                                      **_err(400, 404)}, params=[_p("device")]),
            "patch": _op("Name, disable or enable a device", {
                "200": _json("the device", _ref("Device")),
                "201": _json("registered: the device was not in the registry yet", _ref("Device")),
                **_err(400, 403, 404)}, params=[_p("device")], body=_ref("DeviceInput"), role="admin",
                description="Send `name` and/or `disabled`. A device the bridge has not heard from yet is "
                            "registered (named or disabled before it connects). The bridge rejects a disabled "
                            "device's data with a reason. Audited."),
        },
        "/api/devices/{device}/remove": {"post": _op(
            "Remove a device: hide it from the lists", {"200": _json("the device", _ref("Device")),
                                                        **_err(400, 403, 404)},
            params=[_p("device")], role="admin",
            description="Its readings, alarms and audit stay. The lists (`/api/units`, `/api/meters`, the "
                        "overview) leave it out unless asked with `removed=1`. Removed again when removed: "
                        "no change. The bridge restores a removed device it hears from again. Audited.")},
        "/api/devices/{device}/restore": {"post": _op(
            "Restore a removed device to the lists", {"200": _json("the device", _ref("Device")),
                                                      **_err(400, 403, 404)},
            params=[_p("device")], role="admin", description="Audited.")},
        "/api/users": {
            "get": _op("Users", {"200": _json("all users", _obj({"items": {"type": "array",
                                                                          "items": _ref("User")}})),
                                 **_err(403)}, role="admin"),
            "post": _op("Create a user", {"201": _json("the new user", _ref("User")), **_err(400, 403, 409)},
                        role="admin", body=_obj({"username": {"type": "string"},
                                                 "password": {"type": "string", "minLength": 8},
                                                 "role": {"type": "string", "enum": list(ROLES)},
                                                 "language": LANGUAGE}, required=["username", "password", "role"])),
        },
        "/api/users/{username}": {
            "patch": _op("Change a user's role, password and/or language", {"200": _json("the user", _ref("User")),
                                                                  **_err(400, 403, 404, 409)},
                         role="admin", params=[_param("username", "path", {"type": "string"}, "")],
                         body=_obj({"role": {"type": "string", "enum": list(ROLES)},
                                    "password": {"type": "string", "minLength": 8},
                                    "language": LANGUAGE}, required=[]),
                         description="409 when it would leave no admin."),
            "delete": _op("Delete a user", {"200": _json("the deleted user", _obj({"deleted": _ref("User")})),
                                            **_err(403, 404, 409)},
                          role="admin", params=[_param("username", "path", {"type": "string"}, "")],
                          description="409 for your own account or the last admin."),
        },
        "/api/measurements/": {"get": _op(
            "Legacy Shelly collector API: meter measurements, newest first, 100 per page", {"200": _json(
                "Django REST Framework page", _obj({
                    "count": {"type": "integer"}, "next": _nullable({"type": "string", "format": "uri"}),
                    "previous": _nullable({"type": "string", "format": "uri"}),
                    "results": {"type": "array", "items": _ref("Measurement")}})), **_err(400, 404)},
            params=[_p("page"), _p("start"), _p("end"),
                    _param("meter", "query", {"type": "string"}, "one meter (404 if unknown)")])},
        "/api/measurements/latest/": {"get": _op(
            "Legacy Shelly collector API: the last 10 measurements, newest first", {"200": _json(
                "up to 10 measurements", {"type": "array", "items": _ref("Measurement"), "maxItems": 10}),
                **_err(400, 404)},
            params=[_param("meter", "query", {"type": "string"}, "one meter (404 if unknown)"),
                    _p("start"), _p("end")])},
        **_device_token_paths(),
        **_notification_paths(),
        "/api/openapi.json": {"get": _op("This document", {"200": _json("OpenAPI 3.1", {"type": "object"}),
                                                           **_err(400)})},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Au Bon Beurre plant telemetry API",
            "version": "1.0",
            "description": (
                "Read the plant's units, automates, meters, readings and alarms; acknowledge alarms "
                "(operator); edit thresholds and users (admin). Authenticate with the web UI's session "
                "cookie (then state-changing requests need the page's `X-CSRF-Token` header) or with "
                "`Authorization: Bearer <token>` (create one with `POST /api/me/token`). Times are ISO 8601 "
                "UTC with milliseconds; chart series use epoch milliseconds. Errors are "
                "`{\"error\": \"...\", \"status\": N}`: 400 bad or unknown parameter, 401 not logged in, "
                "403 role too low or CSRF missing, 404 unknown id or page past the end, 409 conflict."),
        },
        "servers": [{"url": request.host_url.rstrip("/")}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": paths,
        # Not under /api (the original collectors' URLs) and authenticated by device tokens, not users.
        "x-legacy-ingest": _ingest_paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API token (abb_...)"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session",
                               "description": "log in at /login; writes need the X-CSRF-Token header"},
            },
            "schemas": _schemas(),
            "parameters": _parameters(),
            "responses": {
                "BadRequest": _json("a bad, unknown or repeated parameter or body field", _ref("Error")),
                "Unauthorized": _json("not logged in: no session cookie and no valid token", _ref("Error")),
                "Forbidden": _json("the role is too low, or the CSRF header is missing", _ref("Error")),
                "NotFound": _json("unknown id, or a page past the end", _ref("Error")),
                "Conflict": _json("the change conflicts with the current state", _ref("Error")),
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    query(())
    return jsonify(openapi_document())
