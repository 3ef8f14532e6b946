// The hot-swap dialog: pick an operator and a plugin version, see the server's dry run
// (validation + migrate-state on the latest snapshot), confirm, then watch the swap go
// through its steps and report its downtime — or its rollback.
import { useState } from 'preact/hooks';
import { type JobDetail, type PluginMeta, type UpgradeOutcome, api } from '../api/client';
import { Dialog } from '../components/Dialog';
import { ErrorBox } from '../components/States';
import { fmtDuration } from '../lib/format';
import { operatorUids } from '../lib/jobstats';

/** The versions worth offering first for an operator: same plugin name, newest upload first. */
export function candidates(plugins: PluginMeta[], current: string | undefined): PluginMeta[] {
  const name = current?.split('@')[0];
  return [...plugins].sort((a, b) => {
    const sa = a.name === name ? 0 : 1;
    const sb = b.name === name ? 0 : 1;
    return sa - sb || b.uploaded_ms - a.uploaded_ms;
  });
}

type Phase = 'choose' | 'checking' | 'checked' | 'swapping' | 'done';

/** The version offered first: the newest other version of the running plugin. */
export function defaultTarget(plugins: PluginMeta[], current: string | undefined): string {
  const options = candidates(plugins, current).map((p) => `${p.name}@${p.version}`);
  return options.find((o) => o !== current) ?? options[0] ?? '';
}

export function UpgradeDialog({ job, plugins, onClose }: { job: JobDetail; plugins: PluginMeta[]; onClose: (changed: boolean) => void }) {
  const uids = operatorUids(job);
  const [uid, setUid] = useState(uids[0] ?? '');
  // The versions when the dialog opened: the job page keeps polling under the dialog.
  const [before] = useState(() => job.plugins);
  const current = before[uid] ? `${before[uid].name}@${before[uid].version}` : undefined;
  const options = candidates(plugins, current).map((p) => `${p.name}@${p.version}`);
  const [picked, setTarget] = useState<string | null>(null);
  // Until the user picks one, the target follows the operator (and the plugin list,
  // which may arrive after the dialog opened).
  const target = picked !== null && options.includes(picked) ? picked : defaultTarget(plugins, current);
  const [phase, setPhase] = useState<Phase>('choose');
  const [check, setCheck] = useState<UpgradeOutcome | null>(null);
  const [outcome, setOutcome] = useState<UpgradeOutcome | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reset = () => {
    setPhase('choose');
    setCheck(null);
    setError(null);
  };

  const dryRun = async () => {
    setPhase('checking');
    setError(null);
    try {
      setCheck(await api.post('/v1/jobs/{id}/upgrade', { plugins: { [uid]: target }, dry_run: true }, { id: job.id }));
      setPhase('checked');
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setPhase('choose');
    }
  };

  const swap = async () => {
    setPhase('swapping');
    setError(null);
    try {
      setOutcome(await api.post('/v1/jobs/{id}/upgrade', { plugins: { [uid]: target } }, { id: job.id }));
      setPhase('done');
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setPhase('checked');
    }
  };

  // While the swap request is in flight, the job page keeps polling: its status tells
  // which step the server is at.
  const step = phase !== 'swapping' ? null : job.status === 'upgrading' ? 1 : job.plugins[uid] && `${job.plugins[uid].name}@${job.plugins[uid].version}` === target ? 2 : 0;

  return (
    <Dialog title={`Upgrade an operator of ${job.name}`} onClose={phase === 'swapping' ? () => undefined : () => onClose(phase === 'done')}>
      {uids.length === 0 ? (
        <p>This job has no Wasm operators to upgrade.</p>
      ) : (
        <>
          <div class="row">
            <label>
              Operator
              <select name="operator" value={uid} disabled={phase !== 'choose'} onChange={(e) => (setUid(e.currentTarget.value), setTarget(null), reset())}>
                {uids.map((u) => (
                  <option key={u} value={u}>
                    {u}
                  </option>
                ))}
              </select>
            </label>
            <label>
              New version
              <select name="version" value={target} disabled={phase !== 'choose'} onChange={(e) => (setTarget(e.currentTarget.value), reset())}>
                {options.map((o) => (
                  <option key={o} value={o}>
                    {o}
                    {o === current ? ' (running)' : ''}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <p class="muted">
            Now: <span class="mono">{current ?? '–'}</span> → <span class="mono">{target || '–'}</span>
          </p>
        </>
      )}
      {error && <ErrorBox title={phase === 'choose' ? 'The dry run failed: the job was not touched' : 'The swap failed'} error={error} />}
      {check && phase !== 'choose' && (
        <div class="success" role="status" data-testid="dry-run">
          <strong>Dry run passed.</strong> {check.detail}
        </div>
      )}
      {phase === 'swapping' && (
        <ol class="steps" aria-live="polite">
          <li class={step === 0 || step === 1 ? 'active' : 'done'}>Stopping with a savepoint (sinks commit, nothing in flight)</li>
          <li class={step === 2 ? 'active' : ''}>Starting {target} from the savepoint, on probation until its first checkpoint</li>
          <li>Confirming the swap or rolling back</li>
        </ol>
      )}
      {outcome && (
        <div class={outcome.result === 'swapped' ? 'success' : 'warning'} role="status" data-testid="swap-result">
          {outcome.result === 'swapped' && (
            <>
              <strong>Swapped</strong> to {Object.values(outcome.versions).join(', ')} with {fmtDuration(outcome.downtime_ms)} of downtime.
            </>
          )}
          {outcome.result === 'rolled_back' && (
            <>
              <strong>Rolled back</strong> to {Object.values(outcome.versions).join(', ')}: {outcome.rollback_reason}
            </>
          )}
          {outcome.result === 'pending' && (
            <>
              <strong>Still on probation:</strong> the new version has not completed a checkpoint yet and may still roll back.
            </>
          )}
          <div class="muted mono">savepoint {outcome.savepoint}</div>
        </div>
      )}
      <div class="actions">
        {phase === 'done' ? (
          <button type="button" class="primary" onClick={() => onClose(true)}>
            Close
          </button>
        ) : (
          <>
            <button type="button" onClick={() => onClose(false)} disabled={phase === 'swapping'}>
              Cancel
            </button>
            {phase === 'checked' && (
              <button type="button" onClick={reset}>
                Back
              </button>
            )}
            {phase === 'checked' ? (
              <button type="button" class="danger" onClick={swap}>
                Swap now
              </button>
            ) : (
              <button type="button" class="primary" disabled={!uid || !target || target === current || phase !== 'choose'} onClick={dryRun}>
                {phase === 'checking' ? 'Checking…' : 'Check (dry run)'}
              </button>
            )}
          </>
        )}
      </div>
    </Dialog>
  );
}
