"""The verdict of a drill round: everything the suites hold a round to, as problem strings.

``python -m harness drill`` exits 1 on a round with problems, and the suites assert ``not result.problems``; both
call :func:`judge` right after a round, so the nightly's CLI run and a suite run judge a round by the same rules.
The round functions keep their own invariants (a lost row, a split-brain write, a failover below the node timeout);
the rules here add what a round cannot know by itself (the settings' limits) and what makes a round mean anything:

* every figure its kind needs was measured (a None is "not measured", never a pass);
* it did enough work (committed rows, confirmed writes, KV writes, operations before and during a delay);
* its durations are within its limits: ``drill_promote_max_ms`` for a Redis promotion, the round's deadline
  (``drill_round_timeout_s``) for every service drill figure in milliseconds;
* the kind's own rules: a failover's stages in order and no write ``WAIT`` confirmed lost; a node loss answering
  as ``cluster-require-full-coverage`` says, with every key back.

Thresholds come from :class:`~harness.settings.Settings`; the minimum work counts are the drills' own constants (a
round waits for that much before its fault).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.drills.broker import BROKER_METRICS, DURABILITY_METRICS
from harness.drills.kit import DrillError
from harness.drills.redis import FAILOVER_METRICS, KEYS_PER_MASTER, NODE_LOSS_METRICS
from harness.drills.sql import BEFORE_FAULT as SQL_BEFORE_FAULT
from harness.drills.sql import SQL_METRICS
from harness.drills.vault import KV_BEFORE, LOGINS_BEFORE, VAULT_METRICS
from harness.settings import Settings

if TYPE_CHECKING:
    from harness.drills.redis import FailoverRound, NodeLossRound


class _Judged(Protocol):
    problems: list[str]


Round = TypeVar("Round", bound=_Judged)


@dataclass(frozen=True)
class Rules:
    """What a round of one kind must show.

    Attributes:
        measured: figures that must not be None.
        more_than: (count, n): the round did too little to mean anything unless the count is above n.
        within_deadline: every ``*_ms`` figure of ``measured`` at most the round's deadline.
        check: the kind's own rules, ``(round, settings) -> problems``.
    """

    measured: tuple[str, ...]
    more_than: tuple[tuple[str, int], ...] = ()
    within_deadline: bool = False
    check: Callable[[Any, Settings], list[str]] | None = None


def failover_problems(result: FailoverRound, settings: Settings) -> list[str]:
    """The promotion within ``drill_promote_max_ms``, the stages in order (detected, promoted, ``ok``), no write
    that ``WAIT 1`` confirmed lost."""
    problems = []
    detect, promote, ok = result.detect_ms, result.promote_ms, result.cluster_ok_ms
    if promote is not None and promote > settings.drill_promote_max_ms:
        problems.append(f"promotion took {promote:g} ms, beyond drill_promote_max_ms "
                        f"({settings.drill_promote_max_ms} ms)")
    if detect is not None and promote is not None and detect > promote:
        problems.append(f"stages out of order: detected ({detect:g} ms) after the promotion ({promote:g} ms)")
    if promote is not None and ok is not None and promote > ok + 1:  # +1: both rounded to 0.1 ms
        problems.append(f"stages out of order: promoted ({promote:g} ms) after cluster_state ok ({ok:g} ms)")
    if result.lost_replicated:
        problems.append(f"{result.lost_replicated} write(s) confirmed by WAIT 1 were lost")
    return problems


def node_loss_problems(result: NodeLossRound, settings: Settings) -> list[str]:
    """With full coverage every key answers CLUSTERDOWN; without, the surviving masters serve theirs and the lost
    master's keys are redirected to it (MOVED to its address). Every key written before the loss is back."""
    problems = []
    answer = result.lost_slots_error
    if result.full_coverage:
        if result.surviving_slots_served is not False:
            problems.append("with cluster-require-full-coverage yes the surviving masters still served their keys "
                            "(expected CLUSTERDOWN for every key)")
        if not answer.startswith("CLUSTERDOWN"):
            problems.append(f"a key of the lost master answered {answer!r}, expected CLUSTERDOWN")
    else:
        if result.surviving_slots_served is not True:
            problems.append("with cluster-require-full-coverage no the surviving masters did not serve their keys")
        if not answer.startswith("MOVED") or not result.victim_ip or result.victim_ip not in answer:
            problems.append(f"a key of the lost master answered {answer!r}, expected MOVED to its address "
                            f"{result.victim_ip or '(unknown)'}")
    expected = settings.redis_masters * KEYS_PER_MASTER
    if result.keys_written != expected:
        problems.append(f"{result.keys_written} keys written before the loss, expected {expected} "
                        f"({settings.redis_masters} masters x {KEYS_PER_MASTER})")
    if result.keys_missing:
        problems.append(f"{result.keys_missing} of {result.keys_written} keys written before the loss are missing "
                        "after the recovery from the AOF")
    return problems


