// Polling and hash routing, as Preact hooks.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/** What a poll has: the latest data (kept across a failed poll) and the latest error. */
export interface Polled<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  refresh: () => void;
}

/** Call `load` now and every `intervalMs` while mounted; new `deps` start afresh. */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    setData(null);
    setError(null);
    setLoading(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (!live) return;
        setData(value);
        setError(null);
      } catch (e) {
        if (!live) return;
        setError(e instanceof Error ? e : new Error(String(e)));
      } finally {
        if (live) {
          setLoading(false);
          timer = setTimeout(run, intervalMs);
        }
      }
    };
    void run();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [intervalMs, tick, ...deps]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, refresh };
}

/** A route of the app, from the location hash. */
export type Route =
  | { page: 'overview' }
  | { page: 'plugins' }
  | { page: 'submit' }
  | { page: 'job'; id: string }
  | { page: 'missing'; hash: string };

/** Parse `#/jobs/ab12`, `#/plugins`, … */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/' || path === '') return { page: 'overview' };
  if (path === '/plugins') return { page: 'plugins' };
  if (path === '/submit') return { page: 'submit' };
  const m = /^\/jobs\/([^/]+)$/.exec(path);
  if (m) {
    try {
      return { page: 'job', id: decodeURIComponent(m[1]) };
    } catch {
      return { page: 'missing', hash };
    }
  }
  return { page: 'missing', hash };
}

/** The link of a route. */
export function href(route: Route): string {
  switch (route.page) {
    case 'overview':
      return '#/';
    case 'plugins':
      return '#/plugins';
    case 'submit':
      return '#/submit';
    case 'job':
      return `#/jobs/${encodeURIComponent(route.id)}`;
    case 'missing':
      return route.hash;
  }
}

/** The current route, following hash changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
