from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plantmodel.envconf import env_float, env_int, env_str, layout_from_env
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings
from store.claim import claim_candidates
from store.db import Host, database_url_from_env, failover_hosts_from_env
from store.retention import DEFAULT_RAW_DAYS, raw_days_from_env


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    database_url: str
    # DATABASE_FAILOVER_HOSTS: more MariaDB (Galera) nodes, tried in order after the URL's host.
    database_failover_hosts: tuple[Host, ...] = ()
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    topic_root: str = "plant"
    batch_size: int = 500  # rows per transaction (executemany in 500s: ~20x one-row commits)
    # s to wait for a batch to fill before writing what we have. Short: under load the queue fills
    # while the previous batch commits, and at a steady rate the wait is most of a reading's
    # publish -> commit time.
    batch_wait: float = 0.05
    thresholds_poll: float = 2.0  # s between checks for edited thresholds
    # s a device's clock may run ahead of ours before its message is rejected. Small: a reading
    # stamped in the future would otherwise pose as the latest one.
    max_future_skew: float = 300.0
    rpc_retry: float = 30.0  # s before asking a silent meter for its status again
    gap_timeout: float = 300.0  # s a gap in a unit's seq may stay open before it is declared lost
    status_refresh: float = 300.0  # s between full-status requests to each online meter
    # MQTT shared subscription group: bridges in one group share the stream (each message goes to
    # one of them). Empty: a plain subscription (every bridge gets everything).
    share_group: str = "bridges"
    # (k, n): this bridge takes partition k of n (units and meters dealt by number); None: all.
    partition: tuple[int, int] | None = None
    layout: PlantLayout = field(default_factory=PlantLayout)  # what the partitions divide
    metrics_host: str = "127.0.0.1"  # Prometheus endpoint; no authentication, so loopback by default
    metrics_port: int = 9108  # 0: no endpoint
    # No-data / probe-fault timer: an automate's report period and a meter's (no valid message for
    # N of them raises "no data", N being the no_data threshold), and how often the timer looks.
    report_period: float = 60.0
    meter_period: float = 60.0
    health_tick: float = 5.0
    # The bridge's own health (``python -m bridge health``, /healthz on the metrics port, and the
    # retained <root>/bridge/health/<user> the services page reads): how often it is published, and
    # how long a received message may wait for its commit before the bridge calls itself unhealthy.
    health_report: float = 15.0
    max_ingest_lag: float = 60.0
    # RETENTION_RAW_DAYS, as the retention job reads it: older readings and samples are rejected.
    retention_raw_days: int = DEFAULT_RAW_DAYS
    # BRIDGE_CLAIM_USER=1: (user, password) of each bridge user of the credentials file, one of which
    # this bridge claims at start (bridge/claim.py; compose's --scale bridge=N). Empty: MQTT_USERNAME.
    claim_from: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.claim_from and self.database_failover_hosts:
            # Named locks live on one Galera node: after a failover two bridges could each hold the
            # same user on different nodes, and keep disconnecting each other.
            raise ValidationError("BRIDGE_CLAIM_USER=1 cannot be used with DATABASE_FAILOVER_HOSTS (a claim is held "
                                  "on one Galera node only): give each bridge its MQTT_USERNAME")

    def partition_of(self) -> tuple[list[int], list[str]]:
        """The units and meters of this bridge's partition (all without one)."""
        units = list(range(1, self.layout.units + 1))
        meters = list(self.layout.meters)
        if self.partition is None:
            return units, meters
        k, n = self.partition
        return [u for u in units if (u - 1) % n == k - 1], [m for i, m in enumerate(meters) if i % n == k - 1]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BridgeSettings:
        """Besides the database (``DATABASE_URL``, ``DATABASE_FAILOVER_HOSTS``), MQTT and layout settings:
        ``BRIDGE_BATCH_SIZE``, ``BRIDGE_BATCH_WAIT``,
        ``BRIDGE_THRESHOLDS_POLL``, ``BRIDGE_MAX_FUTURE_SKEW``, ``BRIDGE_RPC_RETRY``, ``BRIDGE_GAP_TIMEOUT``,
        ``BRIDGE_STATUS_REFRESH``, ``BRIDGE_SHARE_GROUP``, ``BRIDGE_PARTITION``, ``BRIDGE_METRICS_HOST``/``PORT``,
        and for the no-data / probe-fault timer:

        - ``BRIDGE_REPORT_PERIOD`` (s, default 60): an automate's report period, the unit of ``no_data``;
        - ``BRIDGE_METER_PERIOD`` (s, default 60): a meter's period; the bridge also asks each online
          Gen2 meter for its full status at least this often (it sends nothing on a steady load);
        - ``BRIDGE_HEALTH_TICK`` (s, default 5): how often the timer evaluates every expected source.

        The bridge's own health: ``BRIDGE_HEALTH_REPORT`` (s, default 15) between two retained
        reports on MQTT; ``BRIDGE_MAX_INGEST_LAG`` (s, default 60): unhealthy when a received message
        has waited longer than that for its commit.

        ``BRIDGE_CLAIM_USER`` (0): 1 = take the first free bridge user of ``MQTT_CREDENTIALS_FILE``
        instead of ``MQTT_USERNAME`` (identical containers, ``--scale bridge=N``; MariaDB only).

        And ``RETENTION_RAW_DAYS`` (days, default 730, see :mod:`store.retention`): a reading or power
        sample whose device time is older than that is rejected.
        """
        return cls(
            database_url=database_url_from_env(env),
            database_failover_hosts=failover_hosts_from_env(env),
            mqtt=MqttSettings.from_env(env, default_user="bridge"),
            topic_root=env_str(env, "PLANT_TOPIC_ROOT", "plant"),
            batch_size=env_int(env, "BRIDGE_BATCH_SIZE", 500, minimum=1),
            batch_wait=env_float(env, "BRIDGE_BATCH_WAIT", 0.05),
            thresholds_poll=env_float(env, "BRIDGE_THRESHOLDS_POLL", 2.0, minimum=0.1),
            max_future_skew=env_float(env, "BRIDGE_MAX_FUTURE_SKEW", 300.0),
            rpc_retry=env_float(env, "BRIDGE_RPC_RETRY", 30.0, minimum=1.0),
            gap_timeout=env_float(env, "BRIDGE_GAP_TIMEOUT", 300.0, minimum=1.0),
            status_refresh=env_float(env, "BRIDGE_STATUS_REFRESH", 300.0, minimum=1.0),
            share_group=check_share_group(env.get("BRIDGE_SHARE_GROUP", "bridges").strip()),
            partition=partition_with_layout(env),
            layout=layout_from_env(env),
            metrics_host=env_str(env, "BRIDGE_METRICS_HOST", "127.0.0.1"),
            metrics_port=env_int(env, "BRIDGE_METRICS_PORT", 9108, minimum=0),
            report_period=env_float(env, "BRIDGE_REPORT_PERIOD", 60.0, minimum=0.01),
            meter_period=env_float(env, "BRIDGE_METER_PERIOD", 60.0, minimum=0.01),
            health_tick=env_float(env, "BRIDGE_HEALTH_TICK", 5.0, minimum=0.05),
            health_report=env_float(env, "BRIDGE_HEALTH_REPORT", 15.0, minimum=0.1),
            max_ingest_lag=env_float(env, "BRIDGE_MAX_INGEST_LAG", 60.0, minimum=1.0),
            retention_raw_days=raw_days_from_env(env),
            claim_from=claim_candidates(env, "BRIDGE_CLAIM_USER", "bridge"),
        )


