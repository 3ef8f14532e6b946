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

export declare class Operator {
  static STATE_VERSION: number;
  open(ctx: Context, config: any): void;
  process(ctx: Context, record: Record): void;
  processWindow(ctx: Context, window: Window, records: Record[]): void;
  onTimer(ctx: Context, timestamp: number, domain: TimeDomain): void;
  onWatermark(ctx: Context, watermark: number): void;
  close(ctx: Context): void;
  static migrateState(fromVersion: number, entry: StateEntry): StateEntry[];
}

export declare function exportOperator(cls: new () => Operator): unknown;
