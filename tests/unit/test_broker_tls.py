"""Development certificates (`python -m broker certs`) and the clients' TLS settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from broker.tls import DEFAULT_NAMES, TlsFiles, check_names, generate
from plantmodel.errors import ValidationError
from plantmodel.mqtt import MqttSettings, tls_context


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName), *(str(i) for i in san.get_values_for_type(x509.IPAddress))}


def test_a_ca_and_a_server_certificate_it_signed(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    result = generate(files, ("mosquitto", "localhost", "10.0.0.5"))
    assert result.ca_created and result.server_issued
    ca, server = _cert(files.ca_cert), _cert(files.server_cert)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _names(server) == {"mosquitto", "localhost", "10.0.0.5"}
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]  # an IP entry, not DNS
    # Private keys readable by the owner only; the folder too.
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    # Python's own verifier (what every client of ours uses) accepts the pair.
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    ctx.load_cert_chain(files.server_cert, files.server_key)


def test_running_again_keeps_the_ca_and_reissues_only_when_needed(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    generate(files, DEFAULT_NAMES)
    ca, server = files.ca_cert.read_bytes(), files.server_cert.read_bytes()

    again = generate(files, DEFAULT_NAMES)
    assert not again.ca_created and not again.server_issued
    assert files.server_cert.read_bytes() == server

    renamed = generate(files, ("mosquitto", *DEFAULT_NAMES))
    assert renamed.server_issued and "host names changed" in renamed.reason
    assert files.ca_cert.read_bytes() == ca  # clients keep trusting the same CA
    assert "mosquitto" in _names(_cert(files.server_cert))

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=800)  # within 30 days of the 825-day expiry
    expiring = generate(files, ("mosquitto", *DEFAULT_NAMES), now=later)
    assert expiring.server_issued and "expires" in expiring.reason
    assert generate(files, ("mosquitto", *DEFAULT_NAMES), force=True).server_issued
    assert files.ca_cert.read_bytes() == ca


def test_a_lost_ca_key_is_an_error_not_a_silent_new_ca(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    generate(files)
    files.ca_key.unlink()
    with pytest.raises(ValidationError, match=r"ca\.key is missing"):
        generate(files)


def test_host_names_are_checked() -> None:
    assert check_names([" Mosquitto ", "mosquitto", "::0001"]) == ("mosquitto", "::1")
    for bad in ([""], ["two words"], ["a/b"]):
        with pytest.raises(ValidationError):
            check_names(bad)


def test_clients_settings_for_tls(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    generate(files)
    plain = MqttSettings.link_from_env({})
    assert (plain.tls, plain.port) == (False, 1883)
    tls = MqttSettings.from_env({"MQTT_TLS": "1", "MQTT_CA_FILE": str(files.ca_cert), "MQTT_PASSWORD": "x"},
                                default_user="bridge")
    assert (tls.tls, tls.port, tls.ca_file, tls.username) == (True, 8883, files.ca_cert, "bridge")
    assert tls.describe() == "mqtts://127.0.0.1:8883"
    ctx = tls_context(tls)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    # Mistakes are refused at start, naming the variable.
    for env, message in (({"MQTT_TLS": "yes"}, "MQTT_TLS"),
                         ({"MQTT_TLS": "1", "MQTT_CA_FILE": str(tmp_path / "nope.crt")}, "does not exist"),
                         ({"MQTT_TLS": "1", "MQTT_CA_FILE": str(files.server_key)}, "not a readable PEM"),
                         ({"MQTT_CA_FILE": str(files.ca_cert)}, "MQTT_TLS is not 1")):
        with pytest.raises(ValidationError, match=message):
            MqttSettings.link_from_env(env)
