// Rivulet operators in JavaScript.
//
// Write a class extending `Operator`, then `export const operator = exportOperator(MyOperator);`
// in your `app.js`; build the component with `scripts/build-operator.sh DIR`
// (esbuild bundles this SDK in, componentize-js builds against `wit/operator.wit`, rivulet:operator@0.4.0).
//
// Mirrors the Rust SDK: records one by one (the host sends batches), keyed state
// (ValueState, ListState, MapState) scoped to the current record's key with an explicit
// codec (JSON by default, or BYTES), timers in event and processing time, side outputs,
// logs. An exception fails the job with its message and JS stack, naming operator and plugin.
// Operators with several inputs override processInput, join (interval join), coGroup
// (window join) or processBroadcast with BroadcastMapState; Pattern and Cep find
// patterns in each key's events (cep.js).

import { emit as witEmit, emitTo as witEmitTo } from "rivulet:operator/collector@0.4.0";
import * as witContext from "rivulet:operator/context@0.4.0";
import { ValueState as WitValueState, ListState as WitListState, MapState as WitMapState } from "rivulet:operator/keyed-state@0.4.0";
import { BroadcastMap as WitBroadcastMap } from "rivulet:operator/broadcast-state@0.4.0";
import * as witTimers from "rivulet:operator/timers@0.4.0";

import { MAX_CACHED_ENTRIES, StateCache, bytesKey, current, enterCall, enterRecord, forgetAll, pending, scope, syncCurrentRecord, writeBack } from "./state-cache.js";

export { MAX_CACHED_ENTRIES };
export { Pattern, Cep, NO_SKIP, SKIP_TO_NEXT, SKIP_PAST_LAST_EVENT, skipToFirst, skipToLast } from "./cep.js";

export const EVENT_TIME = "event-time";
export const PROCESSING_TIME = "processing-time";

const NO_KEY = 0xffffffff;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** JSON codec: compatible with the Rust SDK's serde encoding of the same values. */
export const JSON_CODEC = { encode: (v) => enc.encode(JSON.stringify(v)), decode: (b) => JSON.parse(dec.decode(b)) };
/** Raw bytes (Uint8Array), unchanged. */
export const BYTES = { encode: (v) => Uint8Array.from(v), decode: (b) => Uint8Array.from(b) };

/** One record: optional key (Uint8Array), value (Uint8Array), event timestamp (ms, BigInt-free number). */
export class Record {
  constructor(key, value, timestamp) {
    this.key = key;
    this.value = value;
    this.timestamp = timestamp;
  }
  /** The value parsed as JSON. */
  json() {
    return JSON.parse(dec.decode(this.value));
  }
  /** The value as text. */
  valueStr() {
    return dec.decode(this.value);
  }
  /** The key as text, or null. */
  keyStr() {
    return this.key === null ? null : dec.decode(this.key);
  }
}

/** The records of an encoded batch (`types.encoded-batch` in wit/operator.wit). */
export function* decodeBatch(batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let pos = 0;
  while (pos < batch.byteLength) {
    const klen = view.getUint32(pos, true);
    pos += 4;
    let key = null;
    if (klen !== NO_KEY) {
      key = batch.subarray(pos, pos + klen);
      pos += klen;
    }
    const vlen = view.getUint32(pos, true);
    pos += 4;
    const value = batch.subarray(pos, pos + vlen);
    pos += vlen;
    const ts = Number(view.getBigInt64(pos, true));
    pos += 8;
    yield new Record(key, value, ts);
  }
}

/** A growable encoded batch. */
class BatchWriter {
  constructor() {
    this.buf = new Uint8Array(256);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
  }
  push(key, value, timestamp) {
    const k = key === null || key === undefined ? null : key;
    this.reserve(16 + (k ? k.length : 0) + value.length);
    const view = new DataView(this.buf.buffer);
    view.setUint32(this.len, k ? k.length : NO_KEY, true);
    this.len += 4;
    if (k) {
      this.buf.set(k, this.len);
      this.len += k.length;
    }
    view.setUint32(this.len, value.length, true);
    this.len += 4;
    this.buf.set(value, this.len);
    this.len += value.length;
    view.setBigInt64(this.len, BigInt(timestamp), true);
    this.len += 8;
  }
  take() {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }
}

