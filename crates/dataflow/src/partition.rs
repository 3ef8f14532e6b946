//! How records move along an edge: forward, rebalanced, or hashed by key into key groups.

/// Which key a hash-partitioned edge routes by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeySelector {
    /// The key the upstream operator gave each record.
    RecordKey,
    /// The JSON field of the record's value (a string's text, another scalar's JSON);
    /// it becomes the record's key downstream.
    Field(String),
}

/// An edge's partitioning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Partitioning {
    /// Subtask i → subtask i (same parallelism).
    Forward,
    /// By key group of the record's key.
    Hash(KeySelector),
    /// Round-robin over the downstream subtasks.
    Rebalance,
    /// Every record to every downstream subtask (broadcast inputs).
    Broadcast,
}

/// The partitioning of an edge without its key, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Subtask i → subtask i.
    Forward,
    /// By key.
    Hash,
    /// Round-robin.
    Rebalance,
    /// Every record to every subtask.
    Broadcast,
}

impl Partitioning {
    /// The kind, without the key.
    pub fn kind(&self) -> PartitionKind {
        match self {
            Partitioning::Forward => PartitionKind::Forward,
            Partitioning::Hash(_) => PartitionKind::Hash,
            Partitioning::Rebalance => PartitionKind::Rebalance,
            Partitioning::Broadcast => PartitionKind::Broadcast,
        }
    }
}

/// Why a record has no key to route by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The value is not JSON.
    #[error("not JSON ({0})")]
    NotJson(String),
    /// The field is absent or null.
    #[error("the field is missing")]
    Missing,
    /// The field holds an object or array.
    #[error("the field is not a scalar")]
    NotScalar,
}

pub use crate::json_field::{field_key, json_path};

/// The first 80 bytes of a value, for error messages.
pub fn preview(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(&value[..value.len().min(80)]).into_owned();
    if value.len() > 80 { format!("{s}…") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys() {
        assert_eq!(field_key(br#"{"a":"x","b":3}"#, "a").expect("a"), b"x");
        assert_eq!(field_key(br#"{"a":"x","b":3}"#, "b").expect("b"), b"3");
        assert_eq!(field_key(br#"{"bid":{"auction":1007}}"#, "bid.auction").expect("path"), b"1007");
        assert_eq!(field_key(br#"{"a.b":1,"a":{"b":2}}"#, "a.b").expect("exact"), b"1", "a member named with a dot wins");
        assert!(matches!(field_key(br#"{"bid":{}}"#, "bid.auction"), Err(KeyError::Missing)));
        assert_eq!(field_key(br#"{"a":"x"}"#, "c"), Err(KeyError::Missing));
        assert!(matches!(field_key(b"not json", "a"), Err(KeyError::NotJson(_))));
    }
}
