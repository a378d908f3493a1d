"""Checks on what travelled on the MQTT bus: the UNS contract and Sparkplug B session rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from grading.checks._common import Params, excerpt, fmt, outcome
from grading.evidence import Evidence
from grading.model import CheckResult
from simlab.bus.recorder import RecordedMessage, topic_matches
from simlab.bus.sparkplug import (
    BD_SEQ,
    EdgeTopic,
    MessageType,
    Payload,
    SeqStatus,
    SequenceTracker,
    SparkplugError,
    StateTopic,
    decode_payload,
    parse_topic,
)
from simlab.bus.uns import UnsMessage, UnsPayloadError, UnsTopicError, parse_uns_topic

__all__ = ["check_sparkplug_rules", "check_uns_contract"]

UNS: Final = "uns_contract"
SPARKPLUG: Final = "sparkplug_rules"
UNS_PARAMS: Final = ("prefix", "topics", "min_topics", "retained", "min_hz", "max_hz", "window")
SPARKPLUG_PARAMS: Final = ("group_id", "edge_node_id", "require_death", "window")


def _under(prefix: str, topic: str) -> bool:
    if "+" in prefix or "#" in prefix:
        return topic_matches(prefix, topic)
    prefix = prefix.rstrip("/")
    return topic == prefix or topic.startswith(prefix + "/")


# --- UNS ------------------------------------------------------------------------------------


def check_uns_contract(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """Topics under ``prefix`` follow the UNS rules (ISA-95 path, JSON payload, retained, rate).

    Params: ``prefix`` (a topic prefix, or an MQTT filter); ``topics`` (topics that must be
    among them); ``min_topics`` (1); ``retained`` (true: every topic must have a retained
    copy); ``min_hz``/``max_hz`` (publish rate of each topic, in messages per simulated
    second); ``window`` [start, end].
    """
    p = Params(UNS, params, UNS_PARAMS)
    prefix = p.text("prefix")
    start, end = p.window(evidence)
    min_hz, max_hz = p.optional_number("min_hz"), p.optional_number("max_hz")
    messages = [m for m in evidence.bus if _under(prefix, m.topic) and start <= m.sim_time <= end]
    by_topic: dict[str, list[RecordedMessage]] = {}
    for message in messages:
        by_topic.setdefault(message.topic, []).append(message)
    retained = dict(evidence.retained or {})
    for topic, copy in retained.items():  # topics only a fresh subscriber saw
        if _under(prefix, topic):
            by_topic.setdefault(topic, [])
            if not by_topic[topic]:
                by_topic[topic].append(copy)
    problems: list[str] = []
    missing = [t for t in p.texts("topics", []) if t not in by_topic]
    if missing:
        problems.append(f"missing topic(s): {', '.join(missing)}")
    min_topics = int(p.number("min_topics", 1, minimum=0))
    if len(by_topic) < min_topics:
        problems.append(f"{len(by_topic)} topic(s) under {prefix!r}, at least {min_topics} needed")
    rows: list[dict[str, Any]] = []
    for topic, group in by_topic.items():
        row: dict[str, Any] = {"topic": topic, "messages": len(group)}
        try:
            parse_uns_topic(topic)
        except UnsTopicError as err:
            problems.append(f"{topic}: {err}")
            row["topic_error"] = str(err)
        bad = []
        for message in group:
            try:
                UnsMessage.from_json(message.payload)
            except UnsPayloadError as err:
                bad.append(str(err))
        if bad:
            problems.append(
                f"{topic}: {len(bad)} of {len(group)} payload(s) break the contract: {bad[0]}"
            )
            row["payload_errors"] = len(bad)
        if p.flag("retained", True):
            was_retained = topic in retained or any(m.retain for m in group)
            row["retained"] = was_retained
            if not was_retained:
                problems.append(
                    f"{topic}: not retained (a new subscriber gets no last value); publish with "
                    "retain=True"
                )
        live = [m for m in group if not m.retain]
        rate = _rate(live)
        row["rate_hz"] = None if rate is None else round(rate, 4)
        if min_hz is not None and (rate is None or rate < min_hz):
            shown = "too few messages to tell" if rate is None else f"{fmt(rate, 3)} Hz"
            problems.append(f"{topic}: published at {shown}, at least {fmt(min_hz, 3)} Hz needed")
        if max_hz is not None and rate is not None and rate > max_hz:
            problems.append(
                f"{topic}: published at {fmt(rate, 3)} Hz, at most {fmt(max_hz, 3)} Hz allowed"
            )
        rows.append(row)
    facts = {
        "prefix": prefix,
        "topics": len(by_topic),
        "retained_probe": evidence.retained is not None,
        "per_topic": excerpt(rows, 20),
    }
    if not by_topic:
        others = evidence.topics()
        hint = f"topics seen: {', '.join(others[:5])}" if others else "nothing was published"
        return outcome(
            UNS,
            False,
            f"no message under {prefix!r}",
            diagnosis=f"{hint}; UNS topics are enterprise/site/area/line/cell/asset/tag",
            evidence=facts,
        )
    if problems:
        return outcome(
            UNS,
            False,
            f"{len(problems)} UNS contract problem(s); first: {problems[0]}",
            diagnosis="\n".join(excerpt(problems, 12)),
            evidence=facts,
        )
    return outcome(
        UNS,
        True,
        f"{len(by_topic)} topic(s) under {prefix!r} follow the UNS contract",
        evidence=facts,
    )


def _rate(messages: list[RecordedMessage]) -> float | None:
    if len(messages) < 2:
        return None
    span = messages[-1].sim_time - messages[0].sim_time
    return (len(messages) - 1) / span if span > 0 else float("inf")


# --- Sparkplug B ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken Sparkplug rule: the spec's assertion id, what happened, when."""

    rule: str
    text: str
    time: float

    def line(self) -> str:
        """``[rule] text (t=..s)``."""
        return f"[{self.rule}] {self.text} (t={self.time:.1f} s)"