/** What an operator can do while it runs: emit, read time, set timers, log. */
export class Context {
  constructor() {
    this.main = new BatchWriter();
    this.side = new Map();
  }
  /** Emit a record (value: Uint8Array) to the main output. */
  emit(value, timestamp, key = null) {
    this.main.push(key, value, timestamp);
  }
  /** Emit `value` as JSON to the main output. */
  emitJson(value, timestamp, key = null) {
    this.emit(enc.encode(JSON.stringify(value)), timestamp, key);
  }
  /** Emit a record to the side output `tag` (addressed as `uid.tag` in job specs). */
  emitTo(tag, value, timestamp, key = null) {
    if (!this.side.has(tag)) this.side.set(tag, new BatchWriter());
    this.side.get(tag).push(key, value, timestamp);
  }
  /** Emit `value` as JSON to the side output `tag`. */
  emitJsonTo(tag, value, timestamp, key = null) {
    this.emitTo(tag, enc.encode(JSON.stringify(value)), timestamp, key);
  }
  /** The key of the record, timer or window being handled (Uint8Array or null). */
  currentKey() {
    syncCurrentRecord();
    return witContext.currentKey() ?? null;
  }
  /** The current event-time watermark. */
  currentWatermark() {
    // An s64 may come back as its unsigned value (i64::MIN as 2^63): read it signed.
    const raw = witTimers.currentWatermark();
    return Number(typeof raw === "bigint" ? BigInt.asIntN(64, raw) : raw);
  }
  /** The host's processing time, ms since the epoch. */
  currentProcessingTime() {
    return Number(witTimers.currentProcessingTime());
  }
  registerEventTimeTimer(timestamp) {
    syncCurrentRecord();
    witTimers.register("event-time", BigInt(timestamp));
  }
  deleteEventTimeTimer(timestamp) {
    syncCurrentRecord();
    witTimers.delete("event-time", BigInt(timestamp));
  }
  registerProcessingTimeTimer(timestamp) {
    syncCurrentRecord();
    witTimers.register("processing-time", BigInt(timestamp));
  }
  deleteProcessingTimeTimer(timestamp) {
    syncCurrentRecord();
    witTimers.delete("processing-time", BigInt(timestamp));
  }
  subtaskIndex() {
    return witContext.subtaskIndex();
  }
  parallelism() {
    return witContext.parallelism();
  }
  operatorUid() {
    return witContext.operatorUid();
  }
  /** How many times the job restarted after a failure in this run (0 at first). */
  attemptNumber() {
    return witContext.attemptNumber();
  }
  /** Write a line into the host's logs (level: trace, debug, info, warn, error). */
  log(message, level = "info") {
    witContext.log(level, String(message));
  }
  flush() {
    if (this.main.len > 0) witEmit(this.main.take());
    for (const [tag, w] of this.side) {
      if (w.len > 0) witEmitTo(tag, w.take());
    }
  }
  discard() {
    this.main.take();
    this.side = new Map();
  }
}

const ttl = (ms) => (ms === undefined || ms === null ? undefined : BigInt(ms));

/** One value per key, stored by the host (cached in the guest unless it has a TTL). */
export class ValueState {
  constructor(name, { codec = JSON_CODEC, ttlMs = null } = {}) {
    this.h = new WitValueState(name, ttl(ttlMs));
    this.c = codec;
    this.cache = ttlMs === null || ttlMs === undefined ? new StateCache(() => this.h.get(), (_sub, raw) => this.store(raw)) : null;
  }
  store(raw) {
    if (raw === null) this.h.clear();
    else this.h.set(raw);
  }
  raw() {
    const cur = this.cache === null ? null : current();
    if (cur === null) {
      syncCurrentRecord();
      const raw = this.h.get();
      return raw === undefined ? null : raw;
    }
    return this.cache.get(cur.key, null);
  }
  write(raw) {
    const cur = this.cache === null ? null : current();
    if (cur === null) {
      syncCurrentRecord();
      this.store(raw);
    } else {
      this.cache.put(cur.key, null, raw, cur.index);
    }
  }
  get(fallback = undefined) {
    const raw = this.raw();
    return raw === null ? fallback : this.c.decode(raw);
  }
  set(value) {
    this.write(this.c.encode(value));
  }
  clear() {
    this.write(null);
  }
}

/** A list per key, stored by the host. */
export class ListState {
  constructor(name, { codec = JSON_CODEC, ttlMs = null } = {}) {
    this.h = new WitListState(name, ttl(ttlMs));
    this.c = codec;
  }
  get() {
    syncCurrentRecord();
    return this.h.get().map((b) => this.c.decode(b));
  }
  add(value) {
    syncCurrentRecord();
    this.h.add(this.c.encode(value));
  }
  update(values) {
    syncCurrentRecord();
    this.h.update(values.map((v) => this.c.encode(v)));
  }
  clear() {
    syncCurrentRecord();
    this.h.clear();
  }
}

