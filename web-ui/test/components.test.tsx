import { render } from 'preact-render-to-string';
import type { NodeRole } from '../src/api/client';
import { describe, expect, it } from 'vitest';
import { niceMax } from '../src/components/Chart';
import { JobGraph } from '../src/components/Graph';
import { ErrorBox } from '../src/components/States';
import { nameFromFile } from '../src/pages/Plugins';
import { parseParams, pluginRefs } from '../src/pages/Submit';
import { candidates } from '../src/pages/Upgrade';

const node = (id: string, kind: NodeRole, backpressure = 0) => ({
  id,
  kind,
  parallelism: 2,
  plugin: kind === 'operator' ? 'counter@1.0.0' : null,
  records_in: 10,
  records_out: 10,
  late_records: 0,
  dead_letter_records: 0,
  watermark: null,
  backpressure,
  guest_ms: 0,
  memory_bytes: 0,
  workers: [] as number[],
});

describe('JobGraph', () => {
  it('names the worker of each subtask when the job runs on workers', () => {
    const spread = { ...node('counter', 'operator'), workers: [1, 3] };
    const html = render(<JobGraph nodes={[node('events', 'source'), spread]} edges={[]} rates={null} nowMs={0} />);
    expect(html).toContain('0→#1, 1→#3');
    expect(html).toContain('on #1 #3');
    expect(html).toContain('>server<');
  });

  it('draws every node and edge with parallelism, plugin and backpressure', () => {
    const html = render(
      <JobGraph
        nodes={[node('events', 'source'), node('counter', 'operator', 0.8), node('out', 'sink')]}
        edges={[
          { from: 'events', to: 'counter', partitioning: 'hash', tag: null },
          { from: 'counter', to: 'out', partitioning: 'forward', tag: null },
        ]}
        rates={{ 'counter:in': 1500, 'counter:out': 1400 }}
        nowMs={0}
      />,
    );
    expect(html).toContain('data-node="events"');
    expect(html).toContain('data-node="counter"');
    expect(html).toContain('counter@1.0.0');
    expect(html).toContain('×2');
    expect(html).toContain('in 1.5k/s · out 1.4k/s');
    expect(html).toContain('pressure-high');
    expect((html.match(/class="edge /g) ?? []).length).toBe(2);
    expect(html).toContain('>hash<');
  });
});

describe('states', () => {
  it("shows the server's message", () => {
    expect(render(<ErrorBox error="bad magic" />)).toContain('bad magic');
  });
});

describe('page logic', () => {
  it('parses parameters and reports bad lines', () => {
    expect(parseParams('a=1\n# c\n\nb = x=y')).toEqual({ params: { a: '1', b: 'x=y' }, errors: [] });
    expect(parseParams('oops').errors[0]).toMatch(/line 1/);
  });
  it('finds plugin references in YAML and JSON specs', () => {
    expect(pluginRefs('operators:\n  - uid: c\n    plugin: counter@1.0.0\n')).toEqual(['counter@1.0.0']);
    expect(pluginRefs('{"plugin": "sha256:abc", "x": 1}')).toEqual(['sha256:abc']);
  });
  it('names a plugin after its file', () => {
    expect(nameFromFile('counter_v2.wasm')).toBe('counter-v2');
    expect(nameFromFile('my op!.wasm')).toBe('my-op');
  });
  it('offers versions of the running plugin first, newest first', () => {
    const p = (name: string, version: string, uploaded_ms: number) => ({ name, version, uploaded_ms, digest: '', size: 0, exports: [], imports: [], wit_version: '' });
    const got = candidates([p('other', '1', 5), p('counter', '1', 1), p('counter', '2', 3)], 'counter@1');
    expect(got.map((x) => `${x.name}@${x.version}`)).toEqual(['counter@2', 'counter@1', 'other@1']);
  });
  it('rounds chart axes up to 1-2-5 steps', () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(7)).toBe(10);
    expect(niceMax(1500)).toBe(2000);
    expect(niceMax(420)).toBe(500);
  });
});
