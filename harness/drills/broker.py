"""The broker-loss drill (kind ``broker-loss``, ``rabbitmq-broker-loss``) and the declare-durability drill (kind
``declare-durability``, ``rabbitmq-declare-durability``).

A broker-loss round, on the drill's own queue ``drill-<hex>``, puts confirmed messages *at risk* when the broker
dies -- confirmed by the broker, not yet acknowledged by any consumer, so only the broker's disk holds them:

1. Preconditions, polled with a deadline: the broker accepts a login; the queue is declared (durable) and its
   declaration made durable on disk (:attr:`BrokerOps.settle_metadata`: a just-declared queue lost on a kill is
   the declare-durability drill's finding, not this drill's subject); the first consumer registered (the broker
   counts 1 consumer); 100 publishes confirmed and 50 messages delivered.
2. The first consumer is cancelled (what it received but had not acknowledged goes back to the queue); the
   publisher goes on until at least :data:`AT_RISK_MIN` + 50 confirmed messages are not acknowledged.
3. The fault at ``t0``: ``docker-kill`` of the broker's container; the harness starts it again (undo in
   ``finally``). The publisher reconnects by itself (looking the published port up again); a second consumer
   drains the queue after the restart.
4. Figures: ``broker_back_ms`` (t0 -> an AMQP login answers again), ``client_outage_ms`` (the publisher's longest
   silence between confirms around the fault), ``confirmed_at_risk`` (confirmed before the kill and not
   acknowledged), ``at_risk_delivered`` (of those, delivered after the restart), ``confirmed_missing`` (confirmed,
   not acknowledged before the fault, never delivered after it: must be 0), ``unconfirmed_lost`` (published, no
   confirm -- the publisher was not told they were safe -- never delivered: allowed), ``duplicates``
   (deliveries beyond the first of a message: at least once by design, reported, not an error).
5. Verdict (:func:`broker_verdict`): no confirmed message missing, no delivered message that nobody published,
   at least :data:`AT_RISK_MIN` at risk at the fault, and the durable queue still there after the restart.

A declare-durability round (:func:`declare_durability_round`) asks the broker which metadata store it uses, declares
a durable queue twice and kills the broker right after each ``declare-ok``: once *unsettled* (on Mnesia with its
commit decisions held back, :attr:`BrokerOps.hold_metadata`; Khepri has no such step), once *settled*
(:attr:`BrokerOps.settle_metadata`). It pins the finding of docs/drills.md against the service's table per store
(:attr:`BrokerOps.unsettled_declare_lost`): Mnesia loses the unsettled queue, Khepri keeps it, both keep the settled
one.
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

from harness.drills.kit import (
    POLL_S,
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

BROKER_METRICS = ("broker_back_ms", "client_outage_ms", "confirmed_at_risk", "at_risk_delivered",
                  "confirmed_missing", "unconfirmed_lost", "duplicates")
DURABILITY_METRICS = ("unsettled_lost", "settled_lost", "unsettled_back_ms", "settled_back_ms")
BEFORE_FAULT = 100  # confirmed publishes before the first consumer is cancelled
DELIVERED_BEFORE = 50  # deliveries before the first consumer is cancelled
AT_RISK_MIN = 100  # a round with fewer confirmed, unacknowledged messages at the fault proves too little
AT_RISK_TARGET = AT_RISK_MIN + 50  # what the round waits for before the fault (confirms race the kill)
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
    # Counted when the round gets that far; None (not 0) when it ended before counting.
    published: int | None = None
    confirmed: int | None = None
    unconfirmed: int | None = None
    acknowledged_before: int | None = None
    confirmed_at_risk: int | None = None
    at_risk_delivered: int | None = None
    confirmed_missing: int | None = None
    unconfirmed_lost: int | None = None
    duplicates: int | None = None
    redelivered: int | None = None  # deliveries after the restart that the broker flagged as redelivered
    queue_age_ms: float | None = None  # the queue's declaration -> the fault
    queue_lost: bool = False  # the durable queue did not answer a passive declare after the restart
    publisher_errors: dict[str, int] = field(default_factory=dict)
    consumer_errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_excerpt: list[str] = field(default_factory=list)  # the broker's recovery, warnings and errors, when it failed


def _few(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" … (+{len(numbers) - limit})" if len(numbers) > limit else "")


def broker_verdict(confirmed: set[int], unconfirmed: set[int], acknowledged: set[int], confirmed_at_fault: set[int],
                   before: list[int], after: list[int]) -> tuple[dict[str, int], list[str]]:
    """Counts and problems once the queue is drained after the restart.

    ``confirmed``: every publish the broker confirmed (before and after the fault); ``unconfirmed``: publishes
    without a confirm; ``acknowledged``: what the consumer acknowledged before the fault; ``confirmed_at_fault``:
    what was confirmed when the broker was killed; ``before`` / ``after``: the message numbers delivered before
    the fault and after the restart, duplicates included. A confirmed message nobody acknowledged before the fault
    must be delivered after the restart (again, if it was delivered before: a redelivery is fine, a loss is not).
    """
    at_risk = confirmed_at_fault - acknowledged
    received_after = set(after)
    received = set(before) | received_after
    missing = sorted((confirmed - acknowledged) - received_after)
    counts = {"confirmed_at_risk": len(at_risk), "at_risk_delivered": len(at_risk & received_after),
              "confirmed_missing": len(missing), "unconfirmed_lost": len(unconfirmed - received),
              "duplicates": len(before) + len(after) - len(received)}
    problems = []
    if missing:
        problems.append(f"{len(missing)} confirmed message(s) lost: not acknowledged before the broker loss and "
                        f"not delivered after it: {_few(missing)}")
    if len(at_risk) < AT_RISK_MIN:
        problems.append(f"only {len(at_risk)} confirmed message(s) were at risk (confirmed, not acknowledged) at the "
                        f"fault; the round needs at least {AT_RISK_MIN} to mean anything")
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

    def confirmed(self) -> set[int]:
        return {seq for seq, _ in list(self.timeline.acks)}

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
    reconnects after a loss and consumes again. :meth:`stop` cancels it at once: what it received and had not
    acknowledged goes back to the queue. ``acknowledged`` holds what it acknowledged."""

    def __init__(self, connect: Callable[[], Any], queue: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.connect, self.queue, self.deadline = connect, queue, deadline
        self.deliveries: list[int] = []
        self.acknowledged: set[int] = set()
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
        unacked: list[int] = []

        def ack() -> None:
            nonlocal pending
            if pending is not None:
                channel.basic_ack(pending, multiple=True)
                self.acknowledged.update(unacked)
                pending = None
                unacked.clear()

        for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.2):
            if self.stopping.is_set() or time.monotonic() >= self.deadline:
                with contextlib.suppress(Exception):  # cancelled: the unacknowledged go back to the queue
                    channel.cancel()
                return
            if method is None:
                ack()
                continue
            self.last_activity = time.monotonic()
            self.deliveries.append(int(body))
            self.redelivered += int(bool(method.redelivered))
            pending = method.delivery_tag
            unacked.append(int(body))
            if len(unacked) >= ACK_EVERY:
                ack()


