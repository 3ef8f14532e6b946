// The guest-side state cache of the JavaScript SDK (as in the Rust SDK) and the current
// record's bookkeeping: value and map state are read through to the host once per key and
// written back once per key at the end of each call into the guest (a batch, a timer, a
// window firing), so a record that reads and updates its key's state makes no host call in
// the common case. The host snapshots only between calls, so every checkpoint finds the
// state complete. Entries stay valid across calls (only this instance writes its keyed
// state while it lives). State with a TTL is not cached, nor state used where no key is
// current (open, watermarks, broadcast input, close).

import * as witContext from "rivulet:operator/context@0.4.0";

/** The batch index of the record being processed, not yet announced to the host. */
export const pending = { index: null };

/** Tell the host which record is current, once, only when state, timers or the key are used. */
export function syncCurrentRecord() {
  if (pending.index !== null) {
    const i = pending.index;
    pending.index = null;
    witContext.setCurrentRecord(i);
  }
}

/** Entries kept per state before the clean ones are forgotten. */
export const MAX_CACHED_ENTRIES = 1 << 16;

// The current scope: mode 0 no key, 1 a record of the batch (its key from the batch),
// 2 one key for the whole call (asked of the host once).
export const scope = { mode: 0, index: null, key: null };
const caches = [];

/** Bytes as a string usable as a Map key (one char per byte). */
export function bytesKey(b) {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

export function enterRecord(index, key) {
  if (key === null || key === undefined) {
    scope.mode = 0;
  } else {
    scope.mode = 1;
    scope.index = index;
    scope.key = bytesKey(key);
  }
}

export function enterCall() {
  scope.mode = 2;
  scope.index = null;
  scope.key = null;
}

/** The current key (as a string) and the record index that makes it current again, or null. */
export function current() {
  if (scope.mode === 0) return null;
  if (scope.mode === 2 && scope.key === null) {
    const key = witContext.currentKey();
    if (key === undefined || key === null) {
      scope.mode = 0;
      return null;
    }
    scope.key = bytesKey(key);
  }
  return scope;
}

export function writeBack() {
  for (const c of caches) c.writeBack();
  scope.mode = 0;
}

/** A failed call: what it wrote is not kept (the job restarts from a checkpoint). */
export function forgetAll() {
  for (const c of caches) {
    c.entries.clear();
    c.dirty.clear();
  }
  scope.mode = 0;
}

/** Encoded values by cache key (`null`: absent), and the ones written since the last write-back. */
export class StateCache {
  constructor(load, store) {
    this.entries = new Map();
    this.dirty = new Map();
    this.load = load;
    this.store = store;
    caches.push(this);
  }
  get(ck, sub) {
    const hit = this.entries.get(ck);
    if (hit !== undefined) return hit;
    syncCurrentRecord();
    const raw = this.load(sub);
    const v = raw === undefined || raw === null ? null : raw;
    this.entries.set(ck, v);
    return v;
  }
  put(ck, sub, raw, index) {
    this.entries.set(ck, raw);
    this.dirty.set(ck, [sub, index]);
  }
  writeBack() {
    if (this.dirty.size > 0) {
      for (const [ck, [sub, index]] of this.dirty) {
        if (index !== null) witContext.setCurrentRecord(index);
        this.store(sub, this.entries.get(ck));
      }
      this.dirty.clear();
    }
    if (this.entries.size > MAX_CACHED_ENTRIES) this.entries.clear();
  }
}