/**
 * A map per key, stored by the host; keys and values have their own codecs. Single
 * entries are cached in the guest (unless it has a TTL); whole-map operations go to the
 * host after writing the map's pending changes back.
 */
export class MapState {
  constructor(name, { keyCodec = JSON_CODEC, valueCodec = JSON_CODEC, ttlMs = null } = {}) {
    this.h = new WitMapState(name, ttl(ttlMs));
    this.k = keyCodec;
    this.v = valueCodec;
    this.cache = ttlMs === null || ttlMs === undefined ? new StateCache((sub) => this.h.get(sub), (sub, raw) => this.store(sub, raw)) : null;
  }
  store(sub, raw) {
    if (raw === null) this.h.remove(sub);
    else this.h.put(sub, raw);
  }
  raw(sub) {
    const cur = this.cache === null ? null : current();
    if (cur === null) {
      syncCurrentRecord();
      const raw = this.h.get(sub);
      return raw === undefined ? null : raw;
    }
    return this.cache.get(`${cur.key.length}:${cur.key}${bytesKey(sub)}`, sub);
  }
  write(sub, raw) {
    const cur = this.cache === null ? null : current();
    if (cur === null) {
      syncCurrentRecord();
      this.store(sub, raw);
    } else {
      this.cache.put(`${cur.key.length}:${cur.key}${bytesKey(sub)}`, sub, raw, cur.index);
    }
  }
  /** The host handle for a whole-map operation, this map's pending changes written first. */
  whole(forget = false) {
    if (this.cache !== null) {
      this.cache.writeBack();
      if (forget) this.cache.entries.clear();
      // The write-back may have made another record current: this one again.
      if (scope.mode === 1) pending.index = scope.index;
    }
    syncCurrentRecord();
    return this.h;
  }
  get(key, fallback = undefined) {
    const raw = this.raw(this.k.encode(key));
    return raw === null ? fallback : this.v.decode(raw);
  }
  put(key, value) {
    this.write(this.k.encode(key), this.v.encode(value));
  }
  remove(key) {
    this.write(this.k.encode(key), null);
  }
  contains(key) {
    return this.raw(this.k.encode(key)) !== null;
  }
  keys() {
    return this.whole().keys().map((k) => this.k.decode(k));
  }
  entries() {
    return this.whole().entries().map(([k, v]) => [this.k.decode(k), this.v.decode(v)]);
  }
  clear() {
    this.whole(true).clear();
  }
}

let inputNames = null;

/** Which input a record came from: `{index, name}` (`main` for a spec's list of inputs). */
function input(index) {
  if (inputNames === null) inputNames = witContext.inputNames();
  return { index, name: index < inputNames.length ? inputNames[index] : `input-${index}` };
}

/** The index of the input called `name`, or null. */
export function inputIndex(name) {
  if (inputNames === null) inputNames = witContext.inputNames();
  const i = inputNames.indexOf(name);
  return i < 0 ? null : i;
}

/** The records of one fired window of the current key, per input. */
export class CoGroup {
  constructor(inputs) {
    this.inputs = inputs;
  }
  input(index) {
    return this.inputs[index] ?? [];
  }
  named(name) {
    const i = inputIndex(name);
    return i === null ? [] : this.input(i);
  }
}

/** A map every parallel instance holds the same copy of; written only in processBroadcast. */
export class BroadcastMapState {
  constructor(name, { keyCodec = JSON_CODEC, valueCodec = JSON_CODEC } = {}) {
    this.h = new WitBroadcastMap(name);
    this.k = keyCodec;
    this.v = valueCodec;
  }
  get(key, fallback = undefined) {
    const raw = this.h.get(this.k.encode(key));
    return raw === undefined || raw === null ? fallback : this.v.decode(raw);
  }
  put(key, value) {
    this.h.put(this.k.encode(key), this.v.encode(value));
  }
  remove(key) {
    this.h.remove(this.k.encode(key));
  }
  entries() {
    return this.h.entries().map(([k, v]) => [this.k.decode(k), this.v.decode(v)]);
  }
  clear() {
    this.h.clear();
  }
}

