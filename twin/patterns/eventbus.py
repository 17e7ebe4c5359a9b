"""An event bus over the simulated network: topics, QoS 0/1, ordering, bounded queues.

Publishers publish on a topic from a node; every subscription of the topic gets
a copy carried by the transport (`Network.deliver`) from the publisher's node to
the subscriber's node. The bus object stands for the whole broker: its state
sits on both sides of the links, and only what crosses a link (event copies,
acks) travels through the transport.

Ordering. Events carry a sequence number per (topic, publisher), from 1. Each
subscription hands a publisher's events to its queue in sequence order: an
early arrival is held back until the ones before it have come. A subscription
only waits for sequence numbers published after it subscribed. A missing
event is not waited for forever: no event is held longer than the gap timeout,
`gap_timeout_s` (QoS 0) or until the publisher's last retry could have come
(QoS 1: `(max_deliveries - 1) * ack_timeout_s + gap_timeout_s`). The deadline
runs from the arrival of the earliest held event and is not pushed back by
later arrivals or by gaps further on: when it passes, the subscription skips
the missing numbers below that event (counted as `gaps_skipped`) and hands
over what was held behind them, up to the next gap, whose own deadline may
already have passed too. So under steady loss the stream lags by at most the
gap timeout instead of falling further behind at every gap. A QoS 0 event that
arrives after its number was skipped is discarded (`late`).

QoS 0 (at most once): one copy, fire and forget; lost copies are lost (counted
per topic as `lost`, from the transport's answer).

QoS 1 (at least once): the bus keeps each event per subscription until that
subscription's ack reaches the publisher's node. Without an ack within
`ack_timeout_s` it sends the copy again (same seq, `delivery` + 1); after
`max_deliveries` copies without an ack it gives up and, if the topic names a
`dead_letter_topic`, publishes a `DeadLetter` wrapping the original event
there (from the original publisher and node). A copy that reaches a
subscription whose sequence cursor is already past its number goes:

- nowhere, if the app acked that seq: the ack is sent again (the first one was
  evidently lost) and the copy counts as a `duplicate`;
- nowhere, if the seq is still waiting in the queue or held: the app will get
  that one (a `duplicate`);
- to the app, appended to the queue with its `delivery` number, if the app
  took it without acking it, or it was dropped by the overflow policy, or its
  number was skipped as a gap (at least once wins over order for these; the
  cursor does not move back, so first deliveries stay in sequence order and
  such a copy is the only thing that can arrive below the cursor).

An app that acks what it takes therefore sees each event exactly once and in
order, however the network loses, delays or reorders copies and acks, as
long as no event is given up on. Events held behind a missing one are not
acked while held, so the publisher side keeps retrying them too; behind an
event that is given up on, they may be given up on (dead-lettered) as well
before the gap is skipped. They still reach the app, in order, after the
skip; their acks then come too late and count as `stale_acks`. At least once
cuts both ways: the dead-letter topic may hold events a subscriber did get.

Bounded queues. Each subscription holds at most `queue_size` events:

- DROP_OLDEST evicts the oldest queued event for the incoming one;
- DROP_NEWEST drops the incoming event;
- BLOCK never drops. It is credit-based: the bus sends a first delivery to a
  BLOCK subscription only while its events in flight, held and queued number
  fewer than `queue_size`; otherwise the copy waits in the subscription's
  backlog and the publisher's `publish()` event succeeds only once every such
  copy has been sent (backpressure). Credit comes back when the app takes an
  event or a copy is discarded on arrival; the credit signal itself is not
  modelled as crossing the network. QoS 1 redeliveries bypass the credit
  (gating them could wait forever behind held events), so a BLOCK queue may
  exceed `queue_size` by the redeliveries in flight.

A DROP_* subscription never delays the publisher: `publish()` then succeeds at
once. A publisher that does not yield `publish()` gets no backpressure; its
copies for a full BLOCK subscription wait in the backlog (unbounded).

Counters are kept per topic and per subscription; `EventBus.snapshot()` and
`Subscription.snapshot()` copy them out, together with what is held, in flight
and queued at that moment. For one subscription of a QoS 0 topic with no
overflow drops, every copy sent is, at any moment, exactly one of: delivered,
lost, late, held or in flight.

Two optional hooks. `on_event(kind, detail)` traces the bus's own steps:
published, delivered, dropped, redelivered, dead_lettered, acked, and also
lost, held, gap_skipped, blocked. `observer(topic, publisher, subscriber,
sent_s, arrived_s, outcome)` follows each copy sent to a subscription
(`DeliveryObserver`); `sent_s` is when it was handed to the transport,
`arrived_s` when it reached the subscriber's node (None if it never did), and
`outcome` one of:

- "ok": put in the subscriber's queue (a held copy when it is released, with
  its arrival time);
- "lost": lost by the transport (reported when sent);
- "dropped": discarded by the overflow policy; with DROP_OLDEST this is the
  evicted copy, already reported "ok" when it was queued;
- "duplicate": a QoS 1 copy the subscription already had;
- "late": a QoS 0 copy that came after its number was skipped;
- "dead_letter": QoS 1, the bus gave up on the event for that subscription
  (reported once, with the last copy's `sent_s` and no arrival).

Copies still held or in flight when the run ends have not been reported. The
clock is the SimPy environment.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, cast

import simpy

from servo_core.errors import ConfigError

__all__ = [
    "DeadLetter",
    "DeliveryObserver",
    "Event",
    "EventBus",
    "Overflow",
    "QoS",
    "SubscriberConfig",
    "SubscriberSnapshot",
    "Subscription",
    "TopicConfig",
    "TopicSnapshot",
    "Transport",
]

Transport = Callable[[str, str, Callable[[Any], None], Any], bool]


class DeliveryObserver(Protocol):
    """Told the fate of each copy sent to a subscription (see the module docstring)."""

    def __call__(
        self,
        topic: str,
        publisher: str,
        subscriber: str,
        sent_s: float,
        arrived_s: float | None,
        outcome: str,
    ) -> None: ...


class QoS(enum.IntEnum):
    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1


class Overflow(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


@dataclass(frozen=True)
class TopicConfig:
    qos: QoS = QoS.AT_MOST_ONCE
    ack_timeout_s: float = 0.05  # QoS 1: wait this long for an ack before sending again
    max_deliveries: int = 3  # QoS 1: copies sent (first included) before giving up
    dead_letter_topic: str | None = None  # QoS 1: where given-up events go
    gap_timeout_s: float = 0.1  # how long a held event waits for a missing one (QoS 1: after retries)

    def __post_init__(self) -> None:
        if self.ack_timeout_s <= 0:
            raise ConfigError(f"ack_timeout_s must be positive, got {self.ack_timeout_s}")
        if self.max_deliveries < 1:
            raise ConfigError(f"max_deliveries must be at least 1, got {self.max_deliveries}")
        if self.gap_timeout_s <= 0:
            raise ConfigError(f"gap_timeout_s must be positive, got {self.gap_timeout_s}")

    @property
    def effective_gap_timeout_s(self) -> float:
        """How long a subscription waits for a missing sequence number before skipping it."""
        if self.qos is QoS.AT_LEAST_ONCE:  # until the last retry could have come
            return (self.max_deliveries - 1) * self.ack_timeout_s + self.gap_timeout_s
        return self.gap_timeout_s


@dataclass(frozen=True)
class SubscriberConfig:
    queue_size: int = 100
    overflow: Overflow = Overflow.DROP_OLDEST

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {self.queue_size}")


@dataclass(frozen=True)
class Event:
    topic: str
    publisher: str
    seq: int  # per (topic, publisher), from 1
    payload: Any
    published_at: float  # s, simulation time
    delivery: int  # 1 for the first copy, 2.. for redeliveries


@dataclass(frozen=True)
class DeadLetter:
    """The payload of an event published on a dead-letter topic."""

    event: Event  # the original event (its first copy)
    subscriber: str  # the subscription that never acked it
    deliveries: int  # copies sent


@dataclass
class _TopicStats:
    published: int = 0
    sent: int = 0  # copies handed to the transport, redeliveries included
    lost: int = 0  # copies the transport dropped
    redeliveries: int = 0  # QoS 1 copies sent again after an ack timeout
    acked: int = 0  # acks that reached the publisher's node in time
    stale_acks: int = 0  # acks for events already acked or given up
    dead_lettered: int = 0
    blocked: int = 0  # publishes that had to wait for a BLOCK subscription
    delivered: int = 0  # the subscriptions' counters, summed
    dropped: int = 0
    reordered_held: int = 0
    gaps_skipped: int = 0
    duplicates: int = 0
    late: int = 0


@dataclass
class _SubscriberStats:
    delivered: int = 0  # events put in the queue (redeliveries to the app included)
    redelivered: int = 0  # of those, copies with delivery > 1
    dropped: int = 0  # by the overflow policy
    lost: int = 0  # copies the transport dropped
    reordered_held: int = 0  # early arrivals held back to restore order
    gaps_skipped: int = 0  # sequence numbers given up on after the gap timeout
    duplicates: int = 0  # QoS 1 copies discarded (acked already, or queued or held already)
    late: int = 0  # QoS 0 copies that came after their number was skipped
    acked: int = 0  # acks the app sent
    dead_lettered: int = 0  # QoS 1 events given up on


@dataclass(frozen=True)
class SubscriberSnapshot:
    """One subscription's counters, and what it holds, at one moment."""

    delivered: int  # events put in the queue (redeliveries to the app included)
    redelivered: int  # of those, copies with delivery > 1
    dropped: int  # by the overflow policy
    lost: int  # copies the transport dropped
    reordered_held: int  # early arrivals held back to restore order (so far)
    gaps_skipped: int  # sequence numbers given up on after the gap timeout
    duplicates: int  # QoS 1 copies discarded (acked already, or queued or held already)
    late: int  # QoS 0 copies that came after their number was skipped
    acked: int  # acks the app sent
    dead_lettered: int  # QoS 1 events given up on
    held: int  # events held behind a gap now
    in_flight: int  # copies sent, not arrived yet
    queue_len: int  # events waiting for the app now
    backlog_len: int  # BLOCK: first copies waiting for room before they are sent