def _broker_ops(drill: ServiceDrill, service: str) -> BrokerOps:
    ops = drill.ops
    if not isinstance(ops, BrokerOps):
        raise DrillError(f"drill {drill.name}: a broker drill needs BrokerOps, {service}'s SPEC gives {ops!r}")
    return ops


class _Broker:
    """The drill's handles on one broker: its container, fresh connections and the drill's queue."""

    def __init__(self, stack: Any, service: str, ops: BrokerOps) -> None:
        self.service, self.ops = service, ops
        self.container = stack.require(service)
        self.wrapped = self.container.get_wrapped_container()
        self._login = registry.get(service).driver.login

    def connect(self) -> Any:
        return self.ops.connect(self.container.endpoint())  # looked up every time: a restart may move the port

    def wait_login(self, what: str, timeout: float) -> None:
        poll(lambda: self._login(self.container.endpoint()), what=f"{self.service} to accept a login {what}",
             timeout=timeout, interval=0.1, hint="the broker did not come back: read its log")

    def queue_state(self, queue: str) -> tuple[int, int]:
        conn = self.connect()
        try:
            ok = conn.channel().queue_declare(queue, passive=True).method
            return int(ok.message_count), int(ok.consumer_count)
        finally:
            _close(conn)

    def declare(self, queue: str) -> None:
        conn = self.connect()
        try:
            conn.channel().queue_declare(queue, durable=True)
        finally:
            _close(conn)

    def delete(self, queue: str) -> None:
        with contextlib.suppress(Exception):  # the drill's own queue; a broker still down keeps it, harmlessly
            conn = self.connect()
            try:
                conn.channel().queue_delete(queue)
            finally:
                _close(conn)

    def recovery_lines(self, since: int) -> list[str]:
        """The broker's own account of its restart, not the channel errors a missing queue causes."""
        return [line for line in self.wrapped.logs(since=since).decode(errors="replace").splitlines()
                if ("[warning]" in line or "[error]" in line or "ecover" in line or "queue" in line.lower())
                and "channel exception" not in line and "Channel error" not in line][:40]


