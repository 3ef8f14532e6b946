//! A task's combined watermark over its input channels.

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
        if !active && !self.all_ended() {
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