@dataclass(frozen=True)
class TopicSnapshot:
    """A topic's counters at one moment; the subscriber-side ones are summed over its subscriptions."""

    published: int
    sent: int  # copies handed to the transport, redeliveries included
    lost: int  # copies the transport dropped
    redeliveries: int  # QoS 1 copies sent again after an ack timeout
    acked: int  # acks that reached the publisher's node in time
    stale_acks: int  # acks for events already acked or given up
    dead_lettered: int
    blocked: int  # publishes that had to wait for a BLOCK subscription
    delivered: int
    dropped: int
    reordered_held: int
    gaps_skipped: int
    duplicates: int
    late: int
    held: int  # now
    in_flight: int  # now
    subscribers: dict[str, SubscriberSnapshot]


@dataclass
class _Stream:
    """What one subscription knows about one publisher's events."""

    publisher: str
    next_seq: int
    node: str  # the publisher's node, where acks go
    # Held back behind a gap, by seq. Insertion order is arrival order, so the first value is the
    # earliest arrival, from which the gap deadline runs.
    held: dict[int, _Envelope] = field(default_factory=dict)
    # QoS 1, seqs below next_seq the app has not acked: "queued", "taken", "dropped" or "skipped".
    # Entries leave on the app's ack, so this grows only by events that never reach the app.
    unacked: dict[int, str] = field(default_factory=dict)
    timer_at: float | None = None  # when the running gap timer fires


