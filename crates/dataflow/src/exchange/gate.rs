//! A task's input with barrier alignment.

use std::collections::VecDeque;

use super::InputQueue;
use crate::message::{Barrier, Envelope, Message};

/// What a task's input yields next.
#[derive(Debug)]
pub enum GateEvent {
    /// A message (never a barrier).
    Message(Envelope),
    /// Every open input channel has delivered this barrier: snapshot now.
    Aligned(Barrier),
}

/// A task's input with barrier alignment: after a channel delivers a barrier, its later
/// messages are held back until every channel that has not ended delivered it too.
#[derive(Debug)]
pub struct InputGate {
    queue: Box<dyn InputQueue>,
    blocked: Vec<bool>,
    ended: Vec<bool>,
    held: VecDeque<Envelope>,
    replay: VecDeque<Envelope>,
    pending: Option<Barrier>,
}

impl InputGate {
    /// A gate over `queue`, which carries `n` channels.
    pub fn new(queue: Box<dyn InputQueue>, n: usize) -> Self {
        InputGate { queue, blocked: vec![false; n], ended: vec![false; n], held: VecDeque::new(), replay: VecDeque::new(), pending: None }
    }

    fn aligned(&mut self) -> Option<Barrier> {
        let b = self.pending?;
        if (0..self.blocked.len()).all(|c| self.blocked[c] || self.ended[c]) {
            self.pending = None;
            self.blocked.iter_mut().for_each(|b| *b = false);
            // Held messages go first, in arrival order, ahead of any older replay.
            while let Some(e) = self.held.pop_back() {
                self.replay.push_front(e);
            }
            return Some(b);
        }
        None
    }

    /// The next event; `None` once every producer is gone. Cancel-safe (the only await
    /// is the queue's receive).
    pub async fn next(&mut self) -> Option<GateEvent> {
        loop {
            if let Some(b) = self.aligned() {
                return Some(GateEvent::Aligned(b));
            }
            let env = match self.replay.pop_front() {
                Some(e) => e,
                None => std::future::poll_fn(|cx| self.queue.poll_recv(cx)).await?,
            };
            let c = env.channel;
            if self.blocked.get(c).copied().unwrap_or(false) {
                self.held.push_back(env);
                continue;
            }
            match env.msg {
                Message::Barrier(b) => {
                    if let Some(x) = self.blocked.get_mut(c) {
                        *x = true;
                    }
                    if self.pending.is_none_or(|p| p.id < b.id) {
                        self.pending = Some(b);
                    }
                }
                Message::End => {
                    if let Some(x) = self.ended.get_mut(c) {
                        *x = true;
                    }
                    return Some(GateEvent::Message(env));
                }
                _ => return Some(GateEvent::Message(env)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::exchange::{Exchange, LocalExchange, SubtaskId};
    use crate::message::SnapshotKind;

    fn batch(v: u8) -> Message {
        let mut b = BatchBuilder::new();
        b.push(None, &[v], 0);
        Message::Batch(b.take())
    }

    #[tokio::test]
    async fn barriers_align_and_hold_back_early_channels() {
        let ex = LocalExchange::new(16);
        let to = SubtaskId { node: 0, subtask: 0 };
        let mut gate = InputGate::new(ex.input(to, 2), 2);
        let (c0, c1) = (ex.sender(to, 0).expect("c0"), ex.sender(to, 1).expect("c1"));
        let b = Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false, format: crate::SnapshotFormat::Canonical };
        c0.send(batch(1)).await.expect("send");
        c0.send(Message::Barrier(b)).await.expect("send");
        c0.send(batch(2)).await.expect("send"); // after the barrier: held back
        c1.send(batch(3)).await.expect("send");
        c1.send(Message::Barrier(b)).await.expect("send");
        let mut seen = Vec::new();
        for _ in 0..4 {
            match gate.next().await.expect("event") {
                GateEvent::Message(Envelope { msg: Message::Batch(v), .. }) => seen.push(v.as_slice()[8]),
                GateEvent::Aligned(a) => {
                    assert_eq!(a, b);
                    seen.push(0);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, vec![1, 3, 0, 2]);
        drop((c0, c1));
        ex.seal();
        assert!(gate.next().await.is_none(), "the input ends when its senders are gone");
    }
}
