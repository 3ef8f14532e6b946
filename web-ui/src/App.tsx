// The app's frame: header with navigation and server state, the token prompt, and the
// page of the current route.
import { Component, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { UNAUTHORIZED_EVENT, api, sessionToken } from './api/client';
import { Empty, ErrorBox, Loading } from './components/States';
import { href, useRoute } from './lib/hooks';
import { type Role, RoleContext, allows } from './lib/role';
import { JobPage } from './pages/JobPage';
import { Overview } from './pages/Overview';
import { Plugins } from './pages/Plugins';
import { Submit } from './pages/Submit';

/** A page that throws while rendering shows the error, not a blank screen. */
class Boundary extends Component<{ children: ComponentChildren }, { error: Error | null }> {
  state = { error: null as Error | null };
  static getDerivedStateFromError(error: unknown) {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }
  render() {
    if (this.state.error) {
      return <ErrorBox title="This page failed to render" error={this.state.error} retry={() => this.setState({ error: null })} />;
    }
    return this.props.children;
  }
}

function TokenForm({ onSaved, rejected }: { onSaved: () => void; rejected: boolean }) {
  const [token, setToken] = useState('');
  return (
    <div class="page narrow">
      <section>
        <h2>This server needs a token</h2>
        <p>Enter the API token the server was started with (its <code>--auth-token-file</code>). It is kept for this browser tab's session only.</p>
        {rejected && sessionToken.get() && (
          <p class="state error" role="alert">
            The server refused the token that was entered.
          </p>
        )}
        <form
          onSubmit={(e) => {
            e.preventDefault();
            sessionToken.set(token.trim());
            onSaved();
          }}
        >
          <label>
            API token
            <input type="password" name="token" autoComplete="off" autoFocus required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
          </label>
          <div class="actions">
            <button type="submit" class="primary">
              Continue
            </button>
          </div>
        </form>
      </section>
    </div>
  );
}

export function App() {
  const route = useRoute();
  // `checking` until /healthz says whether a token is needed: no API call goes out
  // without one that the server would refuse.
  const [gate, setGate] = useState<'checking' | 'token' | 'open'>('checking');
  const needToken = gate === 'token';
  const setNeedToken = (need: boolean) => setGate(need ? 'token' : 'open');
  const [generation, setGeneration] = useState(0);
  const [role, setRole] = useState<Role>('viewer');
  const [auth, setAuth] = useState(false);
  useEffect(() => {
    const on = () => setNeedToken(true);
    window.addEventListener(UNAUTHORIZED_EVENT, on);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, on);
  }, []);
  useEffect(() => {
    document.title = route.page === 'job' ? `Job ${route.id} · Rivulet` : route.page === 'overview' ? 'Rivulet' : `${route.page[0].toUpperCase()}${route.page.slice(1)} · Rivulet`;
  }, [route]);
  // Ask for the token before any API call when the server needs one and none is kept.
  useEffect(() => {
    api
      .health()
      .then((h) => {
        setAuth(h.auth);
        setGate(h.auth && !sessionToken.get() ? 'token' : 'open');
      })
      .catch(() => setGate('open'));
  }, [generation]);
  // What the token may do decides what the pages offer.
  useEffect(() => {
    if (gate !== 'open') return;
    api
      .session()
      .then((s) => setRole(s.role))
      .catch(() => setRole('viewer'));
  }, [gate, generation]);

  const nav = [
    { page: 'overview' as const, label: 'Overview' },
    { page: 'plugins' as const, label: 'Plugins' },
    ...(allows(role, 'operator') ? [{ page: 'submit' as const, label: 'Submit job' }] : []),
  ];
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          // The hash is the router's: move focus without navigating.
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          <img src="/favicon.svg" alt="" width="22" height="22" /> Rivulet
        </a>
        <nav aria-label="main">
          {nav.map((n) => (
            <a key={n.page} href={href({ page: n.page })} aria-current={route.page === n.page ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        {auth && gate === 'open' && (
          <span class="badge role" title="the role of the token in use" data-testid="role">
            {role}
          </span>
        )}
        {sessionToken.get() && (
          <button
            type="button"
            class="small subtle"
            onClick={() => {
              sessionToken.set('');
              setNeedToken(true);
            }}
          >
            Forget token
          </button>
        )}
      </header>
      <RoleContext.Provider value={role}>
      <main id="main" tabIndex={-1} key={generation}>
        <Boundary key={route.page === 'job' ? `job:${route.id}` : route.page}>
        {gate === 'checking' ? (
          <Loading what="the server's state" />
        ) : needToken ? (
          <TokenForm
            rejected={needToken}
            onSaved={() => {
              setNeedToken(false);
              setGeneration((g) => g + 1);
            }}
          />
        ) : route.page === 'overview' ? (
          <Overview />
        ) : route.page === 'plugins' ? (
          <Plugins />
        ) : route.page === 'submit' ? (
          <Submit />
        ) : route.page === 'job' ? (
          <JobPage key={route.id} id={route.id} />
        ) : (
          <Empty title="No such page">
            <a href="#/">Back to the overview</a>
          </Empty>
        )}
        </Boundary>
      </main>
      </RoleContext.Provider>
    </>
  );
}
