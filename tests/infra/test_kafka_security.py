"""The product's Kafka clients against a cluster that authenticates (SASL PLAIN on the embedded Apache Kafka).

One cluster for the module: the right credentials create the topics and carry a ping through a producer and
a reader; a wrong password is refused before anything is produced, with the broker's reason.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka.errors import KafkaError

from tests.infra.infra_helpers import require_java
from tracker.kafka import Consumer, Producer, ensure_topics
from tracker.local.apache_kafka import ApacheKafkaCluster
from tracker.models import OutRecord
from tracker.settings import Settings, SettingsError

pytestmark = pytest.mark.apache_kafka

PASSWORD = "tracker-secret-1"


@pytest.fixture(scope="module")
def sasl_cluster():
    require_java()
    with ApacheKafkaCluster(nodes=1, sasl_users={"tracker": PASSWORD}) as cluster:
        yield cluster


def sasl_settings(cluster: ApacheKafkaCluster, password: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=cluster.sasl_bootstrap_servers,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="tracker",
        kafka_sasl_password=password,
        namespace=f"t{uuid.uuid4().hex[:8]}.",
        replication_factor=1,
    )


async def test_a_ping_travels_through_a_sasl_listener(sasl_cluster):
    settings = sasl_settings(sasl_cluster, PASSWORD)
    await ensure_topics(settings)
    async with Producer(settings) as producer:
        futures = await producer.send_many(
            settings.location_topic, [OutRecord(key=b"c1", value=b'{"partner_id":"c1"}', headers=())]
        )
        for future in futures:
            await future
    consumer = Consumer(settings, [settings.location_topic], group_id=None, start="earliest")
    await consumer.start()
    try:
        seen: list[bytes | None] = []
        for _ in range(40):
            for records in (await consumer.poll(timeout_ms=250)).values():
                seen += [record.value for record in records]
            if seen:
                break
        assert seen == [b'{"partner_id":"c1"}']
    finally:
        await consumer.stop()


async def test_a_wrong_password_is_refused_by_the_broker(sasl_cluster, caplog):
    producer = Producer(sasl_settings(sasl_cluster, "not-the-password"))
    with pytest.raises(KafkaError, match="KAFKA_SECURITY_PROTOCOL") as refused:
        await producer.start()
    assert "IDEMPOTENCE" not in str(refused.value)  # it is not about idempotence: say what it is about
    assert "Invalid username or password" in caplog.text


def test_sasl_without_credentials_is_a_settings_error():
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL").checked()
