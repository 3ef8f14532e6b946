"""Complex event processing in Python: find patterns in each key's events, in event-time
order, with the pattern API of FlinkCEP (the same semantics as the Rust SDK's
``rivulet_sdk::cep``).

    pattern = (Pattern.begin("fails").where(lambda e: e["type"] == "fail").times(3).consecutive()
               .next("success").where(lambda e: e["type"] == "success")
               .within(60_000).skip(SKIP_PAST_LAST_EVENT))
    attacks = Cep("attacks", pattern)          # in open
    attacks.process(ctx, event, ts)            # in process: buffered until the watermark
    found = attacks.on_timer(ctx, ts)          # in on_timer: found.matches, found.timed_out

Events are JSON values; partial matches and waiting events live in keyed state, so they
are checkpointed, rescaled and swapped with the job.
"""

from typing import Any, Callable, Dict, List, Optional

from . import JSON, Context, MapState, ValueState

__all__ = ["Pattern", "Cep", "Match", "NO_SKIP", "SKIP_TO_NEXT", "SKIP_PAST_LAST_EVENT", "skip_to_first", "skip_to_last"]

STRICT, RELAXED, ANY = "strict", "relaxed", "any"
NO_SKIP = ("no-skip", None)
SKIP_TO_NEXT = ("skip-to-next", None)
SKIP_PAST_LAST_EVENT = ("skip-past-last-event", None)


def skip_to_first(stage: str):
    """Drop partial matches that started before the first event of ``stage`` in a match."""
    return ("skip-to-first", stage)


def skip_to_last(stage: str):
    """Drop partial matches that started before the last event of ``stage`` in a match."""
    return ("skip-to-last", stage)


class _Stage:
    def __init__(self, name: str, negative: Optional[str], entry: str):
        self.name = name
        self.negative = negative  # "not-next" | "not-followed-by" | None
        self.entry = entry
        self.conditions: List[List[Callable[[Any], bool]]] = []
        self.min, self.max = 1, 1
        self.inner = RELAXED
        self.until: Optional[Callable[[Any], bool]] = None
        self.guards: List[tuple] = []

    def matches(self, e: Any) -> bool:
        return not self.conditions or any(all(c(e) for c in alt) for alt in self.conditions)


class Pattern:
    """A sequence of stages; see the module's documentation."""

    def __init__(self) -> None:
        self._stages: List[_Stage] = []
        self._within: Optional[int] = None
        self._skip = NO_SKIP

    @staticmethod
    def begin(name: str) -> "Pattern":
        """Start a pattern with the stage ``name``."""
        p = Pattern()
        p._stages.append(_Stage(name, None, RELAXED))
        return p

    def _add(self, name: str, negative: Optional[str], entry: str) -> "Pattern":
        self._stages.append(_Stage(name, negative, entry))
        return self

    def next(self, name: str) -> "Pattern":
        """A stage directly after the previous one (strict contiguity)."""
        return self._add(name, None, STRICT)

    def followed_by(self, name: str) -> "Pattern":
        """A stage after the previous one, skipping events that do not match it."""
        return self._add(name, None, RELAXED)

    def followed_by_any(self, name: str) -> "Pattern":
        """A stage after the previous one, skipping any events."""
        return self._add(name, None, ANY)

    def not_next(self, name: str) -> "Pattern":
        """The event directly after the previous stage must not match this one."""
        return self._add(name, "not-next", STRICT)

    def not_followed_by(self, name: str) -> "Pattern":
        """No event before the next stage may match this one."""
        return self._add(name, "not-followed-by", RELAXED)

    def where(self, condition: Callable[[Any], bool]) -> "Pattern":
        """The current stage's events must satisfy ``condition`` (AND)."""
        s = self._stages[-1]
        if not s.conditions:
            s.conditions.append([])
        s.conditions[-1].append(condition)
        return self

    def or_(self, condition: Callable[[Any], bool]) -> "Pattern":
        """…or ``condition`` instead (OR)."""
        self._stages[-1].conditions.append([condition])
        return self

    def times(self, n: int, max_n: Optional[int] = None) -> "Pattern":
        """The current stage matches ``n`` events (``n`` to ``max_n`` if given)."""
        s = self._stages[-1]
        s.min, s.max = n, (n if max_n is None else max_n)
        return self

    def one_or_more(self) -> "Pattern":
        """The current stage matches one or more events."""
        s = self._stages[-1]
        s.min, s.max = max(s.min, 1), None
        return self

    def optional(self) -> "Pattern":
        """The current stage may match no event."""
        self._stages[-1].min = 0
        return self

    def consecutive(self) -> "Pattern":
        """The current stage's events must follow each other directly."""
        self._stages[-1].inner = STRICT
        return self

    def allow_combinations(self) -> "Pattern":
        """The current stage's events may skip matching events too."""
        self._stages[-1].inner = ANY
        return self

    def until(self, condition: Callable[[Any], bool]) -> "Pattern":
        """The current looping stage stops at an event satisfying ``condition``."""
        self._stages[-1].until = condition
        return self

    def within(self, ms: int) -> "Pattern":
        """A match must complete less than ``ms`` after its first event."""
        self._within = ms
        return self

    def skip(self, strategy) -> "Pattern":
        """The after-match skip strategy (``NO_SKIP`` by default)."""
        self._skip = strategy
        return self

    def _compile(self) -> List[_Stage]:
        stages: List[_Stage] = []
        guards: List[tuple] = []
        for i, s in enumerate(self._stages):
            if s.max is not None and s.max < max(s.min, 1):
                raise ValueError(f"stage {s.name!r}: max below min")
            if s.negative:
                if i + 1 == len(self._stages):
                    raise ValueError(f"stage {s.name!r}: a pattern cannot end with a negative stage")
                guards.append((s.negative, s.matches))
                continue
            if any(x.name == s.name for x in stages):
                raise ValueError(f"stage {s.name!r} is named twice")
            s.guards, guards = guards, []
            stages.append(s)
        if all(s.min == 0 for s in stages):
            raise ValueError("every stage is optional")
        return stages


