// Compile-time checks (by `tsc` in `npm run check`) that the typed client resolves real
// types from the generated schema, not `never` (which would accept anything).
import { describe, expect, it } from 'vitest';
import type { Client, JobDetail, JobRecord, PluginMeta, UpgradeOutcome } from '../src/api/client';

type IsNever<T> = [T] extends [never] ? true : false;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

type Got<K extends keyof Client> = Client[K] extends (...a: never[]) => Promise<infer R> ? R : never;
const jobsReply: Same<Awaited<ReturnType<Client['get']>>, unknown> = false;
const listOfJobs: Same<ReturnType<typeof listJobs>, Promise<JobRecord[]>> = true;
const detail: Same<ReturnType<typeof getJob>, Promise<JobDetail>> = true;
const upgrade: Same<ReturnType<typeof upgradeJob>, Promise<UpgradeOutcome>> = true;
const upload: IsNever<Got<'uploadPlugin'>> = false;
const plugins: Same<ReturnType<typeof listPlugins>, Promise<PluginMeta[]>> = true;

function listJobs(c: Client) {
  return c.get('/v1/jobs');
}
function getJob(c: Client) {
  return c.get('/v1/jobs/{id}', { id: 'x' });
}
function upgradeJob(c: Client) {
  return c.post('/v1/jobs/{id}/upgrade', { plugins: { a: 'b@1' }, dry_run: true }, { id: 'x' });
}
function listPlugins(c: Client) {
  return c.get('/v1/plugins');
}

describe('typed client', () => {
  it('resolves response types from the OpenAPI schema', () => {
    expect([jobsReply, listOfJobs, detail, upgrade, upload, plugins]).toEqual([false, true, true, true, false, true]);
  });
});
