// The empty, loading and error states every panel shows instead of a blank.
import type { ComponentChildren } from 'preact';

export function Loading({ what }: { what: string }) {
  return (
    <div class="state loading" role="status" aria-busy="true">
      <span class="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state empty">
      <strong>{title}</strong>
      {children && <div class="hint">{children}</div>}
    </div>
  );
}

export function ErrorBox({ error, retry, title = 'Something went wrong' }: { error: Error | string; retry?: () => void; title?: string }) {
  const message = typeof error === 'string' ? error : error.message;
  return (
    <div class="state error" role="alert">
      <strong>{title}</strong>
      <pre class="message">{message}</pre>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** A status word as a coloured badge. */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status.replace(/_/g, ' ')}</span>;
}