class Match:
    """A complete or timed-out match: ``events`` is a list of (stage, timestamp, event)."""

    def __init__(self, names: List[str], events: List[list]):
        self.events = [(names[e[0]], e[2], e[3]) for e in events]
        self._seqs = [(names[e[0]], e[1]) for e in events]

    def get(self, stage: str) -> List[Any]:
        """The events the stage took, in order."""
        return [e for (s, _, e) in self.events if s == stage]

    def timestamps(self, stage: str) -> List[int]:
        """The times of the stage's events."""
        return [t for (s, t, _) in self.events if s == stage]

    def first_timestamp(self) -> int:
        return self.events[0][1]

    def last_timestamp(self) -> int:
        return self.events[-1][1]


class _Nfa:
    """Partial matches are dicts: stage, taken, loop, next, skipped, events [[stage, seq, ts, event]]."""

    def __init__(self, pattern: Pattern):
        self.stages = pattern._compile()
        self.names = [s.name for s in self.stages]
        self.within = pattern._within
        self.skip = pattern._skip

    def _complete(self, k: int, taken: int) -> bool:
        return taken >= self.stages[k].min and all(s.min == 0 for s in self.stages[k + 1:])

    def _can_grow(self, k: int, taken: int) -> bool:
        m = self.stages[k].max
        return m is None or taken < m or k + 1 < len(self.stages)

    def _settle(self, p: dict, nxt: list, done: list) -> None:
        if self._complete(p["stage"], p["taken"]):
            done.append(dict(p))
        if self._can_grow(p["stage"], p["taken"]):
            nxt.append(p)

    def _targets(self, k: int) -> List[int]:
        out, j = [], k + 1
        while j < len(self.stages):
            out.append(j)
            if self.stages[j].min > 0:
                break
            j += 1
        return out

    @staticmethod
    def _take(p: Optional[dict], stage: int, taken: int, e: Any, ts: int, seq: int) -> dict:
        events = (p["events"] if p else []) + [[stage, seq, ts, e]]
        return {"stage": stage, "taken": taken, "loop": True, "next": True, "skipped": 0, "events": events}

    def _consume(self, p: dict, e: Any, ts: int, seq: int, nxt: list, done: list) -> None:
        k = p["stage"]
        s = self.stages[k]
        loop_open = p["loop"] and (s.max is None or p["taken"] < s.max)
        took_loop = took_next = False
        if loop_open:
            if s.until is not None and s.until(e):
                loop_open = False
            elif s.matches(e):
                self._settle(self._take(p, k, p["taken"] + 1, e, ts, seq), nxt, done)
                took_loop = True
        next_open = p["next"] and p["taken"] >= s.min and k + 1 < len(self.stages)
        if next_open:
            targets = self._targets(k)
            for j in targets:
                violated = any(
                    (kind == "not-next" and p["skipped"] == 0 and c(e)) or (kind == "not-followed-by" and c(e))
                    for t in targets if t <= j for (kind, c) in self.stages[t].guards
                )
                if violated:
                    next_open = False
                    break
                if self.stages[j].matches(e):
                    self._settle(self._take(p, j, 1, e, ts, seq), nxt, done)
                    took_next = True

        def survives(open_: bool, contiguity: str, took: bool) -> bool:
            return open_ and (contiguity == ANY or (contiguity == RELAXED and not took))

        loop_s = survives(loop_open, s.inner, took_loop)
        entry = self.stages[k + 1].entry if k + 1 < len(self.stages) else STRICT
        next_s = survives(next_open, entry, took_next)
        if loop_s or next_s:
            nxt.append(dict(p, loop=loop_s, next=next_s, skipped=p["skipped"] + 1))

    def step(self, partials: List[dict], e: Any, ts: int, seq: int):
        matches, timed_out, nxt, done = [], [], [], []
        for p in partials:
            if self.within is not None and ts - p["events"][0][2] >= self.within:
                timed_out.append(Match(self.names, p["events"]))
                continue
            self._consume(p, e, ts, seq, nxt, done)
        for j, st in enumerate(self.stages):
            if st.matches(e):
                self._settle(self._take(None, j, 1, e, ts, seq), nxt, done)
            if st.min > 0:
                break
        done.sort(key=lambda p: (p["events"][0][1], p["events"][-1][1]))
        cut = None
        kind, stage = self.skip
        for p in done:
            first = p["events"][0][1]
            if cut is not None and (first <= cut[0] if cut[1] else first < cut[0]):
                continue
            m = Match(self.names, p["events"])
            bound = None
            if kind == "skip-to-next":
                nxt = [q for q in nxt if q["events"][0][1] != first]
            elif kind == "skip-past-last-event":
                bound = (p["events"][-1][1], True)
            elif kind in ("skip-to-first", "skip-to-last"):
                seqs = [s for (n, s) in m._seqs if n == stage]
                if seqs:
                    bound = (seqs[0] if kind == "skip-to-first" else seqs[-1], False)
            if bound is not None:
                nxt = [q for q in nxt if not (q["events"][0][1] <= bound[0] if bound[1] else q["events"][0][1] < bound[0])]
                cut = bound
            matches.append(m)
        partials[:] = nxt
        return matches, timed_out

    def expire(self, partials: List[dict], watermark: int) -> List[Match]:
        if self.within is None:
            return []
        gone = [p for p in partials if p["events"][0][2] + self.within <= watermark]
        partials[:] = [p for p in partials if p["events"][0][2] + self.within > watermark]
        return [Match(self.names, p["events"]) for p in gone]