def parse_partition(text: str) -> tuple[int, int] | None:
    """``BRIDGE_PARTITION``: ``k/n`` (1 <= k <= n), or empty for none."""
    text = text.strip()
    if not text:
        return None
    k, sep, n = text.partition("/")
    if not sep or not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise ValidationError(f"BRIDGE_PARTITION={text!r}: write k/n with 1 <= k <= n, e.g. 1/2")
    return (int(k), int(n))


def partition_with_layout(env: Mapping[str, str]) -> tuple[int, int] | None:
    """A partition is only as good as the layout it divides: a unit or meter the bridges do not
    know would match no subscription, and the broker drops what no one subscribes to."""
    partition = parse_partition(env.get("BRIDGE_PARTITION", ""))
    if partition is not None:
        missing = [name for name in ("PLANT_UNITS",) if not env.get(name, "").strip()]
        if not (env.get("PLANT_METERS", "").strip() or env.get("PLANT_METER_COUNT", "").strip()):
            missing.append("PLANT_METERS")
        if missing:
            raise ValidationError(f"BRIDGE_PARTITION needs the plant's layout set explicitly, as for the broker: "
                                  f"{', '.join(missing)}")
    return partition


def check_share_group(group: str) -> str:
    """A shared subscription's group is one topic level: no '/', '+', '#'."""
    if any(c in group for c in "/+#") or not group.isprintable():
        raise ValidationError(f"BRIDGE_SHARE_GROUP {group!r}: one topic level, without '/', '+' or '#'")
    return group