def broker_loss_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                      timeout: float) -> BrokerRound:
    """One broker-loss round; the broker accepts logins again when it returns (or the problems say why not)."""
    ops = _broker_ops(drill, service)
    if fault != "docker-kill":
        raise DrillError(f"drill {drill.name}: unknown fault {fault!r}; one of {', '.join(drill.faults)}")
    broker = _Broker(stack, service, ops)
    result = BrokerRound(round=number, fault=fault, victim=str(getattr(broker.container, "alias", service)))
    queue = f"drill-{secrets.token_hex(4)}"
    broker.wait_login(f"before round {number}", timeout)
    broker.declare(queue)
    if ops.settle_metadata is not None:
        ops.settle_metadata(broker.wrapped)
    declared = time.monotonic()
    deadline = time.monotonic() + 4 * timeout
    publisher = Publisher(broker.connect, queue, deadline)
    first, second = Consumer(broker.connect, queue, deadline), Consumer(broker.connect, queue, deadline)
    first.start()
    try:
        poll(lambda: broker.queue_state(queue), what=f"the consumer to be registered on {queue}", timeout=timeout,
             interval=POLL_S, accept=lambda state: state[1] >= 1,
             hint="the consumer could not subscribe: see its errors")
        publisher.start()
        poll(lambda: (len(publisher.timeline.acks), len(first.deliveries)), what=f"{BEFORE_FAULT} confirmed "
             f"publishes and {DELIVERED_BEFORE} deliveries before the fault", timeout=timeout, interval=POLL_S,
             accept=lambda n: n[0] >= BEFORE_FAULT and n[1] >= DELIVERED_BEFORE,
             hint="publisher or consumer stalled: see their errors")
        first.stop()  # cancelled: from here the confirmed messages wait in the queue, at risk
        acknowledged = set(first.acknowledged)
        poll(lambda: len(publisher.confirmed() - acknowledged), what=f"{AT_RISK_TARGET} confirmed, unacknowledged "
             f"messages in {queue} before the fault", timeout=timeout, interval=POLL_S,
             accept=lambda n: n >= AT_RISK_TARGET, hint="the publisher stalled: see its errors")
        log_since = int(time.time())  # docker logs: whole seconds
        t0 = time.monotonic()
        result.queue_age_ms = ms(declared, t0)
        with fault_applied(broker.wrapped.kill, lambda: ensure_running(broker.wrapped)) as undo:
            confirmed_at_fault = publisher.confirmed()  # the broker is dead: no confirm can arrive any more
            undo()
            try:
                broker.wait_login(f"after the {fault}", timeout)
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
                return result
            back = time.monotonic()
            result.broker_back_ms = ms(t0, back)
        try:
            poll(lambda: broker.queue_state(queue), what=f"the durable queue {queue} to answer a passive declare "
                 f"after the {fault}", timeout=min(timeout, 10.0), interval=0.2, accept=lambda _: True,
                 hint="see log_excerpt")
        except ReadinessTimeout as exc:  # declared and settled on disk before the fault: it must have survived
            result.queue_lost = True
            result.problems.append(f"the durable queue {queue} (declared {t0 - declared:.1f} s before the {fault}, "
                                   f"its declaration synced to disk) is gone after the restart: {exc.last_seen}")
            result.log_excerpt = broker.recovery_lines(log_since)
        if not result.queue_lost:  # without its queue nothing can be confirmed or drained: no point waiting
            second.start()
            try:
                wait_acks(publisher.timeline, back, AFTER, timeout, "publishes")
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
            publisher.stop()
            try:
                poll(lambda: (time.monotonic() - second.last_activity, broker.queue_state(queue)[0]),
                     what=f"the consumer to drain {queue}", timeout=timeout, interval=0.2,
                     accept=lambda s: s[0] >= QUIET_S and s[1] == 0,
                     hint="the consumer stopped consuming: see its errors")
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
        publisher.stop()
        second.stop()
        confirmed = publisher.confirmed()
        result.client_outage_ms = outage_ms([at for _, at in publisher.timeline.acks], t0)
        result.published, result.confirmed, result.unconfirmed = (publisher.published, len(confirmed),
                                                                  len(publisher.unconfirmed))
        result.acknowledged_before = len(acknowledged)
        result.redelivered = second.redelivered
        result.publisher_errors = dict(publisher.timeline.errors)
        result.consumer_errors = dict(first.errors.errors)
        for kind, count in second.errors.errors.items():
            result.consumer_errors[kind] = result.consumer_errors.get(kind, 0) + count
        if not result.queue_lost:
            counts, problems = broker_verdict(confirmed, publisher.unconfirmed, acknowledged, confirmed_at_fault,
                                              list(first.deliveries), list(second.deliveries))
            for key, value in counts.items():
                setattr(result, key, value)
            result.problems += problems
    finally:
        publisher.stop()
        first.stop()
        second.stop()
        broker.delete(queue)
    return result