class Found:
    """What a timer brought: ``matches`` and ``timed_out`` partial matches."""

    def __init__(self) -> None:
        self.matches: List[Match] = []
        self.timed_out: List[Match] = []


class Cep:
    """A pattern matched over each key's events (JSON values), in event-time order."""

    def __init__(self, name: str, pattern: Pattern):
        self._nfa = _Nfa(pattern)
        self._progress = ValueState(f"cep.{name}.partials", JSON)
        self._pending = MapState(f"cep.{name}.pending", JSON, JSON)

    def process(self, ctx: Context, event: Any, timestamp: int) -> bool:
        """Buffer one event of the current key; ``False`` (dropped) when it is late."""
        if timestamp <= ctx.current_watermark():
            return False
        waiting = self._pending.get(timestamp, [])
        waiting.append(event)
        self._pending.put(timestamp, waiting)
        ctx.register_event_time_timer(timestamp)
        return True

    def on_timer(self, ctx: Context, timestamp: int) -> Found:
        """Match the events of ``timestamp``; time out what can no longer complete."""
        found = Found()
        events = self._pending.get(timestamp)
        progress: Dict[str, Any] = self._progress.get() or {"partials": [], "seq": 0}
        partials = progress["partials"]
        if events is not None:
            self._pending.remove(timestamp)
            for e in events:
                progress["seq"] += 1
                m, t = self._nfa.step(partials, e, timestamp, progress["seq"])
                found.matches += m
                found.timed_out += t
        found.timed_out += self._nfa.expire(partials, timestamp)
        if self._nfa.within is not None:
            for p in partials:
                ctx.register_event_time_timer(p["events"][0][2] + self._nfa.within)
        if not partials and not self._pending.keys():
            self._progress.clear()
        else:
            self._progress.set(progress)
        return found
