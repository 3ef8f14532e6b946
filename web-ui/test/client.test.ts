import { describe, expect, it } from 'vitest';
import { ApiError, Client, type TokenStore, errorMessage, fillPath } from '../src/api/client';

function store(token = ''): TokenStore {
  let t = token;
  return { get: () => t, set: (v) => (t = v) };
}

function fakeFetch(respond: (url: string, init: RequestInit) => Response) {
  const calls: { url: string; init: RequestInit }[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return respond(url, init);
  }) as unknown as typeof fetch;
  return { f, calls };
}

describe('Client', () => {
  it('sends the token and parses JSON', async () => {
    const { f, calls } = fakeFetch(() => new Response('[{"name":"counter"}]', { status: 200 }));
    const c = new Client(store('s3cret'), f);
    const plugins = await c.get('/v1/plugins');
    expect(plugins[0].name).toBe('counter');
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBe('Bearer s3cret');
  });
  it('fills and encodes path parameters', async () => {
    const { f, calls } = fakeFetch(() => new Response('{}', { status: 200 }));
    await new Client(store(), f).get('/v1/plugins/{name}/{version}', { name: 'a b', version: '1.0' });
    expect(calls[0].url).toBe('/v1/plugins/a%20b/1.0');
    expect(() => fillPath('/v1/jobs/{id}', {})).toThrow(/\{id\}/);
  });
  it("reports the server's own words on failure", async () => {
    const { f } = fakeFetch(() => new Response('{"error":"not a component: magic header"}', { status: 422, statusText: 'Unprocessable Entity' }));
    const err = await new Client(store(), f).uploadPlugin('x', '1', new ArrayBuffer(4)).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.message).toBe('not a component: magic header');
  });
  it('falls back to the status line for a body that is not the API error', async () => {
    expect(await errorMessage(new Response('', { status: 502, statusText: 'Bad Gateway' }))).toBe('502 Bad Gateway');
    expect(await errorMessage(new Response('upstream down', { status: 503, statusText: 'Service Unavailable' }))).toBe('503 Service Unavailable: upstream down');
  });
  it('says a dropped connection to a token-checking server is about the token', async () => {
    const f = (async (url: string) => {
      if (url.endsWith('/healthz')) return new Response('{"status":"ok","auth":true}', { status: 200 });
      throw new TypeError('network error');
    }) as unknown as typeof fetch;
    const err = await new Client(store('wrong'), f).uploadPlugin('x', '1', new ArrayBuffer(8)).catch((e) => e);
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/needs a token/);
  });
  it('turns a network failure into an ApiError with status 0', async () => {
    const f = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof fetch;
    const err = await new Client(store(), f).get('/v1/jobs').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(0);
    expect(err.message).toMatch(/did not answer.*fetch failed/);
  });
  it('posts JSON bodies', async () => {
    const { f, calls } = fakeFetch(() => new Response('{"result":"dry_run_ok"}', { status: 200 }));
    await new Client(store(), f).post('/v1/jobs/{id}/upgrade', { plugins: { counter: 'counter@2' }, dry_run: true }, { id: 'j1' });
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ plugins: { counter: 'counter@2' }, dry_run: true });
    expect((calls[0].init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });
});
