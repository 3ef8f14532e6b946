// The JavaScript CEP library's matching, run with node: the same cases as the Rust SDK's
// `cep::nfa` tests. `node --test sdk/js/test/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Nfa, Pattern, NO_SKIP, SKIP_PAST_LAST_EVENT, SKIP_TO_NEXT, skipToFirst } from "../cep-nfa.js";

function run(pattern, events) {
  const nfa = new Nfa(pattern);
  const partials = [];
  const text = (m) => m.events.map(([, , e]) => e).join("");
  const matches = [];
  const timedOut = [];
  [...events].forEach((c, i) => {
    const f = nfa.step(partials, c, i * 10, i + 1);
    matches.push(...f.matches.map(text));
    timedOut.push(...f.timedOut.map(text));
  });
  timedOut.push(...nfa.expire(partials, Number.MAX_SAFE_INTEGER).map(text));
  return [matches, timedOut];
}
const is = (c) => (e) => e === c;

test("strict, relaxed and non-deterministic contiguity", () => {
  assert.deepEqual(run(Pattern.begin("a").where(is("a")).next("b").where(is("b")), "abacb")[0], ["ab"]);
  assert.deepEqual(run(Pattern.begin("a").where(is("a")).followedBy("b").where(is("b")), "acbb")[0], ["ab"]);
  assert.deepEqual(run(Pattern.begin("a").where(is("a")).followedByAny("b").where(is("b")), "acbb")[0], ["ab", "ab"]);
});

test("three fails then a success within a time, restarting after each match", () => {
  const login = () => Pattern.begin("fails").where(is("f")).times(3).consecutive().next("success").where(is("s")).within(35).skip(SKIP_PAST_LAST_EVENT);
  assert.deepEqual(run(login(), "fffs")[0], ["fffs"]);
  assert.deepEqual(run(login(), "ffffs")[0], ["fffs"]);
  assert.deepEqual(run(login(), "ffxfs")[0], []);
  assert.deepEqual(run(login(), "fffsfffs")[0], ["fffs", "fffs"]);
  const [m, t] = run(login().within(30), "fffs");
  assert.deepEqual(m, []);
  assert.ok(t.includes("fff"));
});

test("skip strategies, negative and optional stages", () => {
  const loop = (skip) => Pattern.begin("a").where(is("a")).oneOrMore().next("b").where(is("b")).skip(skip);
  assert.deepEqual(run(loop(NO_SKIP), "aab")[0], ["aab", "ab"]);
  assert.deepEqual(run(loop(SKIP_PAST_LAST_EVENT), "aab")[0], ["aab"]);
  assert.deepEqual(run(loop(SKIP_TO_NEXT), "aab")[0], ["aab", "ab"]);
  assert.deepEqual(run(loop(skipToFirst("b")), "aab")[0], ["aab"]);
  const notNext = Pattern.begin("a").where(is("a")).notNext("x").where(is("x")).followedBy("b").where(is("b"));
  assert.deepEqual(run(notNext, "axb ayb")[0], ["ab"]);
  const optional = Pattern.begin("a").where(is("a")).next("c").where(is("c")).optional().next("b").where(is("b"));
  assert.deepEqual(run(optional, "ab acb")[0], ["ab", "acb"]);
});
