// A job: its graph with live per-operator numbers, throughput and lag charts, and tabs
// for checkpoints, savepoints, exceptions, guest logs, history and spec; actions to
// take a savepoint, stop, rescale and upgrade.
import { useRef, useState } from 'preact/hooks';
import { type JobDetail, api } from '../api/client';
import { Chart } from '../components/Chart';
import { Confirm, Dialog } from '../components/Dialog';
import { JobGraph } from '../components/Graph';
import { Empty, ErrorBox, Loading, StatusBadge } from '../components/States';
import { fmtAge, fmtBytes, fmtCount, fmtDuration, fmtRate, fmtTime } from '../lib/format';
import { href, usePoll } from '../lib/hooks';
import { ioCounters, isRunning, nodeCounters, outputLagMs } from '../lib/jobstats';
import { useAllowed } from '../lib/role';
import { RateTracker, Series } from '../lib/series';
import { UpgradeDialog } from './Upgrade';

const TABS = ['checkpoints', 'savepoints', 'exceptions', 'logs', 'history', 'spec'] as const;
type Tab = (typeof TABS)[number];

interface Live {
  rates: Record<string, number> | null;
  inSeries: Series;
  outSeries: Series;
  lagSeries: Series;
  latencySeries: Series;
  lastCheckpoint: string;
}

