"""Hold every packet queued to one NFQUEUE for a fixed delay, then accept it: ``tc netem delay`` for kernels
without ``sch_netem``.

Standalone (standard library only, Python 3.8+): the latency drill copies this file into its network helper
container, which shares the drilled node's network namespace, and runs
``python3 nfq_delay.py QUEUE DELAY_MS STATE_DIR``. iptables rules there send the node's packets towards its
peers to queue ``QUEUE`` (with ``--queue-bypass``: when nothing listens, packets pass undelayed). Packets are
released in arrival order, each ``DELAY_MS`` after it arrived, so TCP sees a constant added delay and no
reordering. Only packet metadata is copied to user space (``NFQNL_COPY_META``).

``STATE_DIR`` receives ``pid`` and ``ready`` (written once the queue is bound) and, on SIGTERM, ``stats`` (the
number of packets delayed, and the largest backlog held at once).

The protocol (netlink, ``NETLINK_NETFILTER``, subsystem ``NFNL_SUBSYS_QUEUE``) is the kernel's
``include/uapi/linux/netfilter/nfnetlink_queue.h``: a CONFIG message binds the queue and sets the copy mode,
PACKET messages carry a packet id in ``NFQA_PACKET_HDR``, a VERDICT message with ``NFQA_VERDICT_HDR``
(verdict, id) releases it.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLA_TYPE_MASK = 0x3FFF
QUEUE_MAXLEN = 8192


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def message(kind: int, queue: int, payload: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    """One netlink message of the queue subsystem: nlmsghdr + nfgenmsg (AF_UNSPEC, v0, queue number) + attrs."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + payload
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, 0, 0) + body


def verdict(queue: int, packet_id: int) -> bytes:
    return message(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id)))


def packet_ids(datagram: bytes) -> list[int]:
    """The ids of the queued packets in one received datagram (it may hold several messages)."""
    ids = []
    offset = 0
    while offset + 16 <= len(datagram):
        length, kind = struct.unpack_from("=IH", datagram, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # nlmsghdr (16) + nfgenmsg (4)
            while at + 4 <= offset + length:
                attr_len, attr_kind = struct.unpack_from("=HH", datagram, at)
                if attr_len < 4:
                    break
                if attr_kind & NLA_TYPE_MASK == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from(">I", datagram, at + 4)[0])
                at += (attr_len + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def _configure(sock: socket.socket, queue: int) -> None:
    """Bind the queue, copy metadata only, raise the queue length; every step must be acknowledged."""
    for payload in (_attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_UNSPEC)),
                    _attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META) + b"\0\0\0"),
                    _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", QUEUE_MAXLEN))):
        sock.send(message(NFQNL_MSG_CONFIG, queue, payload, NLM_F_REQUEST | NLM_F_ACK))
        reply = sock.recv(4096)
        _, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR and struct.unpack_from("=i", reply, 16)[0] != 0:
            error = -struct.unpack_from("=i", reply, 16)[0]
            raise OSError(error, f"binding NFQUEUE {queue}: {os.strerror(error)}")


def run(queue: int, delay_s: float, state_dir: str) -> int:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    _configure(sock, queue)
    held: collections.deque[tuple[float, int]] = collections.deque()
    stats = {"delayed": 0, "max_held": 0, "overruns": 0}
    stopping = []

    def stop(_signum: int, _frame: object) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(os.path.join(state_dir, "pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    with open(os.path.join(state_dir, "ready"), "w") as f:
        f.write(f"queue {queue} delay {delay_s * 1000:g} ms\n")
    while not stopping:
        now = time.monotonic()
        while held and held[0][0] <= now:
            sock.send(verdict(queue, held.popleft()[1]))
            stats["delayed"] += 1
        wait = max(0.0, held[0][0] - now) if held else 0.5
        try:
            readable, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if readable:
            try:
                datagram = sock.recv(1 << 16)
            except OSError:  # ENOBUFS: the kernel dropped messages; the packets behind them stay queued
                stats["overruns"] += 1
                continue
            arrived = time.monotonic()
            held.extend((arrived + delay_s, packet_id) for packet_id in packet_ids(datagram))
            stats["max_held"] = max(stats["max_held"], len(held))
    for _, packet_id in held:  # on the way out nothing stays held: release what is left
        sock.send(verdict(queue, packet_id))
    with open(os.path.join(state_dir, "stats"), "w") as f:
        f.write(" ".join(f"{k}={v}" for k, v in stats.items()) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write("usage: nfq_delay.py QUEUE DELAY_MS STATE_DIR\n")
        return 2
    return run(int(argv[1]), int(argv[2]) / 1000, argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