@dataclass(slots=True)
class _Envelope:
    """One copy in transit: the event, where it was sent from and when, when it arrived."""

    event: Event
    node: str  # the publisher's node
    sent_s: float
    arrived_s: float = 0.0


@dataclass(frozen=True)
class _Ack:
    subscription: Subscription
    publisher: str
    seq: int


@dataclass
class _Pending:
    """A QoS 1 event the publisher side keeps until the subscription acks it."""

    event: Event
    node: str
    deliveries: int = 0
    sent_s: float = 0.0  # when the last copy went out


@dataclass
class _Ticket:
    """A publish waiting for BLOCK subscriptions to have room."""

    done: simpy.Event
    event: Event
    remaining: int


class _Topic:
    def __init__(self, name: str, config: TopicConfig) -> None:
        self.name = name
        self.config = config
        self.subscriptions: list[Subscription] = []
        self.last_seq: dict[str, int] = {}
        self.stats = _TopicStats()


class Subscription:
    """One subscriber's view of a topic: an ordered, bounded queue of events."""

    def __init__(self, bus: EventBus, topic: _Topic, name: str, node: str, config: SubscriberConfig) -> None:
        self.bus = bus
        self.env = bus.env
        self._topic = topic
        self.topic = topic.name
        self.name = name
        self.node = node
        self.config = config
        self._stats = _SubscriberStats()
        self._store: simpy.Store = simpy.Store(self.env)
        self._streams: dict[str, _Stream] = {}
        self._start_seq = dict(topic.last_seq)  # only events published from now on are awaited
        self._in_flight = 0  # copies sent to this subscription, not arrived yet
        self._held = 0
        self._backlog: deque[tuple[Event, str, _Ticket]] = deque()  # BLOCK: first copies awaiting credit
        self._draining = False
        self._queued: dict[int, _Envelope] = {}  # with an observer: queued copies by id(event)

    # --- the subscriber's side -------------------------------------------------

    def get(self) -> simpy.Event:
        """The next event in order (a store get); the subscriber's process yields it."""
        request = self._store.get()
        request.callbacks.append(self._taken)
        return request

    def ack(self, event: Event) -> None:
        """QoS 1: acknowledge; the ack crosses the network back to the publisher's node."""
        if self._topic.config.qos is not QoS.AT_LEAST_ONCE:
            return
        stream = self._streams.get(event.publisher)
        if stream is None or event.seq >= stream.next_seq or event.seq not in stream.unacked:
            return  # not handed over yet, or acked already
        del stream.unacked[event.seq]
        self._stats.acked += 1
        self._send_ack(stream, event.publisher, event.seq)

    @property
    def queue_len(self) -> int:
        return len(self._store.items)

    @property
    def held_len(self) -> int:
        return self._held

    @property
    def backlog_len(self) -> int:
        """BLOCK: first copies waiting for room before the bus sends them."""
        return len(self._backlog)

    def snapshot(self) -> SubscriberSnapshot:
        return SubscriberSnapshot(
            **asdict(self._stats),
            held=self._held,
            in_flight=self._in_flight,
            queue_len=len(self._store.items),
            backlog_len=len(self._backlog),
        )

    # --- arrivals ----------------------------------------------------------------

    def _arrive(self, envelope: _Envelope) -> None:
        self._in_flight -= 1
        envelope.arrived_s = self.env.now
        event = envelope.event
        stream = self._streams.get(event.publisher)
        if stream is None:
            stream = _Stream(event.publisher, self._start_seq.get(event.publisher, 0) + 1, envelope.node)
            self._streams[event.publisher] = stream
        stream.node = envelope.node
        qos1 = self._topic.config.qos is QoS.AT_LEAST_ONCE
        if event.seq == stream.next_seq:
            self._enqueue(stream, envelope)
            stream.next_seq += 1
            if stream.held:
                self._flush(stream)
                self._arm_gap_timer(stream)
        elif event.seq > stream.next_seq:
            if event.seq in stream.held:
                self._count("duplicates")
                self._observe(envelope, "duplicate")
            else:
                stream.held[event.seq] = envelope
                self._held += 1
                self._count("reordered_held")
                self.bus._trace("held", event, self)
                self._arm_gap_timer(stream)
        elif not qos1:
            self._count("late")
            self._observe(envelope, "late")
        else:
            status = stream.unacked.get(event.seq)
            if status is None:  # acked: the ack must have been lost, send it again
                self._count("duplicates")
                self._observe(envelope, "duplicate")
                self._send_ack(stream, event.publisher, event.seq)
            elif status == "queued":
                self._count("duplicates")
                self._observe(envelope, "duplicate")
            else:  # taken without an ack, dropped on overflow, or skipped: at least once
                self._enqueue(stream, envelope)
        self._drain()

    def _enqueue(self, stream: _Stream, envelope: _Envelope) -> None:
        event = envelope.event
        qos1 = self._topic.config.qos is QoS.AT_LEAST_ONCE
        items = self._store.items
        if len(items) >= self.config.queue_size:
            if self.config.overflow is Overflow.DROP_NEWEST:
                if qos1:
                    stream.unacked[event.seq] = "dropped"
                self._count("dropped")
                self.bus._trace("dropped", event, self)
                self._observe(envelope, "dropped")
                return
            if self.config.overflow is Overflow.DROP_OLDEST:
                oldest: Event = items.pop(0)
                old_stream = self._streams[oldest.publisher]
                if qos1 and old_stream.unacked.get(oldest.seq) == "queued":
                    old_stream.unacked[oldest.seq] = "dropped"
                self._count("dropped")
                self.bus._trace("dropped", oldest, self)
                if self.bus.observer is not None:
                    self._observe_evicted(oldest)
            # BLOCK never drops (see the module docstring for when it can exceed the bound)
        if qos1:
            stream.unacked[event.seq] = "queued"
        self._count("delivered")
        if event.delivery > 1:
            self._stats.redelivered += 1
        self.bus._trace("delivered", event, self)
        if self.bus.observer is not None:
            self._queued[id(event)] = envelope
            self._observe(envelope, "ok")
        self._store.put(event)

    def _flush(self, stream: _Stream) -> None:
        """Hand over the held events that follow the cursor without a gap."""
        held = stream.held
        while stream.next_seq in held:
            envelope = held.pop(stream.next_seq)
            self._held -= 1
            self._enqueue(stream, envelope)
            stream.next_seq += 1

    def _arm_gap_timer(self, stream: _Stream) -> None:
        """While events are held, time the wait from the earliest arrival among them.

        That arrival only moves later as held events leave, so a running timer
        is never late: it fires at or before the deadline, and re-arms if early.
        """
        if not stream.held or stream.timer_at is not None:
            return
        earliest = next(iter(stream.held.values()))
        deadline = earliest.arrived_s + self._topic.config.effective_gap_timeout_s
        stream.timer_at = deadline
        timer = self.env.timeout(max(0.0, deadline - self.env.now))
        timer.callbacks.append(lambda _timer: self._gap_expired(stream, deadline))

    def _gap_expired(self, stream: _Stream, deadline: float) -> None:
        stream.timer_at = None
        # The deadline itself counts as reached, whatever rounding did to the timer's delay.
        now = max(self.env.now, deadline)
        timeout = self._topic.config.effective_gap_timeout_s
        qos1 = self._topic.config.qos is QoS.AT_LEAST_ONCE
        held = stream.held
        while held and next(iter(held.values())).arrived_s + timeout <= now:
            first = min(held)
            if qos1:
                for seq in range(stream.next_seq, first):
                    stream.unacked[seq] = "skipped"
            self._count("gaps_skipped", first - stream.next_seq)
            self.bus._trace_detail(
                "gap_skipped",
                topic=self.topic,
                publisher=stream.publisher,
                subscriber=self.name,
                from_seq=stream.next_seq,
                to_seq=first - 1,
            )
            stream.next_seq = first
            self._flush(stream)
        self._arm_gap_timer(stream)

    def _observe(self, envelope: _Envelope, outcome: str) -> None:
        observer = self.bus.observer
        if observer is not None:
            event = envelope.event
            arrived = None if outcome == "lost" or outcome == "dead_letter" else envelope.arrived_s
            observer(self.topic, event.publisher, self.name, envelope.sent_s, arrived, outcome)

    def _observe_evicted(self, event: Event) -> None:
        envelope = self._queued.pop(id(event), None)
        if envelope is None:  # queued before the observer was attached: its times are unknown
            envelope = _Envelope(event, "", event.published_at, event.published_at)
        self._observe(envelope, "dropped")

    def _taken(self, request: simpy.Event) -> None:
        if not request.ok:
            return
        # simpy types Event.value as Optional[Any]; a granted get's value is the item taken.
        event = cast(Event, request.value)
        if self._queued:
            self._queued.pop(id(event), None)
        stream = self._streams[event.publisher]
        if stream.unacked.get(event.seq) == "queued":
            stream.unacked[event.seq] = "taken"
        self._drain()

    def _send_ack(self, stream: _Stream, publisher: str, seq: int) -> None:
        self.bus.transport(self.node, stream.node, self.bus._on_ack, _Ack(self, publisher, seq))

    def _count(self, name: str, n: int = 1) -> None:
        setattr(self._stats, name, getattr(self._stats, name) + n)
        topic_stats = self._topic.stats
        setattr(topic_stats, name, getattr(topic_stats, name) + n)

    # --- BLOCK credit ------------------------------------------------------------

    def _has_room(self) -> bool:
        return self._in_flight + self._held + len(self._store.items) < self.config.queue_size

    def _drain(self) -> None:
        """Send backlogged first copies while there is room (not re-entrant)."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._backlog and self._has_room():
                event, node, ticket = self._backlog.popleft()
                self.bus._send(self, event, node)
                ticket.remaining -= 1
                if ticket.remaining == 0:
                    ticket.done.succeed(ticket.event)
        finally:
            self._draining = False


class EventBus:
    """Topics with QoS 0/1, per-publisher ordering and bounded subscriber queues."""

    def __init__(
        self,
        env: simpy.Environment,
        transport: Transport,
        on_event: Callable[[str, dict], None] | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.env = env
        self.transport = transport
        self.on_event = on_event
        self.observer = observer
        self._topics: dict[str, _Topic] = {}
        self._pending: dict[tuple[Subscription, str, int], _Pending] = {}

    # --- declaration -------------------------------------------------------------

    def topic(self, name: str, config: TopicConfig = TopicConfig()) -> None:
        """Declare a topic. Declaring it again with the same config does nothing."""
        if config.dead_letter_topic == name:
            raise ConfigError(f"topic {name!r} cannot be its own dead-letter topic")
        existing = self._topics.get(name)
        if existing is not None:
            if existing.config != config:
                raise ConfigError(f"topic {name!r} is already declared with {existing.config}")
            return
        self._topics[name] = _Topic(name, config)

    def subscribe(
        self,
        topic: str,
        subscriber: str,
        node: str,
        config: SubscriberConfig = SubscriberConfig(),
    ) -> Subscription:
        t = self._get_topic(topic)
        if any(s.name == subscriber for s in t.subscriptions):
            raise ConfigError(f"topic {topic!r} already has a subscriber named {subscriber!r}")
        subscription = Subscription(self, t, subscriber, node, config)
        t.subscriptions.append(subscription)
        return subscription

    def subscriptions(self, topic: str) -> list[Subscription]:
        return list(self._get_topic(topic).subscriptions)

    def snapshot(self) -> dict[str, TopicSnapshot]:
        """Every topic's counters, and its subscriptions', by topic (in declaration order)."""
        out = {}
        for name, t in self._topics.items():
            subscribers = {s.name: s.snapshot() for s in t.subscriptions}
            subs = subscribers.values()
            out[name] = TopicSnapshot(
                **asdict(t.stats),
                held=sum(s.held for s in subs),
                in_flight=sum(s.in_flight for s in subs),
                subscribers=subscribers,
            )
        return out

    # --- publishing --------------------------------------------------------------

    def publish(self, topic: str, publisher: str, node: str, payload: Any) -> simpy.Event:
        """Publish; the returned event (value: the Event) succeeds once every copy is sent.

        That is at once, except with a BLOCK subscription that has no room,
        where it succeeds when room frees up (backpressure).
        """
        t = self._get_topic(topic)
        seq = t.last_seq.get(publisher, 0) + 1
        t.last_seq[publisher] = seq
        event = Event(topic, publisher, seq, payload, self.env.now, 1)
        t.stats.published += 1
        self._trace("published", event)
        done = self.env.event()
        ticket = _Ticket(done, event, 0)
        for subscription in t.subscriptions:
            blocks = subscription.config.overflow is Overflow.BLOCK
            if blocks and (subscription._backlog or not subscription._has_room()):
                subscription._backlog.append((event, node, ticket))
                ticket.remaining += 1
            else:
                self._send(subscription, event, node)
        if ticket.remaining == 0:
            done.succeed(event)
        else:
            t.stats.blocked += 1
            self._trace("blocked", event)
        return done

    def _send(self, subscription: Subscription, event: Event, node: str) -> None:
        """Hand one copy to the transport; QoS 1 keeps it and arms the ack timer."""
        t = subscription._topic
        t.stats.sent += 1
        now = self.env.now
        envelope = _Envelope(event, node, now)
        subscription._in_flight += 1  # before: a same-node delivery arrives inside the call
        if not self.transport(node, subscription.node, subscription._arrive, envelope):
            subscription._in_flight -= 1
            subscription._count("lost")
            self._trace("lost", event, subscription)
            subscription._observe(envelope, "lost")
        if t.config.qos is QoS.AT_LEAST_ONCE:
            key = (subscription, event.publisher, event.seq)
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(event, node)
            pending.deliveries = event.delivery
            pending.sent_s = now
            timer = self.env.timeout(t.config.ack_timeout_s)
            delivery = event.delivery
            timer.callbacks.append(lambda _timer: self._ack_timeout(key, delivery))

    def _ack_timeout(self, key: tuple[Subscription, str, int], delivery: int) -> None:
        pending = self._pending.get(key)
        if pending is None or pending.deliveries != delivery:
            return  # acked meanwhile
        subscription = key[0]
        t = subscription._topic
        if delivery < t.config.max_deliveries:
            copy = replace(pending.event, delivery=delivery + 1)
            t.stats.redeliveries += 1
            self._trace("redelivered", copy, subscription)
            self._send(subscription, copy, pending.node)
            return
        del self._pending[key]
        subscription._count("dead_lettered")
        self._trace("dead_lettered", pending.event, subscription)
        subscription._observe(_Envelope(pending.event, pending.node, pending.sent_s), "dead_letter")
        dead_letter_topic = t.config.dead_letter_topic
        if dead_letter_topic is not None:
            if dead_letter_topic not in self._topics:
                self.topic(dead_letter_topic)
            letter = DeadLetter(pending.event, subscription.name, delivery)
            self.publish(dead_letter_topic, pending.event.publisher, pending.node, letter)

    def _on_ack(self, ack: _Ack) -> None:
        t = ack.subscription._topic
        if self._pending.pop((ack.subscription, ack.publisher, ack.seq), None) is None:
            t.stats.stale_acks += 1
            return
        t.stats.acked += 1
        self._trace_detail(
            "acked", topic=t.name, publisher=ack.publisher, seq=ack.seq, subscriber=ack.subscription.name
        )

    # --- helpers -----------------------------------------------------------------

    def _get_topic(self, name: str) -> _Topic:
        t = self._topics.get(name)
        if t is None:
            raise ConfigError(f"unknown topic {name!r}; declare it with EventBus.topic() first")
        return t

    def _trace(self, kind: str, event: Event, subscription: Subscription | None = None) -> None:
        if self.on_event is None:
            return
        detail: dict[str, Any] = {
            "topic": event.topic,
            "publisher": event.publisher,
            "seq": event.seq,
            "delivery": event.delivery,
        }
        if subscription is not None:
            detail["subscriber"] = subscription.name
        self._trace_detail(kind, **detail)

    def _trace_detail(self, kind: str, **detail: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, {"t": self.env.now, **detail})
