"""Processes appending to one ``JsonlAuditLog``, killed at random moments, lose no record.

The children are this module run as a program (see the bottom): two at a time append events
to the same log, each numbering its events and acknowledging each once ``record`` returned.
After every kill the log must verify up to its last complete record (``docs/audit.md``: a
SIGKILL leaves a record's whole line or none of it; an incomplete last line is reported by
``verify`` and removed by ``repair``), every acknowledged event must be in it, and each
writer's events must be in the order it recorded them, none twice.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timezone
from pathlib import Path

from sealstore.audit import AuditEvent, JsonlAuditLog, Operation, Outcome
from tests.crashes import (
    Acknowledger,
    acknowledged,
    check_audit_log,
    crash_kills,
    kill_after,
    killed,
    report_survived,
    spawn,
)

WRITERS = ("left", "right")
EVENTS = 100_000
"""A bound on a child's loop, so a child nobody kills ends by itself."""
OPERATIONS = (Operation.GENERATE, Operation.UNWRAP, Operation.ROTATE, Operation.CREATE_KEY)


def _new_numbers(path: Path, offset: int) -> tuple[dict[str, list[int]], int]:
    """Each writer's event numbers in the records from byte ``offset`` on, in log order, and
    where the log ends: reading only what was appended keeps each check short."""
    with path.open("rb") as log:
        log.seek(offset)
        appended = log.read()
    numbers: dict[str, list[int]] = {writer: [] for writer in WRITERS}
    for line in appended.splitlines():
        record = json.loads(line)
        numbers[record["principal"]].append(int(record["key_id"].split(".")[1]))
    return numbers, offset + len(appended)


def test_killed_appenders_leave_a_log_that_verifies(tmp_path: Path) -> None:
    """After each SIGKILL of two processes appending to one log, the log verifies whole and
    holds every acknowledged event, each writer's in order and once."""
    rng = random.Random(5)
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    kills = crash_kills()
    mid_run = repaired = 0
    written = dict.fromkeys(WRITERS, 0)
    offset = 0
    for kill in range(kills):
        acks = {writer: tmp_path / f"acks-{writer}-{kill}" for writer in WRITERS}
        children = [
            spawn(__spec__.name, str(path), writer, str(written[writer]), str(acks[writer]))
            for writer in WRITERS
        ]
        # The second child is killed first, the first a random moment later.
        with kill_after(children[0], rng, 0.0, 0.1), kill_after(children[1], rng, 0.0, 0.2):
            pass
        mid_run += sum(map(killed, children))
        records, was_torn = check_audit_log(path)
        repaired += was_torn
        numbers, offset = _new_numbers(path, offset)
        for writer in WRITERS:
            start = written[writer]
            assert numbers[writer] == list(range(start, start + len(numbers[writer]))), writer
            acked = [int(words[0]) for words in acknowledged(acks[writer])]
            assert acked == list(range(start, start + len(acked)))
            assert len(numbers[writer]) >= len(acked)
            written[writer] += len(numbers[writer])
        assert records == sum(written.values())
    report_survived("audit append (two writers)", 2 * kills, mid_run)
    assert mid_run == 2 * kills
    assert all(count > kills for count in written.values())
    # Whatever the kills left, the log takes more records.
    log.record(_event("parent", 0))
    assert log.verify().records == sum(written.values()) + 1
    assert repaired == 0  # a SIGKILL leaves a record's whole line or none of it


def _event(writer: str, number: int) -> AuditEvent:
    """Event ``number`` of ``writer``: of varying operations, outcomes and lengths."""
    return AuditEvent(
        time=datetime.now(timezone.utc),
        principal=writer,
        operation=OPERATIONS[number % len(OPERATIONS)],
        key_id=f"{writer}.{number}",
        key_version=str(number % 7) if number % 3 else None,
        context_keys=[f"k{i}" for i in range(number % 5)],
        outcome=Outcome.SUCCESS if number % 4 else Outcome.FAILURE,
        reason="" if number % 4 else "x" * (number % 1000),
    )


def _child(path: str, writer: str, start: str, acks: str) -> None:
    log = JsonlAuditLog(path)
    acknowledge = Acknowledger(acks)
    print("ready", flush=True)
    for number in range(int(start), int(start) + EVENTS):
        log.record(_event(writer, number))
        acknowledge(number)


if __name__ == "__main__":
    _child(*sys.argv[1:5])