RULES: dict[str, Rules] = {
    "redis-failover": Rules(FAILOVER_METRICS, more_than=(("writes_replicated", 0),), check=failover_problems),
    "redis-node-loss": Rules((*NODE_LOSS_METRICS, "surviving_slots_served"), check=node_loss_problems),
    # partition_verdict (harness.drills.net) judges the writes, the split brain and the positive control.
    "redis-partition": Rules(("detect_ms", "promote_ms", "rejoin_ms", "lost_writes", "lost_replicated",
                              "split_brain_writes"), more_than=(("writes_replicated", 0),)),
    # latency_verdict judges the failover and whether the delay took effect.
    "latency": Rules(("pfail_flags", "failovers", "recover_ms"), more_than=(("ops_before", 0), ("ops_during", 0))),
    # sql_verdict, broker_verdict, durability_verdict and vault_verdict judge losses in their rounds.
    "sql-crash": Rules((*SQL_METRICS, "recovery_logged"), more_than=(("rows_committed", SQL_BEFORE_FAULT),),
                       within_deadline=True),
    "broker-loss": Rules(BROKER_METRICS, within_deadline=True),
    "declare-durability": Rules((*DURABILITY_METRICS, "store"), within_deadline=True),
    "vault-seal": Rules((*VAULT_METRICS, "sealed_seen"),
                        more_than=(("kv_written", KV_BEFORE), ("certificates", LOGINS_BEFORE)), within_deadline=True),
}


def verdict(kind: str, result: Any, settings: Settings) -> list[str]:
    """The problems of a ``kind`` round by :data:`RULES` (empty when it holds up)."""
    if kind not in RULES:
        raise DrillError(f"no verdict rules for drill kind {kind!r}; known: {', '.join(RULES)}")
    rules = RULES[kind]
    problems = []
    unmeasured = [name for name in (*rules.measured, *(count for count, _ in rules.more_than))
                  if getattr(result, name) is None]
    if unmeasured:
        problems.append(f"not measured: {', '.join(dict.fromkeys(unmeasured))}")
    for count, floor in rules.more_than:
        value = getattr(result, count)
        if value is not None and value <= floor:
            problems.append(f"too little work for the round to mean anything: {count} {value}, more than {floor} "
                            "needed")
    if rules.within_deadline:
        deadline_ms = settings.drill_round_timeout_s * 1000
        for name in rules.measured:
            value = getattr(result, name)
            if name.endswith("_ms") and value is not None and value > deadline_ms:
                problems.append(f"{name} {value:g} ms: beyond the round's deadline ({deadline_ms:g} ms, "
                                "drill_round_timeout_s)")
    if rules.check is not None:
        problems += rules.check(result, settings)
    return problems


def judge(kind: str, result: Round, settings: Settings) -> Round:
    """Append the problems of :func:`verdict` to ``result.problems`` (those it does not hold yet); returns
    ``result``, so a round is judged where it is made: ``judge(kind, some_round(...), settings)``."""
    result.problems += [p for p in verdict(kind, result, settings) if p not in result.problems]
    return result
