// Complex event processing in JavaScript, the matching (pure: no host calls, tested with
// node in sdk/js/test/): find patterns in each key's events, in
// event-time order, with the pattern API of FlinkCEP (the semantics of the Rust SDK's
// `rivulet_sdk::cep`). Events are JSON values; partial matches and waiting events live
// in keyed state.
//
//   const pattern = Pattern.begin("fails").where((e) => e.type === "fail").times(3).consecutive()
//     .next("success").where((e) => e.type === "success").within(60000).skip(SKIP_PAST_LAST_EVENT);
//   const attacks = new Cep("attacks", pattern);  // in open
//   attacks.process(ctx, event, ts);              // in process
//   const found = attacks.onTimer(ctx, ts);       // in onTimer: found.matches, found.timedOut

const STRICT = "strict";
const RELAXED = "relaxed";
const ANY = "any";
export const NO_SKIP = ["no-skip", null];
export const SKIP_TO_NEXT = ["skip-to-next", null];
export const SKIP_PAST_LAST_EVENT = ["skip-past-last-event", null];
export const skipToFirst = (stage) => ["skip-to-first", stage];
export const skipToLast = (stage) => ["skip-to-last", stage];

function stage(name, negative, entry) {
  return { name, negative, entry, conditions: [], min: 1, max: 1, inner: RELAXED, until: null, guards: [] };
}
const matches = (s, e) => s.conditions.length === 0 || s.conditions.some((all) => all.every((c) => c(e)));

/** A sequence of stages (see the file's comment). */
export class Pattern {
  constructor() {
    this.stages = [];
    this.withinMs = null;
    this.skipStrategy = NO_SKIP;
  }
  static begin(name) {
    const p = new Pattern();
    p.stages.push(stage(name, null, RELAXED));
    return p;
  }
  add(name, negative, entry) {
    this.stages.push(stage(name, negative, entry));
    return this;
  }
  next(name) { return this.add(name, null, STRICT); }
  followedBy(name) { return this.add(name, null, RELAXED); }
  followedByAny(name) { return this.add(name, null, ANY); }
  notNext(name) { return this.add(name, "not-next", STRICT); }
  notFollowedBy(name) { return this.add(name, "not-followed-by", RELAXED); }
  get last() { return this.stages[this.stages.length - 1]; }
  where(condition) {
    if (this.last.conditions.length === 0) this.last.conditions.push([]);
    this.last.conditions[this.last.conditions.length - 1].push(condition);
    return this;
  }
  or(condition) {
    this.last.conditions.push([condition]);
    return this;
  }
  times(n, maxN = n) {
    this.last.min = n;
    this.last.max = maxN;
    return this;
  }
  oneOrMore() {
    this.last.min = Math.max(this.last.min, 1);
    this.last.max = null;
    return this;
  }
  optional() { this.last.min = 0; return this; }
  consecutive() { this.last.inner = STRICT; return this; }
  allowCombinations() { this.last.inner = ANY; return this; }
  until(condition) { this.last.until = condition; return this; }
  within(ms) { this.withinMs = ms; return this; }
  skip(strategy) { this.skipStrategy = strategy; return this; }
  compile() {
    const out = [];
    let guards = [];
    this.stages.forEach((s, i) => {
      if (s.max !== null && s.max < Math.max(s.min, 1)) throw new Error(`stage '${s.name}': max below min`);
      if (s.negative) {
        if (i + 1 === this.stages.length) throw new Error(`stage '${s.name}': a pattern cannot end with a negative stage`);
        guards.push([s.negative, (e) => matches(s, e)]);
        return;
      }
      if (out.some((x) => x.name === s.name)) throw new Error(`stage '${s.name}' is named twice`);
      out.push({ ...s, guards });
      guards = [];
    });
    if (out.every((s) => s.min === 0)) throw new Error("every stage is optional");
    return out;
  }
}

/** A complete or timed-out match: `events` is a list of [stage, timestamp, event]. */
export class Match {
  constructor(stages, taken) {
    this.events = taken.map(([st, , ts, e]) => [stages[st].name, ts, e]);
    this.seqs = taken.map(([st, seq]) => [stages[st].name, seq]);
  }
  get(name) { return this.events.filter(([s]) => s === name).map(([, , e]) => e); }
  timestamps(name) { return this.events.filter(([s]) => s === name).map(([, t]) => t); }
  firstTimestamp() { return this.events[0][1]; }
  lastTimestamp() { return this.events[this.events.length - 1][1]; }
}

