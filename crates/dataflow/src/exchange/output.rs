//! Output edges: a subtask's records partitioned over the downstream subtasks.

use super::{ChannelSender, ExchangeError};
use crate::batch::{Batch, BatchBuilder};
use crate::key_group::{KeyGroupRange, key_group};
use crate::message::Message;
use crate::partition::{KeySelector, Partitioning, field_key, preview};

/// One output edge of one subtask: the main output (`tag: None`) or a side output.
pub struct OutputEdge {
    /// Side-output tag this edge carries (`None`: main output).
    pub tag: Option<String>,
    partitioning: Partitioning,
    targets: Vec<Box<dyn ChannelSender>>,
    bufs: Vec<BatchBuilder>,
    max_parallelism: u16,
    next: usize,
    consumer: String,
}

impl std::fmt::Debug for OutputEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputEdge").field("tag", &self.tag).field("partitioning", &self.partitioning).field("consumer", &self.consumer).finish()
    }
}

impl OutputEdge {
    /// An edge to `targets` (the downstream subtasks in order; one for a forward edge)
    /// partitioned by `partitioning`; `consumer` names the downstream node in errors.
    pub fn new(
        tag: Option<String>,
        partitioning: Partitioning,
        targets: Vec<Box<dyn ChannelSender>>,
        max_parallelism: u16,
        consumer: String,
    ) -> Self {
        let bufs = targets.iter().map(|_| BatchBuilder::new()).collect();
        OutputEdge { tag, partitioning, targets, bufs, max_parallelism, next: 0, consumer }
    }

    /// Route a batch: shared whole with one target (forward, rebalance) or with every
    /// target (broadcast), or split by key group (hash).
    pub async fn send_batch(&mut self, batch: &Batch) -> Result<(), ExchangeError> {
        if batch.is_empty() || self.targets.is_empty() {
            return Ok(());
        }
        match &self.partitioning {
            Partitioning::Forward => self.targets[0].send(Message::Batch(batch.clone())).await?,
            Partitioning::Rebalance => {
                let t = self.next % self.targets.len();
                self.next = self.next.wrapping_add(1);
                self.targets[t].send(Message::Batch(batch.clone())).await?;
            }
            Partitioning::Broadcast => {
                for t in &self.targets {
                    t.send(Message::Batch(batch.clone())).await?;
                }
            }
            Partitioning::Hash(selector) => {
                let n = self.targets.len() as u32;
                for record in batch.records() {
                    let record = record.map_err(|e| ExchangeError::Key(e.to_string()))?;
                    let owned_key;
                    let key: &[u8] = match selector {
                        KeySelector::Field(field) => {
                            owned_key = field_key(record.value, field).map_err(|why| {
                                ExchangeError::Key(format!(
                                    "cannot key a record for '{}' by field '{field}': {why} (record: {})",
                                    self.consumer,
                                    preview(record.value)
                                ))
                            })?;
                            &owned_key
                        }
                        KeySelector::RecordKey => record.key.ok_or_else(|| {
                            ExchangeError::Key(format!(
                                "'{}' is keyed by record_key, but a record has no key (record: {})",
                                self.consumer,
                                preview(record.value)
                            ))
                        })?,
                    };
                    let group = key_group(key, self.max_parallelism);
                    let t = KeyGroupRange::subtask_for(group, n, self.max_parallelism) as usize;
                    self.bufs[t].push(Some(key), record.value, record.timestamp);
                }
                for t in 0..self.targets.len() {
                    if !self.bufs[t].is_empty() {
                        let b = self.bufs[t].take();
                        self.targets[t].send(Message::Batch(b)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Send a control message (watermark, idle, barrier, end) to every target.
    pub async fn broadcast(&mut self, msg: &Message) -> Result<(), ExchangeError> {
        for t in &self.targets {
            t.send(msg.clone()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Exchange, GateEvent, InputGate, LocalExchange, SubtaskId};

    fn records(n: usize) -> Batch {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(None, format!(r#"{{"k":"k{i}"}}"#).as_bytes(), i as i64);
        }
        b.take()
    }

    async fn drain(gate: &mut InputGate) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(GateEvent::Message(env)) = gate.next().await {
            if let Message::Batch(b) = env.msg {
                out.extend(b.records().map(|r| r.map(|r| (r.key.map(<[u8]>::to_vec), r.value.to_vec())).expect("record")));
            }
        }
        out
    }

    #[tokio::test]
    async fn hash_partitioning_keys_records_and_sends_each_key_to_its_owner() {
        let ex = LocalExchange::new(64);
        let mut gates: Vec<InputGate> = (0..3).map(|s| InputGate::new(ex.input(SubtaskId { node: 1, subtask: s }, 1), 1)).collect();
        let targets = (0..3).map(|s| ex.sender(SubtaskId { node: 1, subtask: s }, 0).expect("sender")).collect();
        let mut edge = OutputEdge::new(None, Partitioning::Hash(KeySelector::Field("k".into())), targets, 128, "down".into());
        edge.send_batch(&records(50)).await.expect("send");
        drop(edge);
        ex.seal();
        let mut total = 0;
        for (s, gate) in gates.iter_mut().enumerate() {
            for (key, _) in drain(gate).await {
                let key = key.expect("the field became the key");
                assert_eq!(KeyGroupRange::subtask_for(key_group(&key, 128), 3, 128), s as u32);
                total += 1;
            }
        }
        assert_eq!(total, 50);
    }

    #[tokio::test]
    async fn rebalance_round_robins_whole_batches_and_unkeyable_records_fail() {
        let ex = LocalExchange::new(64);
        let mut gates: Vec<InputGate> = (0..2).map(|s| InputGate::new(ex.input(SubtaskId { node: 1, subtask: s }, 1), 1)).collect();
        let targets = (0..2).map(|s| ex.sender(SubtaskId { node: 1, subtask: s }, 0).expect("sender")).collect();
        let mut edge = OutputEdge::new(None, Partitioning::Rebalance, targets, 128, "down".into());
        for _ in 0..4 {
            edge.send_batch(&records(3)).await.expect("send");
        }
        drop(edge);
        let targets = vec![ex.sender(SubtaskId { node: 1, subtask: 0 }, 0).expect("sender")];
        let mut keyed = OutputEdge::new(None, Partitioning::Hash(KeySelector::RecordKey), targets, 128, "down".into());
        let err = keyed.send_batch(&records(1)).await.expect_err("no key");
        assert!(err.to_string().contains("keyed by record_key"), "{err}");
        drop(keyed);
        ex.seal();
        assert_eq!(drain(&mut gates[0]).await.len(), 6);
        assert_eq!(drain(&mut gates[1]).await.len(), 6);
    }
}