# ------------------------------------------------------------------------------------------- declare durability


@dataclass
class DurabilityRound:
    round: int
    fault: str
    victim: str
    store: str | None = None  # the broker's metadata store (mnesia, khepri)
    unsettled_lost: bool | None = None  # the queue killed right after its declare-ok was gone afterwards
    settled_lost: bool | None = None  # the queue declared and settled was gone afterwards
    unsettled_back_ms: float | None = None
    settled_back_ms: float | None = None
    problems: list[str] = field(default_factory=list)


def durability_verdict(store: str, expected_lost: bool, unsettled_lost: bool, settled_lost: bool) -> list[str]:
    """Both sides of the finding for the broker's metadata store: a queue killed right after its declare-ok is
    lost exactly when the store's table says so (``expected_lost``), and a settled declaration always survives."""
    problems = []
    if unsettled_lost != expected_lost:
        seen = "was gone" if unsettled_lost else "survived"
        problems.append(f"{store}: the queue killed right after its declare-ok {seen} after the restart; the module's "
                        f"table says it is {'lost' if expected_lost else 'kept'} on {store}")
    if settled_lost:
        problems.append(f"{store}: the queue declared and settled on disk before the kill was gone after the restart")
    return problems


def declare_durability_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                             timeout: float) -> DurabilityRound:
    """Declare, kill, restart, look: once unsettled (Mnesia: with its commit decisions held back), once settled
    (module docstring)."""
    ops = _broker_ops(drill, service)
    if (fault != "docker-kill" or ops.hold_metadata is None or ops.settle_metadata is None
            or ops.metadata_store is None or ops.unsettled_declare_lost is None):
        raise DrillError(f"drill {drill.name}: needs the docker-kill fault and hold_metadata, settle_metadata, "
                         f"metadata_store and unsettled_declare_lost in {service}'s BrokerOps")
    broker = _Broker(stack, service, ops)
    result = DurabilityRound(round=number, fault=fault, victim=str(getattr(broker.container, "alias", service)))
    broker.wait_login(f"before round {number}", timeout)
    store = result.store = ops.metadata_store(broker.wrapped)
    for side in ("unsettled", "settled"):
        queue = f"drill-{side}-{secrets.token_hex(4)}"
        broker.wait_login(f"before the {side} declare of round {number}", timeout)
        if side == "unsettled" and store == "mnesia":
            ops.hold_metadata(broker.wrapped)  # makes Mnesia's window certain; Khepri has no such step to hold
        broker.declare(queue)  # returns at declare-ok
        if side == "settled":
            ops.settle_metadata(broker.wrapped)
        t0 = time.monotonic()
        with fault_applied(broker.wrapped.kill, lambda: ensure_running(broker.wrapped)) as undo:
            undo()
            broker.wait_login(f"after the {fault} of the {side} declare", timeout)
        setattr(result, f"{side}_back_ms", ms(t0, time.monotonic()))
        try:
            broker.queue_state(queue)
            lost = False
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            lost = True
        setattr(result, f"{side}_lost", lost)
        broker.delete(queue)
    if store not in ops.unsettled_declare_lost:
        raise DrillError(f"drill {drill.name}: {service} uses the metadata store {store!r}, which its table "
                         f"({', '.join(ops.unsettled_declare_lost)}) does not know")
    result.problems = durability_verdict(store, ops.unsettled_declare_lost[store], bool(result.unsettled_lost),
                                         bool(result.settled_lost))
    return result
