// The overview: server health, every job with its live rates, and the plugins.
import { useRef } from 'preact/hooks';
import { type Health, type JobDetail, type JobRecord, type PluginMeta, type WorkersView, api } from '../api/client';
import { Empty, ErrorBox, Loading, StatusBadge } from '../components/States';
import { fmtAge, fmtBytes, fmtDuration, fmtRate, fmtTime, shortDigest } from '../lib/format';
import { href, usePoll } from '../lib/hooks';
import { ioCounters } from '../lib/jobstats';
import { RateTracker } from '../lib/series';

interface Snapshot {
  t: number;
  health: Health;
  jobs: JobRecord[];
  details: Record<string, JobDetail>;
  plugins: PluginMeta[];
  /** `null` when the server does not say (an older server). */
  workers: WorkersView | null;
}

export function Overview() {
  const trackers = useRef(new Map<string, RateTracker>());
  const rates = useRef(new Map<string, { in: number; out: number }>());
  const poll = usePoll<Snapshot>(async () => {
    const [health, jobs, plugins, workers] = await Promise.all([
      api.health(),
      api.get('/v1/jobs'),
      api.get('/v1/plugins'),
      api.get('/v1/workers').catch(() => null),
    ]);
    const active = jobs.filter((j) => j.status === 'running' || j.status === 'upgrading');
    const details: Record<string, JobDetail> = {};
    // One job's failed detail leaves that row without live numbers, not the page.
    await Promise.allSettled(
      active.map(async (j) => {
        details[j.id] = await api.get('/v1/jobs/{id}', { id: j.id });
      }),
    );
    for (const id of trackers.current.keys()) {
      if (!active.some((j) => j.id === id)) {
        trackers.current.delete(id);
        rates.current.delete(id);
      }
    }
    const t = Date.now();
    for (const [id, d] of Object.entries(details)) {
      let tracker = trackers.current.get(id);
      if (!tracker) trackers.current.set(id, (tracker = new RateTracker()));
      const r = tracker.update(t, ioCounters(d));
      if (r) rates.current.set(id, { in: r.in, out: r.out });
    }
    return { t, health, jobs, details, plugins, workers };
  }, 1000);

  if (!poll.data) {
    return poll.error ? <ErrorBox title="Cannot reach the server" error={poll.error} retry={poll.refresh} /> : <Loading what="the overview" />;
  }
  const { health, jobs, details, plugins, workers, t } = poll.data;
  const cluster = workers?.scheduler === 'cluster' ? workers : null;
  const running = jobs.filter((j) => j.status === 'running').length;
  const sorted = [...jobs].sort((a, b) => b.created_ms - a.created_ms);
  return (
    <div class="page">
      {poll.error && <ErrorBox title="Live updates paused: the last poll failed" error={poll.error} retry={poll.refresh} />}
      <section class="cards" aria-label="server health">
        <div class="card">
          <div class="card-label">Server</div>
          <div class="card-value ok">● {health.status}</div>
          <div class="card-sub">
            v{health.version} · up {fmtDuration(health.uptime_s * 1000)}
          </div>
        </div>
        <div class="card">
          <div class="card-label">Jobs running</div>
          <div class="card-value" data-testid="jobs-running">
            {running}
          </div>
          <div class="card-sub">{jobs.length} in all</div>
        </div>
        <div class="card">
          <div class="card-label">Workers</div>
          <div class="card-value" data-testid="workers">
            {cluster ? cluster.workers.length : 'embedded'}
          </div>
          <div class="card-sub">
            {cluster ? `${cluster.workers.reduce((n, w) => n + w.slots, 0)} slots · ${cluster.workers.reduce((n, w) => n + w.tasks, 0)} tasks` : 'tasks run in the server'}
          </div>
        </div>
        <div class="card">
          <div class="card-label">Plugins</div>
          <div class="card-value">{plugins.length}</div>
          <div class="card-sub">{new Set(plugins.map((p) => p.name)).size} names</div>
        </div>
      </section>

      <section>
        <div class="section-head">
          <h2>Jobs</h2>
          <a class="button primary" href={href({ page: 'submit' })}>
            Submit a job
          </a>
        </div>
        {sorted.length === 0 ? (
          <Empty title="No jobs yet">
            Upload an operator on the <a href={href({ page: 'plugins' })}>Plugins</a> page, then <a href={href({ page: 'submit' })}>submit a job</a> that uses it.
          </Empty>
        ) : (
          <div class="table-scroll">
            <table class="jobs">
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Status</th>
                  <th>Uptime</th>
                  <th class="num">In</th>
                  <th class="num">Out</th>
                  <th>Last checkpoint</th>
                  <th>Submitted</th>
                </tr>
              </thead>
              <tbody>
                {sorted.map((j) => {
                  const d = details[j.id];
                  const r = rates.current.get(j.id);
                  return (
                    <tr key={j.id} data-job={j.id}>
                      <td>
                        <a href={href({ page: 'job', id: j.id })}>{j.name}</a>
                        <div class="muted mono">{j.id}</div>
                      </td>
                      <td>
                        <StatusBadge status={j.status} />
                      </td>
                      <td>{d ? fmtDuration(d.uptime_s * 1000) : '–'}</td>
                      <td class="num" data-testid="rate-in">
                        {d ? fmtRate(r?.in) : '–'}
                      </td>
                      <td class="num" data-testid="rate-out">
                        {d ? fmtRate(r?.out) : '–'}
                      </td>
                      <td>{d?.last_checkpoint ? `#${d.last_checkpoint.id}, ${fmtAge(d.last_checkpoint.at_ms, t)}` : d ? 'none yet' : '–'}</td>
                      <td>{fmtTime(j.created_ms)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {cluster && (
        <section aria-label="workers">
          <div class="section-head">
            <h2>Workers</h2>
            <span class="muted mono">joining at {cluster.cluster_addr}</span>
          </div>
          {cluster.workers.length === 0 ? (
            <Empty title="No workers registered">
              Start one with <code>rivulet worker --coordinator {cluster.cluster_addr}</code> and the cluster token.
            </Empty>
          ) : (
            <div class="table-scroll">
              <table class="workers">
                <thead>
                  <tr>
                    <th>Worker</th>
                    <th>Host</th>
                    <th class="num">Slots</th>
                    <th class="num">Free</th>
                    <th>Job</th>
                    <th class="num">Tasks</th>
                    <th class="num">Runs</th>
                    <th>Heartbeat</th>
                    <th>Registered</th>
                  </tr>
                </thead>
                <tbody>
                  {cluster.workers.map((w) => (
                    <tr key={w.id} data-worker={w.id}>
                      <td>
                        {w.name} <span class="muted mono">#{w.id}</span>
                      </td>
                      <td class="mono">{w.host}</td>
                      <td class="num">{w.slots}</td>
                      <td class="num">{w.free_slots}</td>
                      <td class="mono" title="the job a pod was made for">{w.pool ?? "any"}</td>
                      <td class="num">{w.tasks}</td>
                      <td class="num">{w.runs}</td>
                      <td>{fmtDuration(w.heartbeat_age_s * 1000)} ago</td>
                      <td>{fmtDuration(w.registered_s * 1000)} ago</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}

      <section>
        <div class="section-head">
          <h2>Plugins</h2>
          <a class="button" href={href({ page: 'plugins' })}>
            Manage plugins
          </a>
        </div>
        {plugins.length === 0 ? (
          <Empty title="No plugins yet">
            <a href={href({ page: 'plugins' })}>Upload a component</a> built with <code>make operator</code>.
          </Empty>
        ) : (
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Plugin</th>
                  <th>Digest</th>
                  <th class="num">Size</th>
                  <th>Uploaded</th>
                </tr>
              </thead>
              <tbody>
                {plugins.map((p) => (
                  <tr key={`${p.name}@${p.version}`}>
                    <td class="mono">
                      {p.name}@{p.version}
                    </td>
                    <td class="mono muted">{shortDigest(p.digest)}</td>
                    <td class="num">{fmtBytes(p.size)}</td>
                    <td>{fmtTime(p.uploaded_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}
