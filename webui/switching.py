"""Remote switching of a Shelly meter's output, waiting for the device's own answer.

:class:`Switcher` publishes through a seam (``LiveFeed.publish`` in the app) and learns the answers
from :meth:`Switcher.handle`, one of the live feed's listeners (called on paho's thread for every
message). Each request has its own waiter (a :class:`threading.Event`) that the requesting thread
waits on for at most ``timeout`` seconds; nothing else blocks.

Gen2 (Pro 1PM, and Gen3/Gen4): ``{"id": <n>, "src": "<meter>/webui", "method": "Switch.Set",
"params": {"id": 0, "on": true}}`` on ``<meter>/rpc``; the device answers on ``<meter>/webui/rpc``
with the same id, ``{"result": {"was_on": false}}`` or ``{"error": {"code", "message"}}``. The ids
are random 31-bit numbers, never reused by this process, so another web UI's answers on the same
topic (its ids are its own random ones) are not taken for ours.

Gen1 (1PM): ``on`` / ``off`` on ``shellies/<meter>/relay/0/command``; the device publishes its relay
state on ``shellies/<meter>/relay/0`` at once. The first such state equal to the wanted one confirms
the switch; another state (a periodic report already on its way) is remembered, not taken as the
answer. Gen1 has no error answer: a device that ignores the command times out.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps
from plantmodel.readings import utcnow
from plantmodel.shelly import RpcResponse, parse_rpc_frame, request
from plantmodel.sources import check_meter_id
from plantmodel.text import printable
from plantmodel.topics import GEN1_ROOT, WEBUI_RPC_SUFFIX, Topics

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
MAX_ID = 2**31 - 1  # JSON-RPC ids stay within a signed 32-bit integer on the device
DETAIL_MAX = 255  # switch_actions.detail
ON, OFF = "on", "off"
_GEN2_REPLY = f"/{WEBUI_RPC_SUFFIX}/rpc"
_GEN1_RELAY = "relay/0"

Publish = Callable[[str, str], object]  # (topic, payload); raises when nothing could be sent


def state_name(on: bool | None) -> str | None:
    return None if on is None else ON if on else OFF


@dataclass(frozen=True, slots=True)
class SwitchAnswer:
    """What became of one switch request."""

    outcome: str  # confirmed | error | timeout
    on: bool  # the state asked for
    was_on: bool | None  # Gen2: the device's ``was_on`` (authoritative); Gen1 and no answer: None
    answered_at: datetime | None  # when the answer arrived (server clock): neither generation says
    detail: str  # the device's answer or error, or why there is none (fits switch_actions.detail)
    code: int | None = None  # the Gen2 error code


class _Waiter:
    __slots__ = ("answer", "event", "meter", "on", "seen")

    def __init__(self, meter: str, on: bool) -> None:
        self.meter = meter
        self.on = on
        self.event = threading.Event()
        self.answer: SwitchAnswer | None = None
        self.seen: bool | None = None  # Gen1: another relay state reported meanwhile


class Switcher:
    """Sends switch requests and matches the devices' answers to them (thread-safe).

    ``publish(topic, payload)`` sends at QoS 1 (it raises, e.g. ``MqttUnavailable``, when it cannot);
    ``clock`` stamps the answers; ``new_id`` draws a Gen2 request id (random by default).
    """

    def __init__(self, publish: Publish, *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], datetime] = utcnow, new_id: Callable[[], int] | None = None) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        self.publish = publish  # the seam: tests and the app may replace it
        self.timeout = timeout
        self.clock = clock
        self._new_id = new_id or (lambda: secrets.randbelow(MAX_ID) + 1)
        self._lock = threading.Lock()
        self._gen2: dict[int, _Waiter] = {}  # request id -> waiter
        self._gen1: dict[str, list[_Waiter]] = {}  # meter -> waiters
        self._used: set[int] = set()  # every id this process sent: never reused
        self._relay: dict[str, bool] = {}  # Gen1: the relay state last reported per meter

    # -- requests (the web request's thread) --------------------------------------------------------
    def switch(self, meter: str, on: bool, *, generation: int | None = None) -> SwitchAnswer:
        """Switch ``meter``'s output and wait for the device's answer (at most ``timeout`` s).
        ``generation`` 1 is the Gen1 API; anything else (None: not known) the Gen2 RPC."""
        check_meter_id(meter)
        if generation == 1:
            return self._switch_gen1(meter, on)
        return self._switch_gen2(meter, on)

    def relay_state(self, meter: str) -> bool | None:
        """A Gen1 meter's relay state as it last reported it (None: nothing seen since start)."""
        with self._lock:
            return self._relay.get(meter)

    @property
    def waiting(self) -> int:
        """Requests waiting for an answer now."""
        with self._lock:
            return len(self._gen2) + sum(len(w) for w in self._gen1.values())

    def _switch_gen2(self, meter: str, on: bool) -> SwitchAnswer:
        waiter = _Waiter(meter, on)
        with self._lock:
            req_id = self._draw_id()
            self._gen2[req_id] = waiter
        try:
            # Waiting before publishing: an answer can never come before its waiter.
            self.publish(Topics.shelly(meter, "rpc"),
                          request(req_id, Topics.webui_reply_src(meter), "Switch.Set", {"id": 0, "on": on}))
            waiter.event.wait(self.timeout)
        finally:
            with self._lock:
                self._gen2.pop(req_id, None)
                answer = waiter.answer  # read under the lock: an answer may land just after the wait
        if answer is None:
            log.info("switch %s %s: no answer to RPC id %d within %g s", meter, state_name(on), req_id,
                     self.timeout)
            return self._timeout(on, "")
        return answer

    def _switch_gen1(self, meter: str, on: bool) -> SwitchAnswer:
        waiter = _Waiter(meter, on)
        with self._lock:
            self._gen1.setdefault(meter, []).append(waiter)
        try:
            self.publish(Topics.gen1(meter, f"{_GEN1_RELAY}/command"), ON if on else OFF)
            waiter.event.wait(self.timeout)
        finally:
            with self._lock:
                waiters = self._gen1.get(meter, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._gen1.pop(meter, None)
                answer, seen = waiter.answer, waiter.seen
        if answer is None:
            why = "" if seen is None else f"; it reported {state_name(seen)} only"
            return self._timeout(on, why)
        return answer

    def _timeout(self, on: bool, why: str) -> SwitchAnswer:
        return SwitchAnswer("timeout", on, None, None, _detail(f"no answer within {self.timeout:g} s{why}"))

    def _draw_id(self) -> int:
        while True:
            req_id = self._new_id()
            if 1 <= req_id <= MAX_ID and req_id not in self._used:
                self._used.add(req_id)
                return req_id

    # -- answers (paho's thread) ----------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        """A message the live feed received: an answer to one of our requests, or not ours."""
        if topic.startswith(f"{GEN1_ROOT}/"):
            parts = topic.split("/")
            if len(parts) == 4 and "/".join(parts[2:]) == _GEN1_RELAY:
                self._gen1_state(parts[1], payload)
        elif topic.endswith(_GEN2_REPLY):
            meter = topic[: -len(_GEN2_REPLY)]
            if meter and "/" not in meter:
                self._gen2_answer(meter, payload)

    def _gen1_state(self, meter: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if text not in (ON, OFF):
            return  # the device's relay/0 also says "overpower" etc.: not a state
        on = text == ON
        now = self.clock()
        with self._lock:
            self._relay[meter] = on
            for waiter in self._gen1.get(meter, []):
                if waiter.answer is not None:
                    continue
                if waiter.on == on:
                    waiter.answer = SwitchAnswer("confirmed", on, None, now, f"{_GEN1_RELAY} {text}")
                    waiter.event.set()
                else:
                    waiter.seen = on

    def _gen2_answer(self, meter: str, payload: bytes) -> None:
        with self._lock:
            if not self._gen2:
                return  # nobody waits: not worth parsing
        try:
            frame = parse_rpc_frame(payload)
        except ValidationError as exc:
            log.debug("ignoring a malformed answer on %s/webui/rpc: %s", meter, exc.reason)
            return
        # A bool is an int to Python, never an id of ours.
        if not isinstance(frame, RpcResponse) or not isinstance(frame.id, int) or isinstance(frame.id, bool):
            return
        now = self.clock()
        with self._lock:
            waiter = self._gen2.get(frame.id)
            # The topic names the device (its ACL lets it write under its own prefix only).
            if waiter is None or waiter.meter != meter or waiter.answer is not None:
                if frame.id in self._used:
                    log.info("late or misdirected answer on %s/webui/rpc to RPC id %s; ignored", meter, frame.id)
                return
            waiter.answer = _gen2_answer(waiter.on, frame, now)
            waiter.event.set()


def _gen2_answer(on: bool, frame: RpcResponse, now: datetime) -> SwitchAnswer:
    if frame.error is not None:
        code = frame.error.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        message = frame.error.get("message")
        text = str(message) if message is not None else "no message"
        return SwitchAnswer("error", on, None, now, _detail(text if code is None else f"{text} (code {code})"),
                            code)
    result = frame.result or {}
    was_on = result.get("was_on")
    return SwitchAnswer("confirmed", on, was_on if isinstance(was_on, bool) else None, now,
                        _detail(dumps(result)))


def _detail(text: str) -> str:
    """Device text made printable and cut to the audit column."""
    text = printable(text)
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"
