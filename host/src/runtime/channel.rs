//! What flows between tasks, and the per-input bookkeeping of watermarks.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::checkpoint::Barrier;

/// One message on a channel. Records, watermarks and end-of-input travel in one
/// ordered stream per channel, so a watermark never overtakes the records before it.
#[derive(Debug, Clone)]
pub enum Message {
    /// Encoded records (see `rivulet_sdk::codec`).
    Batch(Vec<u8>),
    /// No record with a smaller timestamp will follow on this channel.
    Watermark(i64),
    /// The channel's producer is idle: don't wait for its watermark.
    Idle,
    /// The channel's producer has finished.
    End,
    /// Checkpoint or savepoint barrier: everything before it belongs to the snapshot.
    Barrier(Barrier),
}

/// A message tagged with the input channel it arrived on.
#[derive(Debug)]
pub struct Envelope {
    /// Index of the input channel at the receiving task.
    pub channel: usize,
    /// The message.
    pub msg: Message,
}

/// Sending half of a task's input, with the channel index it is known by there.
#[derive(Clone, Debug)]
pub struct Target {
    /// The receiving task's queue.
    pub tx: mpsc::Sender<Envelope>,
    /// Channel index at the receiver.
    pub channel: usize,
}

impl Target {
    /// Send, waiting while the receiver is full (backpressure).
    pub async fn send(&self, msg: Message) -> Result<(), DownstreamGone> {
        self.tx.send(Envelope { channel: self.channel, msg }).await.map_err(|_| DownstreamGone)
    }
}

/// The receiving task has stopped (it failed or the job is being torn down).
#[derive(Debug, Clone, Copy)]
pub struct DownstreamGone;

/// What a change on one input means for the task's combined watermark.
#[derive(Debug, PartialEq, Eq)]
pub enum WatermarkChange {
    /// Nothing changed.
    None,
    /// The combined watermark advanced to this value.
    Advanced(i64),
    /// Every input that has not ended is idle.
    Idle,
}

/// Tracks each input channel's watermark; the task's watermark is their minimum over
/// channels that are neither idle nor ended (`i64::MAX` once all have ended).
#[derive(Debug)]
pub struct InputWatermarks {
    wms: Vec<i64>,
    idle: Vec<bool>,
    ended: Vec<bool>,
    current: i64,
}

impl InputWatermarks {
    /// `n` channels, none seen yet.
    pub fn new(n: usize) -> Self {
        InputWatermarks { wms: vec![i64::MIN; n], idle: vec![false; n], ended: vec![false; n], current: i64::MIN }
    }

    /// Start from a restored watermark: it only advances past it.
    pub fn restore(&mut self, watermark: i64) {
        self.current = self.current.max(watermark);
    }

    /// The combined watermark.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Whether every channel has ended.
    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }

    /// Record a watermark on `channel`.
    pub fn watermark(&mut self, channel: usize, wm: i64) -> WatermarkChange {
        if let Some(w) = self.wms.get_mut(channel) {
            *w = (*w).max(wm);
            self.idle[channel] = false;
        }
        self.recompute()
    }

    /// Mark `channel` idle.
    pub fn idle(&mut self, channel: usize) -> WatermarkChange {
        if let Some(i) = self.idle.get_mut(channel) {
            *i = true;
        }
        self.recompute()
    }

    /// Mark `channel` ended.
    pub fn end(&mut self, channel: usize) -> WatermarkChange {
        if let Some(e) = self.ended.get_mut(channel) {
            *e = true;
        }
        self.recompute()
    }

    fn recompute(&mut self) -> WatermarkChange {
        let mut active = false;
        let mut min = i64::MAX;
        for i in 0..self.wms.len() {
            if !self.ended[i] && !self.idle[i] {
                active = true;
                min = min.min(self.wms[i]);
            }
        }
        let all_ended = self.all_ended();
        if !active && !all_ended {
            return WatermarkChange::Idle;
        }
        if min > self.current {
            self.current = min;
            WatermarkChange::Advanced(min)
        } else {
            WatermarkChange::None
        }
    }
}

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
    rx: mpsc::Receiver<Envelope>,
    blocked: Vec<bool>,
    ended: Vec<bool>,
    held: VecDeque<Envelope>,
    replay: VecDeque<Envelope>,
    pending: Option<Barrier>,
}

impl InputGate {
    /// A gate over `rx`, which carries `n` channels.
    pub fn new(rx: mpsc::Receiver<Envelope>, n: usize) -> Self {
        InputGate { rx, blocked: vec![false; n], ended: vec![false; n], held: VecDeque::new(), replay: VecDeque::new(), pending: None }
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
    /// is the channel receive).
    pub async fn next(&mut self) -> Option<GateEvent> {
        loop {
            if let Some(b) = self.aligned() {
                return Some(GateEvent::Aligned(b));
            }
            let env = match self.replay.pop_front() {
                Some(e) => e,
                None => self.rx.recv().await?,
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

    #[test]
    fn minimum_over_active_channels() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.watermark(0, 10), WatermarkChange::None);
        assert_eq!(w.watermark(1, 5), WatermarkChange::Advanced(5));
        assert_eq!(w.idle(1), WatermarkChange::Advanced(10));
        assert_eq!(w.watermark(1, 7), WatermarkChange::None);
        assert_eq!(w.end(1), WatermarkChange::None);
        assert_eq!(w.idle(0), WatermarkChange::Idle);
        assert_eq!(w.end(0), WatermarkChange::Advanced(i64::MAX));
    }

    #[tokio::test]
    async fn barriers_align_and_hold_back_early_channels() {
        use crate::checkpoint::SnapshotKind;
        let (tx, rx) = mpsc::channel(16);
        let mut gate = InputGate::new(rx, 2);
        let b = Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false };
        let send = |c, msg| tx.try_send(Envelope { channel: c, msg }).expect("room");
        send(0, Message::Batch(vec![1]));
        send(0, Message::Barrier(b));
        send(0, Message::Batch(vec![2])); // after the barrier: held back
        send(1, Message::Batch(vec![3]));
        send(1, Message::Barrier(b));
        let mut seen = Vec::new();
        for _ in 0..4 {
            match gate.next().await.expect("event") {
                GateEvent::Message(Envelope { msg: Message::Batch(v), .. }) => seen.push(v[0]),
                GateEvent::Aligned(a) => {
                    assert_eq!(a, b);
                    seen.push(0);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, vec![1, 3, 0, 2]);
    }
}
