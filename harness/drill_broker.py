"""The broker-loss drill (kind ``broker-loss``, ``rabbitmq-broker-loss``): a durable queue, persistent messages with
publisher confirms, a consumer with manual acknowledgements, and the broker killed mid-publish.

A round, on the drill's own queue ``drill-<hex>``:

1. Preconditions, polled with a deadline: the broker accepts a login; the queue is declared (durable) and the
   consumer registered on it (the broker counts 1 consumer); 100 publishes confirmed and 50 messages delivered.
2. The fault at ``t0``: ``docker-kill`` of the broker's container; the harness starts it again (undo in
   ``finally``). Publisher and consumer reconnect by themselves (looking the published port up again).
3. Figures: ``broker_back_ms`` (t0 -> an AMQP login and the management API answer again), ``client_outage_ms`` (the
   publisher's longest silence between confirms around the fault), ``unconfirmed_lost`` (published, confirm never
   received -- the publisher does not retry them -- and never delivered: allowed, the publisher was not told they
   were safe), ``duplicates`` (deliveries beyond the first of a message: the consumer acknowledges every 25
   deliveries, so what it received but had not acknowledged when the broker died is delivered again -- at least
   once by design, counted and reported, not an error).
4. Invariant (:func:`broker_verdict`): ``confirmed_missing`` = confirmed messages never delivered, after the queue
   was drained (must be 0); a delivered message nobody published is an error too.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika

from harness.drill_kit import (
    METRICS,
    POLL_S,
    RUNNERS,
    DrillError,
    Timeline,
    ensure_running,
    fault_applied,
    ms,
    outage_ms,
    wait_acks,
)
from stack import registry
from stack.drill_ops import BrokerOps, ServiceDrill
from stack.errors import ReadinessTimeout
from stack.waiting import poll

BROKER_METRICS = ("broker_back_ms", "client_outage_ms", "confirmed_missing", "unconfirmed_lost", "duplicates")
BEFORE_FAULT = 100  # confirmed publishes before the fault
DELIVERED_BEFORE = 50  # deliveries before the fault
AFTER = 20  # confirmed publishes after the broker is back
ACK_EVERY = 25
MAX_MESSAGES = 50_000
QUIET_S = 1.0  # the consumer saw nothing for this long and the queue is empty: drained


@dataclass
class BrokerRound:
    round: int
    fault: str
    victim: str
    broker_back_ms: float | None = None
    client_outage_ms: float | None = None
    published: int = 0
    confirmed: int = 0
    unconfirmed: int = 0
    confirmed_missing: int = 0
    unconfirmed_lost: int = 0
    duplicates: int = 0
    redelivered: int = 0
    queue_age_ms: float | None = None  # the queue's declaration -> the fault
    queue_lost: bool = False  # the durable queue did not answer a passive declare after the restart
    publisher_errors: dict[str, int] = field(default_factory=dict)
    consumer_errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_excerpt: list[str] = field(default_factory=list)  # the broker's recovery, warnings and errors, when it failed


def _few(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" … (+{len(numbers) - limit})" if len(numbers) > limit else "")


#: Why a round whose only problem is a lost durable queue is reported as a known failure (xfail), not a pass.
QUEUE_LOST_KNOWN = (
    "RabbitMQ 3.10 lost the durable queue declared about a second before the kill (its restart recovered 0 queues), "
    "with every confirmed message delivered before the kill. Seen here now and then (counts in docs/drills.md); "
    "cause unconfirmed (rabbitmq-server#4563, 'durable queues lost ... under high load', "
    "was fixed after 3.10). The round's figures and problem stay in the run report.")


def only_queue_lost(result: BrokerRound) -> bool:
    """Whether the round's one failure is the lost durable queue (:data:`QUEUE_LOST_KNOWN`): the queue was lost, it
    is the only problem, no confirmed message is missing and the round confirmed enough to mean something. Any
    other problem, or a confirmed message lost, is a failure as before."""
    return (result.queue_lost and len(result.problems) == 1 and result.confirmed_missing == 0
            and result.confirmed > 100)


def broker_verdict(confirmed: set[int], unconfirmed: set[int], deliveries: list[int]) -> tuple[dict[str, int],
                                                                                                list[str]]:
    """Counts and problems once the queue is drained. ``confirmed``: publishes the broker confirmed;
    ``unconfirmed``: publishes without a confirm (connection lost, nack or returned); ``deliveries``: every
    message number the consumer received, duplicates included."""
    received = set(deliveries)
    missing = sorted(confirmed - received)
    counts = {"confirmed_missing": len(missing), "unconfirmed_lost": len(unconfirmed - received),
              "duplicates": len(deliveries) - len(received)}
    problems = []
    if missing:
        problems.append(f"{len(missing)} confirmed message(s) missing after the broker loss: {_few(missing)}")
    strangers = sorted(received - confirmed - unconfirmed)
    if strangers:
        problems.append(f"{len(strangers)} delivered message(s) that were never published: {_few(strangers)}")
    return counts, problems


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a connection the broker's death broke: nothing to keep
        conn.close()


class Publisher(threading.Thread):
    """Numbered persistent messages, each waiting for its confirm; bounded in count and time. A publish whose
    confirm does not come is ``unconfirmed`` (not retried); the publisher reconnects and goes on."""

    def __init__(self, connect: Callable[[], Any], queue: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.connect, self.queue, self.deadline = connect, queue, deadline
        self.timeline = Timeline()
        self.unconfirmed: set[int] = set()
        self.published = 0
        self.stopping = threading.Event()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        conn: Any = None
        channel: Any = None
        seq = 0
        while not self.stopping.is_set() and time.monotonic() < self.deadline and seq < MAX_MESSAGES:
            if channel is None:
                try:
                    conn = self.connect()
                    channel = conn.channel()
                    channel.confirm_delivery()
                except Exception as exc:  # a client counts whatever it gets
                    self.timeline.error(exc)
                    _close(conn)
                    conn = channel = None
                    self.stopping.wait(POLL_S)
                    continue
            seq += 1
            self.published = seq
            try:
                channel.basic_publish(exchange="", routing_key=self.queue, body=str(seq).encode(), mandatory=True,
                                      properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
            except Exception as exc:
                self.unconfirmed.add(seq)
                self.timeline.error(exc)
                _close(conn)
                conn = channel = None
                self.stopping.wait(POLL_S)
                continue
            self.timeline.ack(seq)
            self.stopping.wait(0.005)
        _close(conn)


class Consumer(threading.Thread):
    """Consumes the queue with manual acknowledgements every :data:`ACK_EVERY` deliveries (and when idle);
    reconnects after a loss and consumes again."""

    def __init__(self, connect: Callable[[], Any], queue: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.connect, self.queue, self.deadline = connect, queue, deadline
        self.deliveries: list[int] = []
        self.redelivered = 0
        self.errors = Timeline()
        self.last_activity = time.monotonic()
        self.stopping = threading.Event()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            conn: Any = None
            try:
                conn = self.connect()
                channel = conn.channel()
                channel.basic_qos(prefetch_count=100)
                self._consume(channel)
            except Exception as exc:
                self.errors.error(exc)
                self.stopping.wait(POLL_S)
            finally:
                _close(conn)

    def _consume(self, channel: Any) -> None:
        pending: int | None = None
        unacked = 0
        for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.2):
            if method is None:
                if pending is not None:
                    channel.basic_ack(pending, multiple=True)
                    pending, unacked = None, 0
                if self.stopping.is_set() or time.monotonic() >= self.deadline:
                    with contextlib.suppress(Exception):
                        channel.cancel()
                    return
                continue
            self.last_activity = time.monotonic()
            self.deliveries.append(int(body))
            self.redelivered += int(bool(method.redelivered))
            pending, unacked = method.delivery_tag, unacked + 1
            if unacked >= ACK_EVERY:
                channel.basic_ack(pending, multiple=True)
                pending, unacked = None, 0


def broker_loss_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                      timeout: float) -> BrokerRound:
    """One broker-loss round; the broker accepts logins again when it returns (or the problems say why not)."""
    ops = drill.ops
    if not isinstance(ops, BrokerOps):
        raise DrillError(f"drill {drill.name}: a broker-loss drill needs BrokerOps, {service}'s SPEC gives {ops!r}")
    if fault != "docker-kill":
        raise DrillError(f"drill {drill.name}: unknown fault {fault!r}; one of {', '.join(drill.faults)}")
    container = stack.require(service)
    wrapped = container.get_wrapped_container()
    login = registry.get(service).op("login")
    result = BrokerRound(round=number, fault=fault, victim=str(getattr(container, "alias", service)))
    queue = f"drill-{secrets.token_hex(4)}"

    def connect() -> Any:
        return ops.connect(container.endpoint())  # looked up every time: a restarted container may move port

    def queue_state() -> tuple[int, int]:
        conn = connect()
        try:
            ok = conn.channel().queue_declare(queue, passive=True).method
            return int(ok.message_count), int(ok.consumer_count)
        finally:
            _close(conn)

    poll(lambda: login(container.endpoint()), what=f"{service} to accept a login before round {number}",
         timeout=timeout, interval=0.2, hint="the previous round left it down: read its log")
    setup = connect()
    try:
        setup.channel().queue_declare(queue, durable=True)
    finally:
        _close(setup)
    declared = time.monotonic()
    deadline = time.monotonic() + 4 * timeout
    publisher, consumer = Publisher(connect, queue, deadline), Consumer(connect, queue, deadline)
    consumer.start()
    try:
        poll(queue_state, what=f"the consumer to be registered on {queue}", timeout=timeout, interval=POLL_S,
             accept=lambda state: state[1] >= 1, hint="the consumer could not subscribe: see its errors")
        publisher.start()
        poll(lambda: (len(publisher.timeline.acks), len(consumer.deliveries)), what=f"{BEFORE_FAULT} confirmed "
             f"publishes and {DELIVERED_BEFORE} deliveries before the fault", timeout=timeout, interval=POLL_S,
             accept=lambda n: n[0] >= BEFORE_FAULT and n[1] >= DELIVERED_BEFORE,
             hint="publisher or consumer stalled: see their errors")
        log_since = int(time.time())  # docker logs: whole seconds
        t0 = time.monotonic()
        result.queue_age_ms = ms(declared, t0)
        with fault_applied(wrapped.kill, lambda: ensure_running(wrapped)) as undo:
            undo()
            try:
                poll(lambda: login(container.endpoint()), what=f"{service} to accept a login after the {fault}",
                     timeout=timeout, interval=0.1, hint="the broker did not come back: read its log")
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
                return result
            back = time.monotonic()
            result.broker_back_ms = ms(t0, back)
        queue_gone = False
        try:
            poll(queue_state, what=f"the durable queue {queue} to answer a passive declare after the {fault}",
                 timeout=min(timeout, 10.0), interval=0.2, accept=lambda _: True, hint="see log_excerpt")
        except ReadinessTimeout as exc:  # the durable queue must have survived: say so, with what the broker logged
            queue_gone = result.queue_lost = True
            result.problems.append(f"the durable queue {queue} (declared {t0 - declared:.1f} s before the {fault}) "
                                   f"is gone after the restart: {exc.last_seen}")
            # The broker's own account of its restart, not the channel errors the missing queue causes (those
            # filled the excerpt before and hid how the recovery went).
            result.log_excerpt = [line for line in wrapped.logs(since=log_since).decode(errors="replace")
                                  .splitlines() if ("[warning]" in line or "[error]" in line
                                                    or "ecover" in line or "queue" in line.lower())
                                  and "channel exception" not in line and "Channel error" not in line][:40]
        try:
            if not queue_gone:  # without its queue nothing can be confirmed or drained: no point waiting
                wait_acks(publisher.timeline, back, AFTER, timeout, "publishes")
        except ReadinessTimeout as exc:
            result.problems.append(str(exc))
        publisher.stop()
        try:
            if not queue_gone:
                poll(lambda: (time.monotonic() - consumer.last_activity, queue_state()[0]),
                     what=f"the consumer to drain {queue}", timeout=timeout, interval=0.2,
                     accept=lambda s: s[0] >= QUIET_S and s[1] == 0,
                     hint="the consumer stopped consuming: see its errors")
        except ReadinessTimeout as exc:
            result.problems.append(str(exc))
        consumer.stop()
        confirmed = {seq for seq, _ in publisher.timeline.acks}
        result.client_outage_ms = outage_ms([at for _, at in publisher.timeline.acks], t0)
        result.published, result.confirmed, result.unconfirmed = (publisher.published, len(confirmed),
                                                                  len(publisher.unconfirmed))
        result.redelivered = consumer.redelivered
        result.publisher_errors, result.consumer_errors = dict(publisher.timeline.errors), dict(consumer.errors.errors)
        counts, problems = broker_verdict(confirmed, publisher.unconfirmed, list(consumer.deliveries))
        for key, value in counts.items():
            setattr(result, key, value)
        result.problems += problems
    finally:
        publisher.stop()
        consumer.stop()
        with contextlib.suppress(Exception):  # the drill's own queue; a broker still down keeps it, harmlessly
            conn = connect()
            try:
                conn.channel().queue_delete(queue)
            finally:
                _close(conn)
    return result


METRICS["broker-loss"] = BROKER_METRICS
RUNNERS["broker-loss"] = broker_loss_round
