// The typed client of the REST API. Every path and type here comes from schema.d.ts,
// which `npm run gen` generates from openapi.json (the server's own OpenAPI document,
// checked against the server by a host test): a UI that drifts from the API fails
// to type-check.
import type { components, paths } from './schema';

/** Schemas of the API, by name. */
export type Schemas = components['schemas'];
export type Health = Schemas['Health'];
export type JobRecord = Schemas['JobRecord'];
export type JobDetail = Schemas['JobDetail'];
export type JobStatus = Schemas['JobStatus'];
export type NodeStatus = Schemas['NodeStatus'];
export type EdgeStatus = Schemas['EdgeStatus'];
export type PluginMeta = Schemas['PluginMeta'];
export type CheckpointsView = Schemas['CheckpointsView'];
export type SnapshotStat = Schemas['SnapshotStat'];
export type HistoryEvent = Schemas['HistoryEvent'];
export type ExceptionInfo = Schemas['ExceptionInfo'];
export type SavepointInfo = Schemas['SavepointInfo'];
export type GuestLogLine = Schemas['GuestLogLine'];
export type UpgradeOutcome = Schemas['UpgradeOutcome'];
export type UpgradeRequest = Schemas['UpgradeRequest'];
export type SubmitRequest = Schemas['SubmitRequest'];
export type BackendKind = Schemas['BackendKind'];
export type NodeRole = Schemas['NodeRole'];
export type Session = Schemas['Session'];
export type WorkersView = Schemas['WorkersView'];
export type WorkerInfo = Schemas['WorkerInfo'];

type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;
type Success<Op> = Op extends { responses: infer R }
  ? R extends { 200: infer A }
    ? JsonOf<A>
    : R extends { 201: infer B }
      ? JsonOf<B>
      : R extends { 202: infer C }
        ? JsonOf<C>
        : never
  : never;
type Method = 'get' | 'post' | 'delete';
type Route<M extends Method> = { [P in keyof paths]: paths[P] extends Record<M, object> ? P : never }[keyof paths];
type Reply<M extends Method, P extends keyof paths> = paths[P] extends Record<M, infer Op> ? Success<Op> : never;
type BodyOf<M extends Method, P extends keyof paths> = paths[P] extends Record<M, { requestBody?: { content: { 'application/json': infer B } } }>
  ? B
  : never;

/** A failed API call: the HTTP status and the server's own words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Where the token is kept: for the browser tab's session only. */
export interface TokenStore {
  get(): string;
  set(token: string): void;
}

const KEY = 'rivulet.token';

/** Dispatched on `window` when the server answers 401: the app asks for the token. */
export const UNAUTHORIZED_EVENT = 'rivulet:unauthorized';

/** The token in `sessionStorage` (kept until the tab is closed). */
export const sessionToken: TokenStore = {
  get: () => (typeof sessionStorage === 'undefined' ? '' : (sessionStorage.getItem(KEY) ?? '')),
  set: (t) => {
    if (typeof sessionStorage !== 'undefined') {
      if (t) sessionStorage.setItem(KEY, t);
      else sessionStorage.removeItem(KEY);
    }
  },
};

/** Fill `{name}` placeholders of a path template (values URL-encoded). */
export function fillPath(template: string, params: Record<string, string> = {}): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`path ${template} needs a value for {${name}}`);
    return encodeURIComponent(v);
  });
}

/** The message of a failed response: the API's `{"error": …}`, else the status line. */
export async function errorMessage(resp: Response): Promise<string> {
  const text = await resp.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === 'string' && body.error) return body.error;
  } catch {
    // not JSON
  }
  const status = `${resp.status} ${resp.statusText}`.trim();
  return text && text.length < 300 ? `${status}: ${text}` : status;
}

/** A client of one server (same origin by default). */
export class Client {
  constructor(
    private readonly tokens: TokenStore = sessionToken,
    private readonly fetchImpl: typeof fetch = (...a) => fetch(...a),
    private readonly base = '',
  ) {}

  private async call<T>(method: string, path: string, body?: BodyInit, contentType?: string): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = this.tokens.get();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (contentType) headers['Content-Type'] = contentType;
    let resp: Response;
    try {
      resp = await this.fetchImpl(this.base + path, { method: method.toUpperCase(), headers, body });
    } catch (e) {
      throw await this.networkError(e);
    }
    if (!resp.ok) {
      if (resp.status === 401 && typeof window !== 'undefined') window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
      throw new ApiError(resp.status, await errorMessage(resp));
    }
    return (await resp.json()) as T;
  }

  /**
   * Why a request got no answer. A server that refuses the token closes the connection
   * without reading a large body (an upload), which the browser reports as a network
   * error: when the server is up and needs a token, say so and ask for it again.
   */
  private async networkError(e: unknown): Promise<ApiError> {
    const why = e instanceof Error ? e.message : String(e);
    try {
      const resp = await this.fetchImpl(`${this.base}/healthz`, { method: 'GET', headers: { Accept: 'application/json' } });
      const health = (await resp.json()) as { auth?: boolean };
      if (resp.ok && health.auth) {
        if (typeof window !== 'undefined') window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
        return new ApiError(401, `the server closed the connection; it is up and needs a token: check the token (${why})`);
      }
    } catch {
      // the server is down: the original error says it
    }
    return new ApiError(0, `the server did not answer (${why})`);
  }

  /** `GET` a route. */
  get<P extends Route<'get'>>(path: P, params?: Record<string, string>): Promise<Reply<'get', P>> {
    return this.call('get', fillPath(path, params));
  }

  /** `POST` JSON to a route. */
  post<P extends Route<'post'>>(path: P, body: BodyOf<'post', P> | Record<string, never>, params?: Record<string, string>): Promise<Reply<'post', P>> {
    return this.call('post', fillPath(path, params), JSON.stringify(body), 'application/json');
  }

  /** `DELETE` a route. */
  delete<P extends Route<'delete'>>(path: P, params?: Record<string, string>): Promise<Reply<'delete', P>> {
    return this.call('delete', fillPath(path, params));
  }

  /** Upload a component (raw bytes); the query names it. */
  uploadPlugin(name: string, version: string, bytes: Blob | ArrayBuffer): Promise<PluginMeta> {
    const q = new URLSearchParams({ name, version });
    return this.call('post', `/v1/plugins?${q}`, bytes, 'application/wasm');
  }

  /** The server's health (no token needed). */
  health(): Promise<Health> {
    return this.get('/healthz');
  }

  /** The role of the token in use. */
  session(): Promise<Session> {
    return this.get('/v1/session');
  }
}

/** The client the app uses. */
export const api = new Client();
