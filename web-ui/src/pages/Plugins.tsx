// Plugins: upload a component (dropped or picked), see every version, delete one.
import { useState } from 'preact/hooks';
import { type PluginMeta, api } from '../api/client';
import { Confirm } from '../components/Dialog';
import { Dropzone } from '../components/Dropzone';
import { Empty, ErrorBox, Loading } from '../components/States';
import { fmtBytes, fmtTime, shortDigest } from '../lib/format';
import { usePoll } from '../lib/hooks';
import { useAllowed } from '../lib/role';

/** A plugin name guessed from a file name: `counter_v2.wasm` → `counter-v2`. */
export function nameFromFile(file: string): string {
  return file
    .replace(/\.wasm$/i, '')
    .replace(/[^A-Za-z0-9.\-_]+/g, '-')
    .replace(/_/g, '-')
    .replace(/^-+|-+$/g, '');
}

export function Plugins() {
  const canManage = useAllowed('admin');
  const poll = usePoll(() => api.get('/v1/plugins'), 2000);
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [version, setVersion] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<PluginMeta | null>(null);
  const [deleting, setDeleting] = useState<PluginMeta | null>(null);
  const [deleteBusy, setDeleteBusy] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);

  const upload = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const meta = await api.uploadPlugin(name.trim(), version.trim(), await file.arrayBuffer());
      setDone(meta);
      poll.refresh();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!deleting || deleteBusy) return;
    setDeleteBusy(true);
    setDeleteError(null);
    try {
      await api.delete('/v1/plugins/{name}/{version}', { name: deleting.name, version: deleting.version });
    } catch (err) {
      setDeleteError(`${deleting.name}@${deleting.version}: ${err instanceof Error ? err.message : String(err)}`);
    }
    setDeleteBusy(false);
    setDeleting(null);
    poll.refresh();
  };

  return (
    <div class="page">
      {canManage && (
      <section>
        <h2>Upload a plugin</h2>
        <form class="upload" onSubmit={upload}>
          <Dropzone
            accept=".wasm,application/wasm"
            label="Drop a .wasm component here"
            file={file}
            onFile={(f) => {
              setFile(f);
              setDone(null);
              setError(null);
              if (!name) setName(nameFromFile(f.name));
            }}
          />
          <div class="row">
            <label>
              Name
              <input name="name" value={name} required pattern="[A-Za-z0-9._\-]+" onInput={(e) => setName(e.currentTarget.value)} />
            </label>
            <label>
              Version
              <input name="version" value={version} required pattern="[A-Za-z0-9._\-]+" placeholder="1.0.0" onInput={(e) => setVersion(e.currentTarget.value)} />
            </label>
            <button type="submit" class="primary" disabled={!file || busy}>
              {busy ? 'Uploading and compiling…' : 'Upload'}
            </button>
          </div>
          {error && <ErrorBox title="The server refused the plugin" error={error} />}
          {done && (
            <p class="success" role="status">
              Registered <span class="mono">{done.name}@{done.version}</span> ({shortDigest(done.digest)}, WIT {done.wit_version}).
            </p>
          )}
        </form>
      </section>
      )}

      <section>
        <h2>Plugins</h2>
        {deleteError && <ErrorBox title="The server refused the delete" error={deleteError} />}
        {!poll.data ? (
          poll.error ? <ErrorBox error={poll.error} retry={poll.refresh} /> : <Loading what="plugins" />
        ) : poll.data.length === 0 ? (
          <Empty title="No plugins yet">Drop a component above: it is compiled and checked against the operator world before it is stored.</Empty>
        ) : (
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Version</th>
                  <th>Digest</th>
                  <th class="num">Size</th>
                  <th>WIT</th>
                  <th>Uploaded</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {poll.data.map((p) => (
                  <tr key={`${p.name}@${p.version}`} data-plugin={`${p.name}@${p.version}`}>
                    <td class="mono">{p.name}</td>
                    <td class="mono">{p.version}</td>
                    <td class="mono muted" title={p.digest}>
                      {shortDigest(p.digest)}
                    </td>
                    <td class="num">{fmtBytes(p.size)}</td>
                    <td>{p.wit_version}</td>
                    <td>{fmtTime(p.uploaded_ms)}</td>
                    <td>
                      {canManage && (
                        <button type="button" class="small danger" onClick={() => setDeleting(p)} aria-label={`Delete ${p.name}@${p.version}`}>
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {deleting && (
        <Confirm
          title="Delete plugin version?"
          message={
            <p>
              <span class="mono">
                {deleting.name}@{deleting.version}
              </span>{' '}
              will be removed from the registry (the server refuses while a running job uses it). It cannot be used for new jobs or swaps afterwards.
            </p>
          }
          confirmLabel="Delete"
          busy={deleteBusy}
          onConfirm={remove}
          onCancel={() => setDeleting(null)}
        />
      )}
    </div>
  );
}
