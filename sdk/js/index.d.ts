// Types of the Rivulet JavaScript SDK (index.js), for operators written in TypeScript.

export declare const EVENT_TIME: "event-time";
export declare const PROCESSING_TIME: "processing-time";
export type TimeDomain = typeof EVENT_TIME | typeof PROCESSING_TIME;

/** How state values (and map keys) become bytes. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}
export declare const JSON_CODEC: Codec<any>;
export declare const BYTES: Codec<Uint8Array>;

export declare class Record {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array;
  readonly timestamp: number;
  json<T = any>(): T;
  valueStr(): string;
  keyStr(): string | null;
}

export interface Window {
  start: number;
  end: number;
}

export declare class Context {
  emit(value: Uint8Array, timestamp: number, key?: Uint8Array | null): void;
  emitJson(value: unknown, timestamp: number, key?: Uint8Array | null): void;
  emitTo(tag: string, value: Uint8Array, timestamp: number, key?: Uint8Array | null): void;
  emitJsonTo(tag: string, value: unknown, timestamp: number, key?: Uint8Array | null): void;
  currentKey(): Uint8Array | null;
  currentWatermark(): number;
  currentProcessingTime(): number;
  registerEventTimeTimer(timestamp: number): void;
  deleteEventTimeTimer(timestamp: number): void;
  registerProcessingTimeTimer(timestamp: number): void;
  deleteProcessingTimeTimer(timestamp: number): void;
  subtaskIndex(): number;
  parallelism(): number;
  operatorUid(): string;
  attemptNumber(): number;
  log(message: string, level?: "trace" | "debug" | "info" | "warn" | "error"): void;
}

export interface StateOptions<T> {
  codec?: Codec<T>;
  ttlMs?: number | null;
}

/** Entries the guest-side state cache keeps per state before it forgets the clean ones. */
export declare const MAX_CACHED_ENTRIES: number;

export declare class ValueState<T = any> {
  constructor(name: string, options?: StateOptions<T>);
  get(): T | undefined;
  get(fallback: T): T;
  set(value: T): void;
  clear(): void;
}

export declare class ListState<T = any> {
  constructor(name: string, options?: StateOptions<T>);
  get(): T[];
  add(value: T): void;
  update(values: T[]): void;
  clear(): void;
}

export declare class MapState<K = any, V = any> {
  constructor(name: string, options?: { keyCodec?: Codec<K>; valueCodec?: Codec<V>; ttlMs?: number | null });
  get(key: K): V | undefined;
  get(key: K, fallback: V): V;
  put(key: K, value: V): void;
  remove(key: K): void;
  contains(key: K): boolean;
  keys(): K[];
  entries(): [K, V][];
  clear(): void;
}

/** Old state handed to `migrateState`: `value` is bytes, a list of bytes, or a [userKey, value] pair. */
export interface StateEntry {
  state: string;
  key: Uint8Array;
  kind: "value" | "list" | "map";
  value: Uint8Array | Uint8Array[] | [Uint8Array, Uint8Array];
}

/** Which input a record came from (`main` for a spec's plain list of inputs). */
export interface Input {
  index: number;
  name: string;
}

/** The index of the input called `name`, or null. */
export declare function inputIndex(name: string): number | null;

/** The records of one fired window of the current key, per input. */
export declare class CoGroup {
  inputs: Record[][];
  input(index: number): Record[];
  named(name: string): Record[];
}

/** A map every parallel instance holds the same copy of; written only in processBroadcast. */
export declare class BroadcastMapState<K = any, V = any> {
  constructor(name: string, options?: { keyCodec?: Codec<K>; valueCodec?: Codec<V> });
  get(key: K): V | undefined;
  get(key: K, fallback: V): V;
  put(key: K, value: V): void;
  remove(key: K): void;
  entries(): [K, V][];
  clear(): void;
}

/** An after-match skip strategy. */
export type SkipStrategy = [string, string | null];
export declare const NO_SKIP: SkipStrategy;
export declare const SKIP_TO_NEXT: SkipStrategy;
export declare const SKIP_PAST_LAST_EVENT: SkipStrategy;
export declare function skipToFirst(stage: string): SkipStrategy;
export declare function skipToLast(stage: string): SkipStrategy;

/** A CEP pattern (FlinkCEP's API) over JSON events. */
export declare class Pattern<E = any> {
  static begin<E = any>(name: string): Pattern<E>;
  next(name: string): Pattern<E>;
  followedBy(name: string): Pattern<E>;
  followedByAny(name: string): Pattern<E>;
  notNext(name: string): Pattern<E>;
  notFollowedBy(name: string): Pattern<E>;
  where(condition: (e: E) => boolean): Pattern<E>;
  or(condition: (e: E) => boolean): Pattern<E>;
  times(n: number, max?: number): Pattern<E>;
  oneOrMore(): Pattern<E>;
  optional(): Pattern<E>;
  consecutive(): Pattern<E>;
  allowCombinations(): Pattern<E>;
  until(condition: (e: E) => boolean): Pattern<E>;
  within(ms: number): Pattern<E>;
  skip(strategy: SkipStrategy): Pattern<E>;
}

/** A complete or timed-out match: [stage, timestamp, event] in order. */
export declare class Match<E = any> {
  events: [string, number, E][];
  get(stage: string): E[];
  timestamps(stage: string): number[];
  firstTimestamp(): number;
  lastTimestamp(): number;
}

/** A pattern matched over each key's events in event-time order, in keyed state. */
export declare class Cep<E = any> {
  constructor(name: string, pattern: Pattern<E>);
  process(ctx: Context, event: E, timestamp: number): boolean;
  onTimer(ctx: Context, timestamp: number): { matches: Match<E>[]; timedOut: Match<E>[] };
}

export declare class Operator {
  static STATE_VERSION: number;
  open(ctx: Context, config: any): void;
  process(ctx: Context, record: Record): void;
  processInput(ctx: Context, input: Input, record: Record): void;
  processBroadcast(ctx: Context, input: Input, record: Record): void;
  processWindow(ctx: Context, window: Window, records: Record[]): void;
  coGroup(ctx: Context, window: Window, inputs: CoGroup): void;
  join(ctx: Context, left: Record, right: Record): void;
  onTimer(ctx: Context, timestamp: number, domain: TimeDomain): void;
  onWatermark(ctx: Context, watermark: number): void;
  close(ctx: Context): void;
  static migrateState(fromVersion: number, entry: StateEntry): StateEntry[];
}

export declare function exportOperator(cls: new () => Operator): unknown;