class _Session:
    """What the check remembers of one edge node while replaying its messages."""

    def __init__(self) -> None:
        self.tracker = SequenceTracker()
        self.born = False
        self.births: list[int] = []  # bdSeq of every accepted NBIRTH
        self.aliases: dict[int, str] = {}
        self.devices: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.deaths_matched = 0


def check_sparkplug_rules(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """An edge node's Sparkplug B session follows the spec's rules.

    Checked on every recorded message of ``spBv1.0/<group_id>/+/<edge_node_id>[/+]``: an
    NBIRTH (seq 0, with bdSeq) before any data (tck-id-payloads-ndata-order, ...-ddata-order,
    ...-dbirth-order); seq incrementing by one, 255 wrapping to 0, without gaps
    (tck-id-payloads-sequence-num-incrementing); every data message carrying a seq
    (tck-id-payloads-sequence-num-always-included); each NDEATH (the Will) carrying the bdSeq
    of an NBIRTH (tck-id-payloads-ndeath-bdseq, tck-id-topics-nbirth-bdseq-matching); aliases
    declared with their name in the births (tck-id-payloads-alias-birth-requirement), unique
    (tck-id-payloads-alias-uniqueness), and data sent by alias only
    (tck-id-payloads-alias-data-cmd-requirement).

    Params: ``group_id`` and ``edge_node_id`` (default: the scenario gateway's group and
    name); ``require_death`` (false: an NDEATH must have been seen to test bdSeq pairing);
    ``window`` [start, end].
    """
    p = Params(SPARKPLUG, params, SPARKPLUG_PARAMS)
    gateway = evidence.scenario.gateway
    group = p.text("group_id", gateway.sparkplug_group if gateway is not None else None)
    node = p.text("edge_node_id", gateway.name if gateway is not None else None)
    start, end = p.window(evidence)
    node_filter = f"spBv1.0/{group}/+/{node}"
    messages = [
        m
        for m in evidence.bus
        if start <= m.sim_time <= end
        and (topic_matches(node_filter, m.topic) or topic_matches(node_filter + "/+", m.topic))
    ]
    who = f"edge node {group}/{node}"
    if not messages:
        groups = sorted(
            {m.topic.split("/")[1] for m in evidence.bus if m.topic.startswith("spBv1.0/")}
        )
        hint = (
            f"Sparkplug groups seen: {', '.join(groups)}"
            if groups
            else "no Sparkplug message at all"
        )
        return outcome(
            SPARKPLUG,
            False,
            f"no Sparkplug message from {who}",
            diagnosis=f"{hint}; topics are spBv1.0/<group_id>/<NBIRTH|NDATA|...>/<edge_node_id>",
            evidence={"filter": node_filter},
        )
    session = _Session()
    violations: list[Violation] = []
    for message in messages:
        violations.extend(_replay(session, message))
    facts: dict[str, Any] = {
        "edge_node": f"{group}/{node}",
        "messages": dict(session.counts),
        "births": len(session.births),
        "bd_seqs": excerpt(session.births, 20),
        "deaths_matched": session.deaths_matched,
        "violations": [v.line() for v in excerpt(violations, 20)],
    }
    if not session.births:
        violations.insert(
            0,
            Violation(
                "tck-id-payloads-ndata-order",
                f"{who} never published a valid NBIRTH, so none of its data can be interpreted",
                messages[0].sim_time,
            ),
        )
    deaths = session.counts.get("NDEATH", 0)
    if p.flag("require_death", False) and deaths == 0:
        violations.append(
            Violation(
                "tck-id-payloads-ndeath-will-message",
                f"no NDEATH from {who} was seen: the bdSeq pairing with the Will could not be "
                "verified (was the Will registered? did the connection drop?)",
                end,
            )
        )
    if violations:
        first = violations[0]
        return outcome(
            SPARKPLUG,
            False,
            f"{len(violations)} Sparkplug rule violation(s) by {who}; first: [{first.rule}] "
            f"{first.text}",
            diagnosis="\n".join(v.line() for v in excerpt(violations, 10)),
            evidence=facts,
        )
    note = "" if deaths else " (no NDEATH seen: bdSeq pairing with the Will not exercised)"
    return outcome(
        SPARKPLUG,
        True,
        f"{who}: {len(messages)} message(s), {len(session.births)} birth(s), seq without gaps, "
        f"aliases declared{note}",
        evidence=facts,
    )


def _replay(session: _Session, message: RecordedMessage) -> list[Violation]:
    """Account for one message; the rules it breaks."""
    t = message.sim_time
    try:
        parsed = parse_topic(message.topic)
    except SparkplugError as err:
        return [Violation("tck-id-topic-structure", str(err), t)]
    if isinstance(parsed, StateTopic):
        return []
    kind = parsed.message_type
    session.counts[kind.value] += 1
    if kind in (MessageType.NCMD, MessageType.DCMD):
        return []  # commands come from hosts
    try:
        payload = decode_payload(message.payload)
    except SparkplugError as err:
        return [Violation(f"tck-id-payloads-{kind.value.lower()}", f"{kind} payload: {err}", t)]
    report = session.tracker.observe(parsed, payload)
    where = f"{kind}" + (f" of device {parsed.device_id}" if parsed.device_id else "")
    found: list[Violation] = []
    if kind is MessageType.NBIRTH:
        if report.status is SeqStatus.INVALID:
            rule = (
                "tck-id-payloads-nbirth-bdseq"
                if "bdSeq" in report.detail
                else "tck-id-payloads-sequence-num-zero-nbirth"
            )
            return [Violation(rule, f"NBIRTH rejected: {report.detail}", t)]
        bd_seq = session.tracker.bd_seq(parsed.group_id, parsed.edge_node_id)
        session.born = True
        session.births.append(bd_seq if bd_seq is not None else -1)
        session.aliases.clear()
        session.devices.clear()
        return _declare(session, parsed, payload, t)
    if kind is MessageType.NDEATH:
        return _death(session, payload, report.status, report.detail, t)
    # sequenced messages from a node that should be born: DBIRTH, NDATA, DDATA, DDEATH
    if report.status is SeqStatus.NO_SESSION:
        rule = {
            MessageType.DBIRTH: "tck-id-payloads-dbirth-order",
            MessageType.DDATA: "tck-id-payloads-ddata-order",
        }.get(kind, "tck-id-payloads-ndata-order")
        found.append(Violation(rule, f"{where} before the NBIRTH of the session", t))
    elif report.status is SeqStatus.INVALID:
        found.append(
            Violation(
                "tck-id-payloads-sequence-num-always-included", f"{where}: {report.detail}", t
            )
        )
    elif report.status is SeqStatus.GAP:
        found.append(
            Violation(
                "tck-id-payloads-sequence-num-incrementing",
                f"{where} has seq {report.received}, expected {report.expected} "
                f"({report.missing} missing or out of order)",
                t,
            )
        )
    if kind is MessageType.DBIRTH:
        if parsed.device_id is not None:
            session.devices.add(parsed.device_id)
        found.extend(_declare(session, parsed, payload, t))
    elif kind is MessageType.DDEATH:
        session.devices.discard(parsed.device_id or "")
    else:
        if kind is MessageType.DDATA and session.born and parsed.device_id not in session.devices:
            found.append(
                Violation(
                    "tck-id-payloads-ddata-order",
                    f"{where} before the DBIRTH of that device",
                    t,
                )
            )
        found.extend(_data_aliases(session, where, payload, t))
    return found


def _declare(session: _Session, parsed: EdgeTopic, payload: Payload, t: float) -> list[Violation]:
    """Record the aliases a birth declares; the rules it breaks."""
    found: list[Violation] = []
    for metric in payload.metrics:
        if metric.alias is None:
            continue
        if metric.name is None:
            found.append(
                Violation(
                    "tck-id-payloads-alias-birth-requirement",
                    f"{parsed.message_type} metric with alias {metric.alias} has no name",
                    t,
                )
            )
            continue
        known = session.aliases.get(metric.alias)
        if known is not None and known != metric.name:
            found.append(
                Violation(
                    "tck-id-payloads-alias-uniqueness",
                    f"alias {metric.alias} is declared for both {known!r} and {metric.name!r}",
                    t,
                )
            )
        session.aliases[metric.alias] = metric.name
    return found


def _data_aliases(session: _Session, where: str, payload: Payload, t: float) -> list[Violation]:
    if not session.born:
        return []
    found: list[Violation] = []
    for metric in payload.metrics:
        if metric.alias is not None and metric.alias not in session.aliases:
            found.append(
                Violation(
                    "tck-id-payloads-alias-birth-requirement",
                    f"{where} uses alias {metric.alias}, which no NBIRTH/DBIRTH of the session "
                    "declared",
                    t,
                )
            )
        elif metric.alias is not None and metric.name is not None:
            found.append(
                Violation(
                    "tck-id-payloads-alias-data-cmd-requirement",
                    f"{where} sends metric {metric.name!r} with its name as well as alias "
                    f"{metric.alias}: data messages carry the alias only",
                    t,
                )
            )
    return found


def _death(
    session: _Session, payload: Payload, status: SeqStatus, detail: str, t: float
) -> list[Violation]:
    found: list[Violation] = []
    if payload.seq is not None:
        found.append(
            Violation("tck-id-payloads-ndeath-seq", f"NDEATH carries seq {payload.seq}", t)
        )
    if status is SeqStatus.INVALID:
        found.append(Violation("tck-id-payloads-ndeath-bdseq", f"NDEATH rejected: {detail}", t))
    elif status is SeqStatus.DEATH:
        session.deaths_matched += 1
        session.born = False
    elif status is SeqStatus.STALE_DEATH:
        metric = payload.metric(BD_SEQ)
        value = metric.value if metric is not None else None
        if not isinstance(value, int) or value not in session.births:
            current = session.births[-1] if session.births else None
            found.append(
                Violation(
                    "tck-id-payloads-ndeath-bdseq",
                    f"NDEATH (the Will) carries bdSeq {value!r}, but the NBIRTH of the session "
                    f"carried bdSeq {current}: they must match "
                    "(tck-id-topics-nbirth-bdseq-matching); set a fresh Will with the next bdSeq "
                    "before every CONNECT and put the same number in the NBIRTH",
                    t,
                )
            )
    return found