/** A stream operator. Override `process` (or processInput, join, coGroup, processBroadcast); the rest is optional. */
export class Operator {
  /** The version of this operator's state format. */
  static STATE_VERSION = 1;
  open(ctx, config) {}
  process(ctx, record) {
    throw new Error("process is not implemented");
  }
  processInput(ctx, input, record) {
    this.process(ctx, record);
  }
  processBroadcast(ctx, input, record) {
    throw new Error(`this operator does not implement processBroadcast (input ${input.name})`);
  }
  processWindow(ctx, window, records) {
    throw new Error("this operator does not implement processWindow");
  }
  coGroup(ctx, window, inputs) {
    if (inputs.inputs.length !== 1) throw new Error("this operator has several inputs and a window but does not implement coGroup");
    this.processWindow(ctx, window, inputs.inputs[0]);
  }
  join(ctx, left, right) {
    throw new Error("this operator does not implement join");
  }
  onTimer(ctx, timestamp, domain) {}
  onWatermark(ctx, watermark) {}
  close(ctx) {}
  /** Upgrade one entry ({state, key, kind: value|list|map, value}) written under `fromVersion`. */
  static migrateState(fromVersion, entry) {
    return [entry];
  }
}

function failure(where, e) {
  // The host prefixes the call's name; the message is the error and its JS stack.
  const text = e && e.stack ? `${e}\n${e.stack}`.trim() : `${where}: ${e}`;
  // componentize-js maps a thrown error's `payload` to the WIT `err` case.
  const err = new Error(text);
  err.payload = text;
  return err;
}

/** The object to export as `operator`, driving instances of `Cls`. */
export function exportOperator(Cls) {
  let op = null;
  let ctx = null;
  const call = (where, f) => {
    if (ctx === null) throw failure(where, "operator called before open");
    pending.index = null;
    scope.mode = 0;
    try {
      f();
      writeBack();
    } catch (e) {
      ctx.discard();
      forgetAll();
      pending.index = null;
      throw failure(where, e);
    }
    pending.index = null;
    ctx.flush();
  };
  return {
    open(config) {
      try {
        const parsed = config.trim() ? JSON.parse(config) : null;
        const c = new Context();
        const o = new Cls();
        o.open(c, parsed);
        op = o;
        ctx = c;
        c.flush();
      } catch (e) {
        throw failure("open", e);
      }
    },
    process(index, batch) {
      call("process", () => {
        const which = input(index);
        let i = 0;
        for (const record of decodeBatch(batch)) {
          enterRecord(i, record.key);
          pending.index = i++;
          op.processInput(ctx, which, record);
        }
      });
    },
    processBroadcast(index, batch) {
      call("processBroadcast", () => {
        const which = input(index);
        for (const record of decodeBatch(batch)) op.processBroadcast(ctx, which, record);
      });
    },
    processWindow(window, inputs) {
      const groups = new CoGroup(inputs.map((b) => [...decodeBatch(b)]));
      call("processWindow", () => {
        enterCall();
        op.coGroup(ctx, { start: Number(window.start), end: Number(window.end) }, groups);
      });
    },
    processJoin(left, right) {
      call("processJoin", () => {
        const l = [...decodeBatch(left)];
        const r = [...decodeBatch(right)];
        for (let i = 0; i < l.length && i < r.length; i++) {
          pending.index = i;
          enterRecord(i, l[i].key);
          op.join(ctx, l[i], r[i]);
        }
      });
    },
    onTimer(timestamp, domain) {
      call("onTimer", () => {
        enterCall();
        op.onTimer(ctx, Number(BigInt.asIntN(64, BigInt(timestamp))), domain);
      });
    },
    onWatermark(watermark) {
      call("onWatermark", () => op.onWatermark(ctx, Number(BigInt.asIntN(64, BigInt(watermark)))));
    },
    close() {
      call("close", () => op.close(ctx));
    },
    stateVersion() {
      return Cls.STATE_VERSION ?? 1;
    },
    migrateState(fromVersion, entries) {
      try {
        const out = [];
        for (const e of entries) {
          const kind = e.value.tag === "value" ? "value" : e.value.tag === "list" ? "list" : "map";
          for (const m of Cls.migrateState(fromVersion, { state: e.state, key: e.key, kind, value: e.value.val })) {
            const tag = m.kind === "value" ? "value" : m.kind === "list" ? "list" : "map-entry";
            out.push({ state: m.state, key: m.key, value: { tag, val: m.value } });
          }
        }
        return out;
      } catch (e) {
        throw failure("migrateState", e);
      }
    },
  };
}
