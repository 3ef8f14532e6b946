//! What flows between tasks, and the per-input bookkeeping of watermarks.

use tokio::sync::mpsc;

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
}
