"""The README's demo command (after its install steps): `python -m stack`."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.processes import Service, wait_for
from tests.servers import free_port

pytestmark = pytest.mark.integration


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


def test_demo_stack_runs_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    web_port, mqtt_port, tls_port = free_port(), free_port(), free_port()
    var = tmp_path / "var"
    stack = Service("stack", ["stack", "--progress", "2"],
                    {"PLANT_VAR_DIR": str(var), "MQTT_PORT": str(mqtt_port), "WEBUI_PORT": str(web_port),
                     "BROKER_TLS_PORT": str(tls_port), "DATABASE_URL": f"sqlite:///{var / 'plant.db'}"}, tmp_path)
    try:
        wait_for(lambda: "Press Ctrl-C" in stack.log(), 60, "the banner", services=[stack])
        log = stack.log()
        assert f"http://127.0.0.1:{web_port}/" in log
        sub_line = re.search(r"mosquitto_sub -h 127.0.0.1 -p (\d+) -u debug -P '([^']+)' -v -t '#'", log)
        assert sub_line and int(sub_line.group(1)) == mqtt_port
        assert f"MQTT TLS:    127.0.0.1:{tls_port}" in log
        pids = [int(p) for p in re.findall(r"started \w+ +pid (\d+)", log)]
        assert len(pids) == 5  # broker, bridge, webui, notifier, devices

        engine = create_db_engine(f"sqlite:///{var / 'plant.db'}")

        def everything_reporting() -> bool:
            with make_sessionmaker(engine)() as s:
                automates = s.execute(select(orm.Reading.unit_id, orm.Reading.automate_no).distinct()).all()
                meters = s.scalar(select(func.count(func.distinct(orm.PowerReading.meter_id))))
            return len(automates) == 50 and meters == 2

        # The bar: within 30 s of the command, all 50 automates and every meter are stored.
        wait_for(everything_reporting, 30, "readings from 50 automates and 2 meters", services=[stack])
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=5) as page:
            assert page.status == 200
        engine.dispose()
        # As deployed, the services went over TLS, having verified the demo CA's certificate.
        logs = var / "logs"
        assert f"connected to mqtts://127.0.0.1:{tls_port}" in (logs / "bridge.log").read_text()
        assert f"connected to mqtts://127.0.0.1:{tls_port}" in (logs / "devices.log").read_text()
    finally:
        code = stack.stop(signal.SIGINT, timeout=60)
    assert code == 0, stack.log()[-3000:]
    assert [p for p in pids if pid_alive(p)] == []
    assert "stopped broker" in stack.log()
