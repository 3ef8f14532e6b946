// The CEP library's keyed part: a pattern (cep-nfa.js) matched over each key's events,
// with partial matches and waiting events in keyed state.

import { MapState, ValueState } from "./index.js";
import { Nfa } from "./cep-nfa.js";

export { Pattern, Match, NO_SKIP, SKIP_TO_NEXT, SKIP_PAST_LAST_EVENT, skipToFirst, skipToLast } from "./cep-nfa.js";

/** A pattern matched over each key's events (JSON values), in event-time order. */
export class Cep {
  constructor(name, pattern) {
    this.nfa = new Nfa(pattern);
    this.progress = new ValueState(`cep.${name}.partials`);
    this.pending = new MapState(`cep.${name}.pending`);
  }
  /** Buffer one event of the current key; false (dropped) when it is late. */
  process(ctx, event, timestamp) {
    if (timestamp <= ctx.currentWatermark()) return false;
    const waiting = this.pending.get(timestamp, []);
    waiting.push(event);
    this.pending.put(timestamp, waiting);
    ctx.registerEventTimeTimer(timestamp);
    return true;
  }
  /** Match the events of `timestamp`; time out what can no longer complete. */
  onTimer(ctx, timestamp) {
    const found = { matches: [], timedOut: [] };
    const events = this.pending.get(timestamp);
    const progress = this.progress.get() ?? { partials: [], seq: 0 };
    if (events !== undefined) {
      this.pending.remove(timestamp);
      for (const e of events) {
        progress.seq += 1;
        const f = this.nfa.step(progress.partials, e, timestamp, progress.seq);
        found.matches.push(...f.matches);
        found.timedOut.push(...f.timedOut);
      }
    }
    found.timedOut.push(...this.nfa.expire(progress.partials, timestamp));
    if (this.nfa.within !== null) {
      for (const p of progress.partials) ctx.registerEventTimeTimer(p.events[0][2] + this.nfa.within);
    }
    if (progress.partials.length === 0 && this.pending.keys().length === 0) this.progress.clear();
    else this.progress.set(progress);
    return found;
  }
}
