//! Output edges: partitioning records over the downstream subtasks.

use rivulet_sdk::{RecordIter, encode_record};

use super::channel::{DownstreamGone, Message, Target};
use crate::job::{KeyBy, Partition};
use crate::state::{KeyGroupRange, key_group};

/// Why records could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The downstream task stopped.
    #[error("downstream task stopped")]
    Gone,
    /// A record could not be keyed.
    #[error("{0}")]
    Key(String),
}

impl From<DownstreamGone> for ExchangeError {
    fn from(_: DownstreamGone) -> Self {
        ExchangeError::Gone
    }
}

/// One output edge of one subtask.
pub struct OutputEdge {
    /// Side-output tag this edge carries (`None`: main output).
    pub tag: Option<String>,
    partition: Partition,
    targets: Vec<Target>,
    bufs: Vec<Vec<u8>>,
    max_parallelism: u16,
    next: usize,
    consumer: String,
}

impl OutputEdge {
    /// An edge to `targets` (downstream subtasks in order) partitioned by `partition`.
    pub fn new(tag: Option<String>, partition: Partition, targets: Vec<Target>, max_parallelism: u16, consumer: String) -> Self {
        let bufs = vec![Vec::new(); targets.len()];
        OutputEdge { tag, partition, targets, bufs, max_parallelism, next: 0, consumer }
    }

    /// Route an encoded batch.
    pub async fn send_batch(&mut self, batch: &[u8]) -> Result<(), ExchangeError> {
        if batch.is_empty() {
            return Ok(());
        }
        match &self.partition {
            Partition::Forward | Partition::Rebalance if self.targets.len() == 1 => {
                self.targets[0].send(Message::Batch(batch.to_vec())).await?;
            }
            Partition::Forward => {
                // Forward edges connect subtask i to subtask i: one target.
                self.targets[0].send(Message::Batch(batch.to_vec())).await?;
            }
            Partition::Rebalance => {
                let t = self.next % self.targets.len();
                self.next = self.next.wrapping_add(1);
                self.targets[t].send(Message::Batch(batch.to_vec())).await?;
            }
            Partition::Hash(key_by) => {
                let n = self.targets.len() as u32;
                for record in RecordIter::new(batch) {
                    let record = record.map_err(|e| ExchangeError::Key(e.to_string()))?;
                    let owned_key;
                    let key: &[u8] = match key_by {
                        KeyBy::Field { field } => {
                            owned_key = field_key(record.value, field).map_err(|why| {
                                ExchangeError::Key(format!(
                                    "cannot key a record for '{}' by field '{field}': {why} (record: {})",
                                    self.consumer,
                                    preview(record.value)
                                ))
                            })?;
                            &owned_key
                        }
                        KeyBy::RecordKey(_) => record.key.ok_or_else(|| {
                            ExchangeError::Key(format!(
                                "'{}' is keyed by record_key, but a record has no key (record: {})",
                                self.consumer,
                                preview(record.value)
                            ))
                        })?,
                    };
                    let group = key_group(key, self.max_parallelism);
                    let t = KeyGroupRange::subtask_for(group, n, self.max_parallelism) as usize;
                    encode_record(&mut self.bufs[t], Some(key), record.value, record.timestamp);
                }
                for (t, buf) in self.bufs.iter_mut().enumerate() {
                    if !buf.is_empty() {
                        let b = std::mem::take(buf);
                        self.targets[t].send(Message::Batch(b)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Send a control message to every target.
    pub async fn broadcast(&mut self, msg: &Message) -> Result<(), ExchangeError> {
        for t in &self.targets {
            t.send(msg.clone()).await?;
        }
        Ok(())
    }
}

fn preview(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(&value[..value.len().min(80)]).into_owned();
    if value.len() > 80 { format!("{s}…") } else { s }
}

/// The key bytes of JSON field `field` of `value`: a string's text, or another scalar's JSON.
fn field_key(value: &[u8], field: &str) -> Result<Vec<u8>, String> {
    let doc: serde_json::Value = serde_json::from_slice(value).map_err(|e| format!("not JSON ({e})"))?;
    match doc.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(serde_json::Value::Null) | None => Err("the field is missing".to_owned()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string().into_bytes()),
        Some(_) => Err("the field is not a scalar".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys() {
        assert_eq!(field_key(br#"{"a":"x","b":3}"#, "a").expect("a"), b"x");
        assert_eq!(field_key(br#"{"a":"x","b":3}"#, "b").expect("b"), b"3");
        assert!(field_key(br#"{"a":"x"}"#, "c").is_err());
        assert!(field_key(b"not json", "a").is_err());
    }
}
