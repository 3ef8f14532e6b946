// Where the nodes of a job graph go: columns by the longest path from a source (so
// every edge points rightwards), rows in each column in the order the server lists the
// nodes.

export interface LayoutNode {
  id: string;
}
export interface LayoutEdge {
  from: string;
  to: string;
}
export interface Placed {
  x: number;
  y: number;
  column: number;
  row: number;
}
export interface Layout {
  nodes: Map<string, Placed>;
  width: number;
  height: number;
}

/** Box size and gaps, in SVG units. */
export const NODE_W = 190;
export const NODE_H = 78;
const GAP_X = 70;
const GAP_Y = 26;
const MARGIN = 12;

/** Lay out a DAG. Edges naming unknown nodes are ignored; a cycle cannot hang it. */
export function layoutGraph(nodes: LayoutNode[], edges: LayoutEdge[]): Layout {
  const known = new Set(nodes.map((n) => n.id));
  const column = new Map<string, number>(nodes.map((n) => [n.id, 0]));
  const valid = edges.filter((e) => known.has(e.from) && known.has(e.to) && e.from !== e.to);
  // Longest-path layering by relaxation; at most |nodes| rounds, so cycles end too.
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of valid) {
      const want = (column.get(e.from) ?? 0) + 1;
      if (want > (column.get(e.to) ?? 0) && want < nodes.length) {
        column.set(e.to, want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const rows = new Map<number, number>();
  const placed = new Map<string, Placed>();
  let maxRow = 0;
  let maxCol = 0;
  for (const n of nodes) {
    const c = column.get(n.id) ?? 0;
    const r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    maxRow = Math.max(maxRow, r);
    maxCol = Math.max(maxCol, c);
    placed.set(n.id, { column: c, row: r, x: MARGIN + c * (NODE_W + GAP_X), y: MARGIN + r * (NODE_H + GAP_Y) });
  }
  // Centre shorter columns vertically.
  const tallest = maxRow + 1;
  for (const p of placed.values()) {
    const count = rows.get(p.column) ?? 1;
    p.y += ((tallest - count) * (NODE_H + GAP_Y)) / 2;
  }
  return {
    nodes: placed,
    width: nodes.length ? 2 * MARGIN + (maxCol + 1) * NODE_W + maxCol * GAP_X : 0,
    height: nodes.length ? 2 * MARGIN + tallest * NODE_H + maxRow * GAP_Y : 0,
  };
}

/** An edge's path from the right side of one box to the left side of another. */
export function edgePath(a: Placed, b: Placed): string {
  const x1 = a.x + NODE_W;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_H / 2;
  const mid = (x1 + x2) / 2;
  return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}`;
}