/** The matcher over partial matches ({stage, taken, loop, next, skipped, events}). */
export class Nfa {
  constructor(pattern) {
    this.stages = pattern.compile();
    this.within = pattern.withinMs;
    this.skip = pattern.skipStrategy;
  }
  complete(k, taken) { return taken >= this.stages[k].min && this.stages.slice(k + 1).every((s) => s.min === 0); }
  canGrow(k, taken) { const m = this.stages[k].max; return m === null || taken < m || k + 1 < this.stages.length; }
  settle(p, next, done) {
    if (this.complete(p.stage, p.taken)) done.push({ ...p });
    if (this.canGrow(p.stage, p.taken)) next.push(p);
  }
  targets(k) {
    const out = [];
    for (let j = k + 1; j < this.stages.length; j++) {
      out.push(j);
      if (this.stages[j].min > 0) break;
    }
    return out;
  }
  take(p, st, taken, e, ts, seq) {
    return { stage: st, taken, loop: true, next: true, skipped: 0, events: [...(p ? p.events : []), [st, seq, ts, e]] };
  }
  consume(p, e, ts, seq, next, done) {
    const k = p.stage;
    const s = this.stages[k];
    let loopOpen = p.loop && (s.max === null || p.taken < s.max);
    let tookLoop = false;
    let tookNext = false;
    if (loopOpen) {
      if (s.until && s.until(e)) loopOpen = false;
      else if (matches(s, e)) {
        this.settle(this.take(p, k, p.taken + 1, e, ts, seq), next, done);
        tookLoop = true;
      }
    }
    let nextOpen = p.next && p.taken >= s.min && k + 1 < this.stages.length;
    if (nextOpen) {
      const targets = this.targets(k);
      for (const j of targets) {
        const violated = targets.filter((t) => t <= j).some((t) =>
          this.stages[t].guards.some(([kind, c]) => (kind === "not-next" && p.skipped === 0 && c(e)) || (kind === "not-followed-by" && c(e))));
        if (violated) {
          nextOpen = false;
          break;
        }
        if (matches(this.stages[j], e)) {
          this.settle(this.take(p, j, 1, e, ts, seq), next, done);
          tookNext = true;
        }
      }
    }
    const survives = (open, c, took) => open && (c === ANY || (c === RELAXED && !took));
    const loopS = survives(loopOpen, s.inner, tookLoop);
    const entry = k + 1 < this.stages.length ? this.stages[k + 1].entry : STRICT;
    const nextS = survives(nextOpen, entry, tookNext);
    if (loopS || nextS) next.push({ ...p, loop: loopS, next: nextS, skipped: p.skipped + 1 });
  }
  /** Feed one event; returns {matches, timedOut}; `partials` is replaced in place. */
  step(partials, e, ts, seq) {
    const found = { matches: [], timedOut: [] };
    let next = [];
    const done = [];
    for (const p of partials) {
      if (this.within !== null && ts - p.events[0][2] >= this.within) {
        found.timedOut.push(new Match(this.stages, p.events));
        continue;
      }
      this.consume(p, e, ts, seq, next, done);
    }
    for (let j = 0; j < this.stages.length; j++) {
      if (matches(this.stages[j], e)) this.settle(this.take(null, j, 1, e, ts, seq), next, done);
      if (this.stages[j].min > 0) break;
    }
    done.sort((a, b) => a.events[0][1] - b.events[0][1] || a.events[a.events.length - 1][1] - b.events[b.events.length - 1][1]);
    const [kind, name] = this.skip;
    let cut = null;
    const dropped = (c, s) => c !== null && (c[1] ? s <= c[0] : s < c[0]);
    for (const p of done) {
      const first = p.events[0][1];
      if (dropped(cut, first)) continue;
      const m = new Match(this.stages, p.events);
      let bound = null;
      if (kind === "skip-to-next") next = next.filter((q) => q.events[0][1] !== first);
      else if (kind === "skip-past-last-event") bound = [p.events[p.events.length - 1][1], true];
      else if (kind === "skip-to-first" || kind === "skip-to-last") {
        const seqs = m.seqs.filter(([s]) => s === name).map(([, q]) => q);
        if (seqs.length) bound = [kind === "skip-to-first" ? seqs[0] : seqs[seqs.length - 1], false];
      }
      if (bound !== null) {
        next = next.filter((q) => !dropped(bound, q.events[0][1]));
        cut = bound;
      }
      found.matches.push(m);
    }
    partials.splice(0, partials.length, ...next);
    return found;
  }
  expire(partials, watermark) {
    if (this.within === null) return [];
    const gone = partials.filter((p) => p.events[0][2] + this.within <= watermark);
    const kept = partials.filter((p) => p.events[0][2] + this.within > watermark);
    partials.splice(0, partials.length, ...kept);
    return gone.map((p) => new Match(this.stages, p.events));
  }
}

