"""RabbitMQ: run credentials log in, a durable queue carries a persistent message, bad passwords fail."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
import requests

pytestmark = pytest.mark.rabbitmq


def test_management_api_with_run_credentials(rabbitmq_service, harness_stack):
    resp = rabbitmq_service.api("overview")
    assert resp.status_code == 200, resp.text[:200]
    version = resp.json()["rabbitmq_version"]
    expected = harness_stack.expected_version("rabbitmq")
    if expected:
        assert version.startswith(expected), f"broker reports {version}, image promises {expected}"


def test_publish_consume_durable_queue(rabbitmq_service):
    queue = f"probe-{secrets.token_hex(4)}"
    body = secrets.token_bytes(32)
    conn = rabbitmq_service.connect()
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue=queue, durable=True)
        channel.basic_publish(exchange="", routing_key=queue, body=body,
                              properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
        info = rabbitmq_service.api(f"queues/{quote(rabbitmq_service.vhost, safe='')}/{queue}").json()
        assert info["durable"] is True
        method, _props, received = channel.basic_get(queue=queue, auto_ack=False)
        assert method is not None, "the published message did not arrive"
        assert received == body
        channel.basic_ack(method.delivery_tag)
        channel.queue_delete(queue=queue)
    finally:
        conn.close()


def test_wrong_password_is_rejected(rabbitmq_service):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        rabbitmq_service.connect(credentials=pika.PlainCredentials(rabbitmq_service.user,
                                                                   rabbitmq_service.password + "x"))
    resp = rabbitmq_service.api("overview")
    assert resp.status_code == 200
    bad = requests.get(f"{rabbitmq_service.management_url(tls=False)}/api/overview",
                       auth=(rabbitmq_service.user, rabbitmq_service.password + "x"), timeout=10)
    assert bad.status_code == 401
