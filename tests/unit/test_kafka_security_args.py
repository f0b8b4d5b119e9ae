"""What the Kafka clients are given for a secured cluster (the SASL path runs for real in tests/infra)."""

from __future__ import annotations

import ssl

import certifi
import pytest

from tracker.kafka import security_args
from tracker.settings import Settings, SettingsError


def test_plain_text_by_default():
    assert security_args(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_verifies_the_brokers_against_the_given_ca_and_sends_the_credentials():
    args = security_args(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="tracker",
            kafka_sasl_password="pw",
            kafka_ssl_cafile=certifi.where(),
        )
    )
    context = args["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # the bundle was loaded
    assert (args["security_protocol"], args["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (args["sasl_plain_username"], args["sasl_plain_password"]) == ("tracker", "pw")


def test_a_missing_ca_file_is_a_settings_error_naming_it(tmp_path):
    with pytest.raises(SettingsError, match=r"kafka_ssl_cafile .* is not a readable file"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "ca.pem")).checked()


def test_an_unknown_mechanism_is_a_settings_error():
    with pytest.raises(SettingsError, match="must be one of"):
        Settings.from_env({"KAFKA_SASL_MECHANISM": "GSSAPI"})