export function JobPage({ id }: { id: string }) {
  const canOperate = useAllowed('operator');
  const live = useRef<Live & { io: RateTracker; nodes: RateTracker }>({
    rates: null,
    inSeries: new Series(),
    outSeries: new Series(),
    lagSeries: new Series(),
    latencySeries: new Series(),
    lastCheckpoint: '',
    io: new RateTracker(),
    nodes: new RateTracker(),
  });
  const poll = usePoll<{ t: number; job: JobDetail }>(
    async () => {
      const job = await api.get('/v1/jobs/{id}', { id });
      const t = Date.now();
      const l = live.current;
      if (isRunning(job.status) || job.status === 'upgrading') {
        const io = l.io.update(t, ioCounters(job));
        if (io) {
          l.inSeries.push(t, io.in);
          l.outSeries.push(t, io.out);
        }
        l.rates = l.nodes.update(t, nodeCounters(job.nodes)) ?? l.rates;
        const lag = outputLagMs(job, t);
        if (lag !== null) l.lagSeries.push(t, lag);
        const c = job.last_checkpoint;
        const key = c ? `${c.location}` : '';
        if (c && key !== l.lastCheckpoint) {
          l.lastCheckpoint = key;
          if (c.latency_ms !== null && c.latency_ms !== undefined) l.latencySeries.push(t, c.latency_ms);
        }
      } else {
        l.rates = null;
      }
      return { t, job };
    },
    1000,
    [id],
  );
  const plugins = usePoll(() => api.get('/v1/plugins'), 5000);
  const [tab, setTab] = useState<Tab>('checkpoints');
  const [dialog, setDialog] = useState<null | 'stop' | 'cancel' | 'rescale' | 'upgrade'>(null);
  const [notice, setNotice] = useState<{ kind: 'success' | 'error'; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [parallelism, setParallelism] = useState('');

  if (!poll.data) {
    if (poll.error) return <ErrorBox title={`Cannot load job ${id}`} error={poll.error} retry={poll.refresh} />;
    return <Loading what={`job ${id}`} />;
  }
  const { job, t } = poll.data;
  const l = live.current;
  const running = isRunning(job.status);

  /** Run an action; its notice is `what`, or the text the action returns. */
  const act = async (what: string, call: () => Promise<unknown>) => {
    setBusy(true);
    setNotice(null);
    try {
      const said = await call();
      setNotice({ kind: 'success', text: typeof said === 'string' ? said : what });
    } catch (e) {
      setNotice({ kind: 'error', text: e instanceof Error ? e.message : String(e) });
    } finally {
      setBusy(false);
      setDialog(null);
      poll.refresh();
    }
  };

  return (
    <div class="page">
      <div class="job-head">
        <div>
          <a href={href({ page: 'overview' })} class="muted">
            ← Jobs
          </a>
          <h2>
            {job.name} <StatusBadge status={job.status} />
          </h2>
          <div class="muted">
            <span class="mono">{job.id}</span> · attempt {job.attempt} · up {fmtDuration(job.uptime_s * 1000)} · {job.state_backend} state
            {job.parallelism ? ` · parallelism ${job.parallelism}` : ''}
            {job.last_checkpoint ? ` · last checkpoint #${job.last_checkpoint.id} ${fmtAge(job.last_checkpoint.at_ms, t)}` : ''}
          </div>
          {job.error && <ErrorBox title="The job failed" error={job.error} />}
        </div>
        {canOperate && (
        <div class="toolbar" role="toolbar" aria-label="job actions">
          <button
            type="button"
            disabled={!running || busy}
            onClick={() =>
              act('Savepoint requested: it appears under Savepoints when complete.', async () => {
                await api.post('/v1/jobs/{id}/savepoints', {}, { id });
                setTab('savepoints');
              })
            }
          >
            Take savepoint
          </button>
          <button type="button" class="primary" disabled={!running || busy} onClick={() => setDialog('upgrade')}>
            Upgrade…
          </button>
          <button type="button" disabled={!running || busy} onClick={() => setDialog('rescale')}>
            Rescale…
          </button>
          <button type="button" class="danger" disabled={!running || busy} onClick={() => setDialog('stop')}>
            Stop with savepoint
          </button>
          <button type="button" class="danger subtle" disabled={!running || busy} onClick={() => setDialog('cancel')}>
            Cancel
          </button>
        </div>
        )}
      </div>
      {poll.error && <ErrorBox title="Live updates paused: the last poll failed" error={poll.error} retry={poll.refresh} />}
      {notice && (
        <div class={notice.kind === 'success' ? 'success' : 'state error'} role={notice.kind === 'error' ? 'alert' : 'status'} data-testid="notice">
          {notice.text}
        </div>
      )}

      <section aria-label="job graph">
        <h3>Graph</h3>
        {job.nodes.length === 0 ? <Empty title="No graph">The job's spec could not be turned into a graph.</Empty> : <JobGraph nodes={job.nodes} edges={job.edges} rates={l.rates} nowMs={t} />}
      </section>

      <section class="charts" aria-label="charts">
        <Chart
          title="Throughput (records/s)"
          format={(v) => fmtCount(v)}
          lines={[
            { label: 'in', points: l.inSeries.points, className: 'c1' },
            { label: 'out', points: l.outSeries.points, className: 'c2' },
          ]}
        />
        <Chart
          title="End-to-end latency (checkpoint barrier, source → sinks)"
          format={(v) => fmtDuration(v)}
          emptyText="waiting for the next checkpoint…"
          lines={[{ label: 'latency', points: l.latencySeries.points, className: 'c1' }]}
        />
        <Chart
          title="Event-time lag at the sinks (now − watermark)"
          format={(v) => fmtDuration(v)}
          emptyText="no watermark has reached the sinks"
          lines={[{ label: 'lag', points: l.lagSeries.points, className: 'c3' }]}
        />
      </section>
      <p class="muted small">
        Records in {fmtCount(ioCounters(job).in)} ({fmtRate(l.inSeries.last())}) · out {fmtCount(ioCounters(job).out)} ({fmtRate(l.outSeries.last())}) in this run.
      </p>

      <div class="tabs" role="tablist" aria-label="job details">
        {TABS.map((name) => (
          <button
            key={name}
            type="button"
            role="tab"
            id={`tab-${name}`}
            aria-selected={tab === name}
            aria-controls={tab === name ? `panel-${name}` : undefined}
            tabIndex={tab === name ? 0 : -1}
            class={tab === name ? 'tab active' : 'tab'}
            onClick={() => setTab(name)}
            onKeyDown={(e) => {
              const i = TABS.indexOf(name);
              const next =
                e.key === 'ArrowRight' ? TABS[(i + 1) % TABS.length] : e.key === 'ArrowLeft' ? TABS[(i + TABS.length - 1) % TABS.length] : e.key === 'Home' ? TABS[0] : e.key === 'End' ? TABS[TABS.length - 1] : null;
              if (next) {
                e.preventDefault();
                setTab(next);
                document.getElementById(`tab-${next}`)?.focus();
              }
            }}
          >
            {name}
            {name === 'exceptions' && job.exceptions.length > 0 ? ` (${job.exceptions.length})` : ''}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="panel">
        {tab === 'checkpoints' && <Checkpoints id={id} />}
        {tab === 'savepoints' && <Savepoints job={job} />}
        {tab === 'exceptions' && <Exceptions job={job} />}
        {tab === 'logs' && <Logs id={id} />}
        {tab === 'history' && <History job={job} />}
        {tab === 'spec' && <pre class="spec">{JSON.stringify(job.spec, null, 2)}</pre>}
      </div>

      {dialog === 'stop' && (
        <Confirm
          title="Stop the job with a savepoint?"
          message={<p>The sources stop at a barrier, the sinks commit, and a savepoint is taken. You can start the job again from it.</p>}
          confirmLabel="Stop with savepoint"
          busy={busy}
          onConfirm={() => act('Stopped with a savepoint.', () => api.post('/v1/jobs/{id}/stop', { savepoint: true }, { id }))}
          onCancel={() => setDialog(null)}
        />
      )}
      {dialog === 'cancel' && (
        <Confirm
          title="Cancel the job?"
          message={<p>The job stops now, without a savepoint. Output since the last checkpoint is not committed.</p>}
          confirmLabel="Cancel job"
          busy={busy}
          onConfirm={() => act('Cancelled.', () => api.post('/v1/jobs/{id}/stop', { savepoint: false }, { id }))}
          onCancel={() => setDialog(null)}
        />
      )}
      {dialog === 'rescale' && (
        <Dialog title="Rescale the job" onClose={() => setDialog(null)}>
          <p>The job stops with a savepoint and restarts with the new parallelism; keyed state is redistributed by key group.</p>
          <label>
            New parallelism
            <input type="number" min={1} name="parallelism" value={parallelism} placeholder={String(job.parallelism ?? Math.max(1, ...job.nodes.filter((n) => n.kind === 'operator').map((n) => n.parallelism)))} onInput={(e) => setParallelism(e.currentTarget.value)} />
          </label>
          <div class="actions">
            <button type="button" onClick={() => setDialog(null)}>
              Cancel
            </button>
            <button
              type="button"
              class="danger"
              disabled={busy || !(Number.isInteger(Number(parallelism)) && Number(parallelism) >= 1)}
              onClick={() =>
                act(`Rescaled to ${parallelism}.`, async () => {
                  const out = await api.post('/v1/jobs/{id}/rescale', { parallelism: Number(parallelism) }, { id });
                  if (out.result === 'rolled_back') throw new Error(`the rescale was rolled back: ${out.rollback_reason ?? 'unknown reason'}`);
                  if (out.result === 'pending') return `Rescaled to ${parallelism}; on probation until its first checkpoint.`;
                  return undefined;
                })
              }
            >
              {busy ? 'Rescaling…' : 'Rescale'}
            </button>
          </div>
        </Dialog>
      )}
      {dialog === 'upgrade' && (
        <UpgradeDialog
          job={job}
          plugins={plugins.data ?? []}
          onClose={(changed) => {
            setDialog(null);
            if (changed) setTab('history');
            poll.refresh();
          }}
        />
      )}
    </div>
  );
}

function Checkpoints({ id }: { id: string }) {
  const poll = usePoll(() => api.get('/v1/jobs/{id}/checkpoints', { id }), 2000, [id]);
  if (!poll.data) return poll.error ? <ErrorBox error={poll.error} retry={poll.refresh} /> : <Loading what="checkpoints" />;
  const { completed, failed, retained } = poll.data;
  const rows = [...completed].reverse();
  return (
    <div>
      {rows.length === 0 ? (
        <Empty title="No checkpoint completed yet">The first one completes after the job's checkpoint interval.</Empty>
      ) : (
        <div class="table-scroll">
          <table data-testid="checkpoints">
            <thead>
              <tr>
                <th>#</th>
                <th>Kind</th>
                <th>Completed</th>
                <th class="num">Duration</th>
                <th class="num">Latency</th>
                <th class="num">Size</th>
                <th class="num">Incremental</th>
                <th>Location</th>
              </tr>
            </thead>
            <tbody>
              {rows.slice(0, 50).map((c) => (
                <tr key={`${c.kind}-${c.id}`}>
                  <td>{c.id}</td>
                  <td>{c.kind}</td>
                  <td>{fmtTime(c.at_ms)}</td>
                  <td class="num">{fmtDuration(c.duration_ms)}</td>
                  <td class="num">{fmtDuration(c.latency_ms)}</td>
                  <td class="num">{fmtBytes(c.total_bytes)}</td>
                  <td class="num">{fmtBytes(c.bytes)}</td>
                  <td class="mono small">{c.location}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h4>Failed</h4>
      {failed.length === 0 ? (
        <p class="muted">No failed checkpoints.</p>
      ) : (
        <ul class="failures">
          {failed.map((f) => (
            <li key={f.id}>
              #{f.id}: {f.reason}
            </li>
          ))}
        </ul>
      )}
      <h4>Retained in storage</h4>
      {retained.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="mono small">
          {retained.map((r) => (
            <li key={r.id}>{r.location}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Savepoints({ job }: { job: JobDetail }) {
  if (job.savepoints.length === 0) return <Empty title="No savepoints yet">Take one with “Take savepoint”; stopping with a savepoint also makes one.</Empty>;
  return (
    <div class="table-scroll">
      <table data-testid="savepoints">
        <thead>
          <tr>
            <th>Requested</th>
            <th>Status</th>
            <th>Kind</th>
            <th>Location / error</th>
          </tr>
        </thead>
        <tbody>
          {[...job.savepoints].reverse().map((s) => (
            <tr key={s.trigger}>
              <td>{fmtTime(s.requested_ms)}</td>
              <td>
                <span class={`badge sp-${s.status}`}>{s.status.replace('_', ' ')}</span>
              </td>
              <td>{s.stop ? 'stop' : 'savepoint'}</td>
              <td class="mono small">{s.location ?? s.error ?? '…'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Exceptions({ job }: { job: JobDetail }) {
  if (job.exceptions.length === 0) return <Empty title="No exceptions">No task of this job has failed.</Empty>;
  return (
    <ul class="exceptions">
      {[...job.exceptions].reverse().map((x, i) => (
        <li key={i}>
          <div>
            <strong>{x.operator ?? 'job'}</strong>
            {x.plugin ? <span class="mono"> ({x.plugin})</span> : null} · attempt {x.attempt} · {fmtTime(x.at_ms)}
          </div>
          <pre class="message">{x.reason}</pre>
        </li>
      ))}
    </ul>
  );
}

function Logs({ id }: { id: string }) {
  const poll = usePoll(() => api.get('/v1/jobs/{id}/logs', { id }), 2000, [id]);
  if (!poll.data) return poll.error ? <ErrorBox error={poll.error} retry={poll.refresh} /> : <Loading what="guest logs" />;
  if (poll.data.length === 0) return <Empty title="No guest log lines">Operators log through the SDK's log calls, stdout or stderr.</Empty>;
  return (
    <pre class="logs" data-testid="logs">
      {poll.data
        .slice(-500)
        .map((line) => `${fmtTime(line.at_ms)} ${line.level.padEnd(6)} ${line.operator}[${line.subtask}] ${line.message}`)
        .join('\n')}
    </pre>
  );
}

function History({ job }: { job: JobDetail }) {
  if (job.history.length === 0) return <Empty title="No history yet" />;
  return (
    <div class="table-scroll">
      <table data-testid="history">
        <thead>
          <tr>
            <th>When</th>
            <th>Event</th>
            <th>Versions</th>
            <th class="num">Downtime</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {[...job.history].reverse().map((h, i) => (
            <tr key={i} class={`history-${h.kind}`}>
              <td>{fmtTime(h.at_ms)}</td>
              <td>
                <span class={`badge ev-${h.kind}`}>{h.kind}</span>
              </td>
              <td class="mono small">
                {Object.entries(h.versions).map(([uid, v]) => {
                  const before = h.from_versions?.[uid];
                  return (
                    <div key={uid}>
                      {uid}: {before && before !== v ? `${before} → ${v}` : v}
                    </div>
                  );
                })}
              </td>
              <td class="num">{h.downtime_ms === undefined || h.downtime_ms === null ? '' : fmtDuration(h.downtime_ms)}</td>
              <td class="small">
                {h.parallelism ? `parallelism ${h.parallelism}` : ''}
                {h.detail ? <div>{h.detail}</div> : null}
                {h.savepoint ? <div class="mono muted">{h.savepoint}</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
