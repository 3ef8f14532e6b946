// Submit a job: paste or load a spec (YAML or JSON), pick plugins for its operators,
// fill parameters, choose parallelism and state backend.
import { useState } from 'preact/hooks';
import { type BackendKind, type SubmitRequest, api } from '../api/client';
import { Dropzone } from '../components/Dropzone';
import { ErrorBox } from '../components/States';
import { href, usePoll } from '../lib/hooks';
import { useAllowed } from '../lib/role';

/** `key=value` lines into params; blank lines and `#` comments are skipped. */
export function parseParams(text: string): { params: Record<string, string>; errors: string[] } {
  const params: Record<string, string> = {};
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) errors.push(`line ${i + 1}: expected NAME=value, got "${line}"`);
    else params[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  });
  return { params, errors };
}

/** The `plugin:` references of a spec's text (`plugin: name@version`). */
export function pluginRefs(spec: string): string[] {
  return Array.from(spec.matchAll(/plugin["']?\s*:\s*["']?([^\s"',}]+)/g), (m) => m[1]);
}

export function Submit() {
  if (!useAllowed('operator')) {
    return (
      <div class="page narrow">
        <p class="state" role="status">
          The token in use is a viewer's: submitting jobs needs an operator or admin token.
        </p>
      </div>
    );
  }
  return <SubmitForm />;
}

function SubmitForm() {
  const plugins = usePoll(() => api.get('/v1/plugins'), 5000);
  const [spec, setSpec] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [paramsText, setParamsText] = useState('');
  const [parallelism, setParallelism] = useState('');
  const [backend, setBackend] = useState<BackendKind | ''>('');
  const [savepoint, setSavepoint] = useState('');
  const [allowNonRestored, setAllowNonRestored] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const refs = pluginRefs(spec);
  const known = new Set((plugins.data ?? []).flatMap((p) => [`${p.name}@${p.version}`, p.digest]));
  const unknownRefs = plugins.data ? refs.filter((r) => !known.has(r) && !r.includes('$')) : [];

  const submit = async (e: Event) => {
    e.preventDefault();
    const { params, errors } = parseParams(paramsText);
    if (errors.length) {
      setError(errors.join('\n'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body: SubmitRequest = { spec, params };
      if (parallelism.trim()) body.parallelism = Number(parallelism);
      if (backend) body.state_backend = backend;
      if (savepoint.trim()) body.savepoint = savepoint.trim();
      if (allowNonRestored) body.allow_non_restored_state = true;
      const job = await api.post('/v1/jobs', body);
      location.hash = href({ page: 'job', id: job.id });
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const insertRef = (ref: string) => {
    const ta = document.getElementById('spec') as HTMLTextAreaElement | null;
    if (!ta) return;
    const at = ta.selectionStart ?? spec.length;
    setSpec(spec.slice(0, at) + ref + spec.slice(ta.selectionEnd ?? at));
  };

  return (
    <div class="page">
      <section>
        <h2>Submit a job</h2>
        <form class="submit" onSubmit={submit}>
          <label for="spec">Job spec (YAML or JSON)</label>
          <textarea
            id="spec"
            name="spec"
            rows={16}
            spellcheck={false}
            required
            placeholder={'name: my-job\nsources:\n  - id: input\n    kind: generator\n    …\noperators:\n  - uid: counter\n    plugin: counter@1.0.0\n    …'}
            value={spec}
            onInput={(e) => setSpec(e.currentTarget.value)}
          />
          <Dropzone
            accept=".yaml,.yml,.json"
            label="…or drop a spec file here"
            file={file}
            onFile={(f) => {
              setFile(f);
              f.text().then(setSpec, (err: unknown) => setError(`cannot read ${f.name}: ${err instanceof Error ? err.message : String(err)}`));
            }}
          />
          <div class="plugin-picker">
            <span>Insert a plugin reference:</span>
            {plugins.error && !plugins.data ? (
              <span class="warning">cannot list plugins: {plugins.error.message}</span>
            ) : (plugins.data ?? []).length === 0 ? (
              <span class="muted">no plugins uploaded yet — <a href={href({ page: 'plugins' })}>upload one</a></span>
            ) : (
              (plugins.data ?? []).map((p) => (
                <button type="button" class="small" key={`${p.name}@${p.version}`} onClick={() => insertRef(`${p.name}@${p.version}`)}>
                  {p.name}@{p.version}
                </button>
              ))
            )}
          </div>
          {unknownRefs.length > 0 && <p class="warning">Not in the registry: {unknownRefs.join(', ')}</p>}
          <label for="params">Parameters (one NAME=value per line, for ${'{'}NAME{'}'} in the spec)</label>
          <textarea id="params" name="params" rows={3} spellcheck={false} value={paramsText} onInput={(e) => setParamsText(e.currentTarget.value)} />
          <div class="row">
            <label>
              Parallelism
              <input name="parallelism" type="number" min={1} placeholder="from the spec" value={parallelism} onInput={(e) => setParallelism(e.currentTarget.value)} />
            </label>
            <label>
              State backend
              <select name="backend" value={backend} onChange={(e) => setBackend(e.currentTarget.value as BackendKind | '')}>
                <option value="">server default</option>
                <option value="rocksdb">rocksdb</option>
                <option value="memory">memory</option>
              </select>
            </label>
            <label class="grow">
              Start from savepoint
              <input name="savepoint" placeholder="optional: a savepoint location" value={savepoint} onInput={(e) => setSavepoint(e.currentTarget.value)} />
            </label>
          </div>
          <label class="check">
            <input type="checkbox" name="allow_non_restored_state" checked={allowNonRestored} onChange={(e) => setAllowNonRestored(e.currentTarget.checked)} />
            Drop savepoint state of operators this job does not have (allow non-restored state)
          </label>
          {error && <ErrorBox title="The server refused the job" error={error} />}
          <div class="actions">
            <button type="submit" class="primary" disabled={busy || !spec.trim()}>
              {busy ? 'Submitting…' : 'Submit job'}
            </button>
          </div>
        </form>
      </section>
    </div>
  );
}
