"""The Python CEP library's matching, run natively (host modules stubbed): the same
cases as the Rust SDK's `cep::nfa` tests. `python3 sdk/python/tests/test_cep.py`."""

import sys
import types

for name in ["componentize_py_types", "wit_world", "wit_world.imports"]:
    sys.modules[name] = types.ModuleType(name)
sys.modules["componentize_py_types"].Err = Exception
for name in ["broadcast_state", "collector", "context", "keyed_state", "timers", "types"]:
    mod = types.ModuleType(name)
    setattr(sys.modules["wit_world.imports"], name, mod)
    sys.modules["wit_world.imports." + name] = mod
sys.modules["wit_world.imports.types"].TimeDomain = type("TimeDomain", (), {"EVENT_TIME": 0, "PROCESSING_TIME": 1})
sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])

from rivulet_sdk.cep import NO_SKIP, SKIP_PAST_LAST_EVENT, SKIP_TO_NEXT, Pattern, _Nfa, skip_to_first  # noqa: E402


def run(pattern, events):
    nfa, partials, matches, timed_out = _Nfa(pattern), [], [], []
    text = lambda m: "".join(e for (_, _, e) in m.events)  # noqa: E731
    for i, c in enumerate(events):
        m, t = nfa.step(partials, c, i * 10, i + 1)
        matches += [text(x) for x in m]
        timed_out += [text(x) for x in t]
    timed_out += [text(x) for x in nfa.expire(partials, 10**18)]
    return matches, timed_out


def is_(c):
    return lambda e: e == c


def main():
    assert run(Pattern.begin("a").where(is_("a")).next("b").where(is_("b")), "abacb")[0] == ["ab"]
    assert run(Pattern.begin("a").where(is_("a")).followed_by("b").where(is_("b")), "acbb")[0] == ["ab"]
    assert run(Pattern.begin("a").where(is_("a")).followed_by_any("b").where(is_("b")), "acbb")[0] == ["ab", "ab"]

    def login():
        return (Pattern.begin("fails").where(is_("f")).times(3).consecutive()
                .next("success").where(is_("s")).within(35).skip(SKIP_PAST_LAST_EVENT))

    assert run(login(), "fffs")[0] == ["fffs"]
    assert run(login(), "ffffs")[0] == ["fffs"]
    assert run(login(), "ffxfs")[0] == []
    assert run(login(), "fffsfffs")[0] == ["fffs", "fffs"]
    matches, timed_out = run(login().within(30), "fffs")
    assert matches == [] and "fff" in timed_out, (matches, timed_out)

    def loop(skip):
        return Pattern.begin("a").where(is_("a")).one_or_more().next("b").where(is_("b")).skip(skip)

    assert run(loop(NO_SKIP), "aab")[0] == ["aab", "ab"]
    assert run(loop(SKIP_PAST_LAST_EVENT), "aab")[0] == ["aab"]
    assert run(loop(SKIP_TO_NEXT), "aab")[0] == ["aab", "ab"]
    assert run(loop(skip_to_first("b")), "aab")[0] == ["aab"]
    not_next = Pattern.begin("a").where(is_("a")).not_next("x").where(is_("x")).followed_by("b").where(is_("b"))
    assert run(not_next, "axb ayb")[0] == ["ab"]
    optional = Pattern.begin("a").where(is_("a")).next("c").where(is_("c")).optional().next("b").where(is_("b"))
    assert run(optional, "ab acb")[0] == ["ab", "acb"]
    # Matches name their stages.
    nfa, partials = _Nfa(Pattern.begin("a").where(is_("a")).next("b").where(is_("b"))), []
    nfa.step(partials, "a", 0, 1)
    (m,), _ = nfa.step(partials, "b", 10, 2)
    assert (m.get("a"), m.get("b"), m.timestamps("b")) == (["a"], ["b"], [10])
    print("python cep: ok")


if __name__ == "__main__":
    main()
