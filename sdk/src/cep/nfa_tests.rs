use super::*;
use crate::cep::{AfterMatchSkip, Pattern};

/// Run `pattern` over events given as characters at times 0, 10, 20, …; each match as
/// the string of its events (stage letters), timed-out ones separately.
fn run(pattern: Pattern<char>, events: &str) -> (Vec<String>, Vec<String>) {
    let c = pattern.compile().expect("valid pattern");
    let mut partials = Vec::new();
    let (mut matches, mut timed_out) = (Vec::new(), Vec::new());
    let text = |m: &Match<char>| m.events().map(|(_, _, e)| *e).collect::<String>();
    for (i, e) in events.chars().enumerate() {
        let found = c.step(&mut partials, &e, i as i64 * 10, i as u64 + 1);
        matches.extend(found.matches.iter().map(text));
        timed_out.extend(found.timed_out.iter().map(text));
    }
    timed_out.extend(c.expire(&mut partials, i64::MAX).iter().map(text));
    (matches, timed_out)
}

fn is(c: char) -> impl Fn(&char) -> bool {
    move |e| *e == c
}

#[test]
fn strict_and_relaxed_contiguity() {
    let next = Pattern::begin("a").where_(is('a')).next("b").where_(is('b'));
    assert_eq!(run(next, "abacb").0, vec!["ab"], "a c b is not a directly followed by b");
    let followed = Pattern::begin("a").where_(is('a')).followed_by("b").where_(is('b'));
    assert_eq!(run(followed, "acbb").0, vec!["ab"], "skip till next: the first b only");
    let any = Pattern::begin("a").where_(is('a')).followed_by_any("b").where_(is('b'));
    assert_eq!(run(any, "acbb").0, vec!["ab", "ab"], "skip till any: every later b");
}

#[test]
fn three_fails_then_a_success_within_a_time_restarting_after_each_match() {
    let p = || {
        Pattern::begin("fails")
            .where_(is('f'))
            .times(3)
            .consecutive()
            .next("success")
            .where_(is('s'))
            .within(35)
            .skip(AfterMatchSkip::SkipPastLastEvent)
    };
    // f f f s: match. f f f f s: the last three. f f s: too few. f f x f s: broken.
    assert_eq!(run(p(), "fffs").0, vec!["fffs"]);
    assert_eq!(run(p(), "ffffs").0, vec!["fffs"]);
    assert!(run(p(), "ffs").0.is_empty());
    assert!(run(p(), "ffxfs").0.is_empty());
    // Within 35 ms: f at 0..20 and s at 30 → 30 < 35; with one more f the first start
    // (0) times out at 40 but the partial starting at 10 completes at 40.
    assert_eq!(run(p(), "fffs").1, Vec::<String>::new());
    let (m, timed_out) = run(p().within(30), "fffs");
    assert!(m.is_empty(), "30 - 0 is not within 30");
    assert!(timed_out.contains(&"fff".to_owned()), "{timed_out:?}");
    // After a match, matching restarts after the success.
    assert_eq!(run(p(), "fffsfffs").0, vec!["fffs", "fffs"]);
}

#[test]
fn loops_until_optional_and_negative_stages() {
    let until =
        Pattern::begin("a").where_(is('a')).one_or_more().until(is('x')).followed_by("b").where_(is('b')).skip(AfterMatchSkip::SkipPastLastEvent);
    assert_eq!(run(until, "aaxab").0, vec!["aab"], "the loop stops at x; the a after x starts anew but is skipped past");
    let optional = Pattern::begin("a").where_(is('a')).next("c").where_(is('c')).optional().next("b").where_(is('b'));
    assert_eq!(run(optional, "ab acb").0, vec!["ab", "acb"]);
    let not_next = Pattern::begin("a").where_(is('a')).not_next("x").where_(is('x')).followed_by("b").where_(is('b'));
    assert_eq!(run(not_next, "axb ayb").0, vec!["ab"], "only the a not directly followed by x");
    let not_followed = Pattern::begin("a").where_(is('a')).not_followed_by("x").where_(is('x')).followed_by("b").where_(is('b'));
    assert_eq!(run(not_followed, "ayxb azzb").0, vec!["ab"]);
    let or = Pattern::begin("a").where_(is('a')).or(is('z')).next("b").where_(is('b'));
    assert_eq!(run(or, "ab zb").0, vec!["ab", "zb"]);
}

#[test]
fn skip_strategies() {
    let p = |skip| Pattern::begin("a").where_(is('a')).one_or_more().next("b").where_(is('b')).skip(skip);
    assert_eq!(run(p(AfterMatchSkip::NoSkip), "aab").0, vec!["aab", "ab"]);
    assert_eq!(run(p(AfterMatchSkip::SkipPastLastEvent), "aab").0, vec!["aab"]);
    assert_eq!(run(p(AfterMatchSkip::SkipToNext), "aab").0, vec!["aab", "ab"]);
    assert_eq!(run(p(AfterMatchSkip::SkipToLast("a".into())), "aab").0, vec!["aab", "ab"]);
    assert_eq!(run(p(AfterMatchSkip::SkipToFirst("b".into())), "aab").0, vec!["aab"]);
}

#[test]
fn invalid_patterns_are_refused() {
    let e = Pattern::<char>::begin("a").not_next("x").compile().err().expect("negative last");
    assert!(e.0.contains("negative"), "{e}");
    assert!(Pattern::<char>::begin("a").next("a").compile().is_err(), "a name twice");
    assert!(Pattern::<char>::begin("a").optional().compile().is_err(), "all optional");
    assert!(Pattern::<char>::begin("a").skip(AfterMatchSkip::SkipToFirst("zz".into())).compile().is_err());
}
