//! An operator's inputs as written: a list (one input, `main`), or named inputs in
//! order — each a list of upstream ids, or `{from, key_by, broadcast}` — and the
//! two-input settings that go with them (`interval_join`, `broadcast_order`).

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::KeyBy;

/// The name of the one input of an operator whose inputs are a plain list.
pub const MAIN_INPUT: &str = "main";

/// One named input of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedInput {
    /// Its name (the guest sees it in `context.input-names`).
    pub name: String,
    /// Upstream ids (`id`, or `uid.tag` for a side output), unioned.
    pub from: Vec<String>,
    /// Partition this input by a key of its own (else the operator's `key_by`).
    pub key_by: Option<KeyBy>,
    /// Every subtask gets every record, handed to `process-broadcast`.
    pub broadcast: bool,
}

/// An operator's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorInputs {
    /// `inputs: [a, b]`: one input called `main`, the union of the upstreams.
    List(Vec<String>),
    /// `inputs: {orders: [a], rules: {from: [b], broadcast: true}}`, in written order.
    Named(Vec<NamedInput>),
}

impl OperatorInputs {
    /// The inputs by index, a list being one input called [`MAIN_INPUT`].
    pub fn resolved(&self, key_by: Option<&KeyBy>) -> Vec<NamedInput> {
        match self {
            OperatorInputs::List(from) => {
                vec![NamedInput { name: MAIN_INPUT.to_owned(), from: from.clone(), key_by: key_by.cloned(), broadcast: false }]
            }
            OperatorInputs::Named(named) => named
                .iter()
                .map(|n| NamedInput { key_by: if n.broadcast { None } else { n.key_by.clone().or_else(|| key_by.cloned()) }, ..n.clone() })
                .collect(),
        }
    }

    /// The input names, by index.
    pub fn names(&self) -> Vec<String> {
        match self {
            OperatorInputs::List(_) => vec![MAIN_INPUT.to_owned()],
            OperatorInputs::Named(named) => named.iter().map(|n| n.name.clone()).collect(),
        }
    }

    /// Whether any input is a broadcast input.
    pub fn has_broadcast(&self) -> bool {
        matches!(self, OperatorInputs::Named(named) if named.iter().any(|n| n.broadcast))
    }

    /// How many inputs.
    pub fn len(&self) -> usize {
        match self {
            OperatorInputs::List(_) => 1,
            OperatorInputs::Named(named) => named.len(),
        }
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        match self {
            OperatorInputs::List(from) => from.is_empty(),
            OperatorInputs::Named(named) => named.is_empty(),
        }
    }
}

/// `{from, key_by, broadcast}` as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct InputDetail {
    from: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_by: Option<KeyBy>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    broadcast: bool,
}

/// One named input's value: a list of upstreams or the detailed form.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a list of upstream ids, or {from: [ids], key_by: ..., broadcast: true|false}")]
enum InputValue {
    From(Vec<String>),
    Detail(InputDetail),
}

impl<'de> Deserialize<'de> for OperatorInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OperatorInputs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of upstream ids, or a map of input names to upstream ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut from = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    from.push(id);
                }
                Ok(OperatorInputs::List(from))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut named: Vec<NamedInput> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, InputValue>()? {
                    if named.iter().any(|n| n.name == name) {
                        return Err(de::Error::custom(format!("input '{name}' is named twice")));
                    }
                    named.push(match value {
                        InputValue::From(from) => NamedInput { name, from, key_by: None, broadcast: false },
                        InputValue::Detail(d) => NamedInput { name, from: d.from, key_by: d.key_by, broadcast: d.broadcast },
                    });
                }
                Ok(OperatorInputs::Named(named))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for OperatorInputs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OperatorInputs::List(from) => from.serialize(s),
            OperatorInputs::Named(named) => {
                let mut m = s.serialize_map(Some(named.len()))?;
                for n in named {
                    m.serialize_entry(&n.name, &InputDetail { from: n.from.clone(), key_by: n.key_by.clone(), broadcast: n.broadcast })?;
                }
                m.end()
            }
        }
    }
}

/// `interval_join: {lower_ms, upper_ms}`: a left record (input 0) at `t` meets the
/// right records (input 1) of the same key in `[t + lower_ms, t + upper_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalJoinSpec {
    /// Lower bound, relative to the left record's time (may be negative).
    pub lower_ms: i64,
    /// Upper bound, relative to the left record's time (at least `lower_ms`).
    pub upper_ms: i64,
}

/// When keyed records see broadcast state changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastOrder {
    /// A keyed record sees the broadcast state as of its own event time (records are
    /// held until the watermark passes them): results do not depend on arrival order.
    #[default]
    EventTime,
    /// A keyed record sees the broadcast state as it is when the record arrives
    /// (Flink's behaviour).
    Arrival,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_named_inputs_keep_their_order() {
        let list: OperatorInputs = serde_yaml::from_str("[a, b]").expect("list");
        assert_eq!(list.names(), vec!["main"]);
        let named: OperatorInputs =
            serde_yaml::from_str("{zeta: [a], alpha: {from: [b], broadcast: true}, mid: {from: [c], key_by: {field: k}}}").expect("named");
        assert_eq!(named.names(), vec!["zeta", "alpha", "mid"]);
        assert!(named.has_broadcast());
        let resolved = named.resolved(Some(&KeyBy::RecordKey("record_key".into())));
        assert_eq!(resolved[0].key_by, Some(KeyBy::RecordKey("record_key".into())), "the operator's key_by by default");
        assert_eq!(resolved[1].key_by, None, "broadcast inputs are not keyed");
        assert_eq!(resolved[2].key_by, Some(KeyBy::Field { field: "k".into() }));
        let back: OperatorInputs = serde_json::from_str(&serde_json::to_string(&named).expect("json")).expect("round trip");
        assert_eq!(back, named);
        let e = serde_yaml::from_str::<OperatorInputs>("{a: [x], a: [y]}").expect_err("twice");
        assert!(e.to_string().contains("named twice") || e.to_string().contains("duplicate"), "{e}");
        assert!(serde_yaml::from_str::<OperatorInputs>("{a: {from: [x], brodcast: true}}").is_err(), "unknown field");
    }
}
