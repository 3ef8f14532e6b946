//! The windowed queries: q5 (hot items, sliding windows), q7 (highest bid, tumbling
//! windows) and q11 (bids per user session). Each keeps its windows' aggregates in keyed
//! state (cached in the guest) and closes them with event-time timers, so a bid costs a
//! state update, not a record stored until its window fires.

use rivulet_sdk::{Context, MapState, Record, Result, ValueState};
use serde::{Deserialize, Serialize};

use crate::events::Envelope;

/// q5's slide and window size; q7's window size; q11's session gap (ms).
const SLIDE: i64 = 2_000;
const SIZE: i64 = 10_000;
const GAP: i64 = 10_000;

/// The start of the `size` window holding `ts` (aligned to the epoch).
fn window_of(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// q5's rows: bids on an auction in a window (a pane's count on the way).
#[derive(Serialize, Deserialize)]
pub struct AuctionCount {
    auction: u64,
    num: u64,
    starttime: i64,
    endtime: i64,
}

/// q5, first stage (keyed by auction): bids per 2-second pane; when a pane closes, its
/// count goes to each of the five 10-second windows holding it.
pub struct Q5Count {
    panes: MapState<i64, u64>,
}

impl Q5Count {
    /// Its state.
    pub fn new() -> Q5Count {
        Q5Count { panes: MapState::new("panes") }
    }

    /// One bid.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let pane = window_of(record.timestamp, SLIDE);
        let n = match self.panes.get(&pane) {
            Some(n) => n + 1,
            None => {
                ctx.register_event_time_timer(pane + SLIDE - 1);
                1
            }
        };
        self.panes.put(&pane, &n);
        Ok(())
    }

    /// A pane closed.
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        let pane = timestamp + 1 - SLIDE;
        let Some(num) = self.panes.get(&pane) else { return Ok(()) };
        self.panes.remove(&pane);
        let auction = key_u64(ctx)?;
        let mut start = pane;
        while start > pane - SIZE {
            ctx.emit_json(&AuctionCount { auction, num, starttime: start, endtime: start + SIZE }, timestamp)?;
            start -= SLIDE;
        }
        Ok(())
    }
}

/// The current key as a number (the stages keyed by a numeric field).
fn key_u64(ctx: &Context) -> Result<u64> {
    let key = ctx.current_key().unwrap_or_default();
    std::str::from_utf8(&key).ok().and_then(|k| k.parse().ok()).ok_or_else(|| rivulet_sdk::Error::msg(format!("key {key:?} is not a number")))
}

/// q5, second stage (keyed by window start): the auctions' counts in the window (an
/// entry each); at its end, those with the largest (all of them at a tie).
pub struct Q5Hot {
    counts: MapState<u64, u64>,
    /// Whether the window's timer is set.
    armed: ValueState<bool>,
}

impl Q5Hot {
    /// Its state.
    pub fn new() -> Q5Hot {
        Q5Hot { counts: MapState::new("counts"), armed: ValueState::new("armed") }
    }

    /// One pane's count for this window.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let c: AuctionCount = record.json()?;
        if self.armed.get().is_none() {
            ctx.register_event_time_timer(c.endtime - 1);
            self.armed.set(&true);
        }
        let n = self.counts.get(&c.auction).unwrap_or(0) + c.num;
        self.counts.put(&c.auction, &n);
        Ok(())
    }

    /// The window closed.
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        let counts = self.counts.entries();
        self.counts.clear();
        self.armed.clear();
        let start = timestamp + 1 - SIZE;
        let max = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
        for &(auction, num) in counts.iter().filter(|&&(_, n)| n == max) {
            ctx.emit_json(&AuctionCount { auction, num, starttime: start, endtime: start + SIZE }, timestamp)?;
        }
        Ok(())
    }
}

/// q7's rows: a bid and the window it is highest in.
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct HighBid {
    auction: u64,
    price: u64,
    bidder: u64,
    date_time: String,
    extra: String,
    window_start: i64,
}

/// The highest bids seen of a window.
#[derive(Serialize, Deserialize, Default)]
pub struct Highest {
    price: u64,
    bids: Vec<HighBid>,
}

impl Highest {
    fn offer(&mut self, bid: HighBid) {
        if bid.price > self.price || self.bids.is_empty() {
            self.price = bid.price;
            self.bids.clear();
        }
        if bid.price == self.price {
            self.bids.push(bid);
        }
    }
}

/// q7, first stage (keyed by bidder): the bidder's highest bids per 10-second window;
/// the window's highest price is kept apart, so most bids compare one number.
pub struct Q7Max {
    max: MapState<i64, u64>,
    highest: MapState<i64, Highest>,
}

impl Q7Max {
    /// Its state.
    pub fn new() -> Q7Max {
        Q7Max { max: MapState::new("max"), highest: MapState::new("highest") }
    }

    /// One bid.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let e: Envelope<'_> = record.json()?;
        let Some(b) = e.bid else { return Ok(()) };
        let w = window_of(record.timestamp, SIZE);
        let max = self.max.get(&w);
        if max.is_none() {
            ctx.register_event_time_timer(w + SIZE - 1);
        }
        if max.is_some_and(|m| b.price < m) {
            return Ok(());
        }
        self.max.put(&w, &b.price.max(max.unwrap_or(0)));
        let mut h = self.highest.get(&w).unwrap_or_default();
        h.offer(HighBid { auction: b.auction, price: b.price, bidder: b.bidder, date_time: b.date_time.into_owned(), extra: b.extra.into_owned(), window_start: w });
        self.highest.put(&w, &h);
        Ok(())
    }

    /// A window closed: its highest bids go on.
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        let w = timestamp + 1 - SIZE;
        if let Some(h) = self.highest.get(&w) {
            for b in &h.bids {
                ctx.emit_json(b, timestamp)?;
            }
        }
        self.max.remove(&w);
        self.highest.remove(&w);
        Ok(())
    }
}

/// q7, second stage (keyed by window start): the window's highest bids of all bidders.
pub struct Q7Highest {
    highest: ValueState<Highest>,
}

impl Q7Highest {
    /// Its state.
    pub fn new() -> Q7Highest {
        Q7Highest { highest: ValueState::new("highest") }
    }

    /// One bidder's highest bid of the window.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let b: HighBid = record.json()?;
        let mut h = match self.highest.get() {
            Some(h) => h,
            None => {
                ctx.register_event_time_timer(b.window_start + SIZE - 1);
                Highest::default()
            }
        };
        h.offer(b);
        self.highest.set(&h);
        Ok(())
    }

    /// The window closed.
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        if let Some(h) = self.highest.get() {
            for b in &h.bids {
                ctx.emit_json(b, timestamp)?;
            }
        }
        self.highest.clear();
        Ok(())
    }
}

/// One open session of a bidder.
#[derive(Serialize, Deserialize, Clone, Copy)]
pub struct Session {
    start: i64,
    last: i64,
    count: u64,
    /// The event-time timer registered for it.
    timer: i64,
}

/// q11's output.
#[derive(Serialize)]
struct SessionRow {
    bidder: u64,
    bid_count: u64,
    starttime: i64,
    endtime: i64,
}

/// q11 (keyed by bidder): bids per session, a session being bids less than 10 s apart
/// (`[t, t + 10 s)` per bid, touching or overlapping ones merged, as Flink's sessions);
/// a session closes when the watermark passes its last bid + 10 s.
pub struct Q11 {
    sessions: ValueState<Vec<Session>>,
}

impl Q11 {
    /// Its state.
    pub fn new() -> Q11 {
        Q11 { sessions: ValueState::new("sessions") }
    }

    /// One bid: a new session, or merged into those it touches.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let t = record.timestamp;
        let mut open = self.sessions.get().unwrap_or_default();
        let mut merged = Session { start: t, last: t, count: 1, timer: i64::MAX };
        open.retain(|s| {
            let touches = s.start <= t + GAP && t <= s.last + GAP;
            if touches {
                merged = Session { start: merged.start.min(s.start), last: merged.last.max(s.last), count: merged.count + s.count, timer: merged.timer.min(s.timer) };
            }
            !touches
        });
        if merged.timer == i64::MAX {
            // A new session: a timer at its end (moved later when it fires, if it grew).
            merged.timer = merged.last + GAP - 1;
            ctx.register_event_time_timer(merged.timer);
        }
        open.push(merged);
        self.sessions.set(&open);
        Ok(())
    }

    /// A session's timer: emit it if it ended, else wait for its new end.
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        let Some(mut open) = self.sessions.get() else { return Ok(()) };
        let bidder = key_u64(ctx)?;
        let mut changed = false;
        let mut i = 0;
        while i < open.len() {
            let s = open[i];
            if s.timer != timestamp {
                i += 1;
                continue;
            }
            changed = true;
            let end = s.last + GAP;
            if end - 1 <= timestamp {
                ctx.emit_json(&SessionRow { bidder, bid_count: s.count, starttime: s.start, endtime: end }, end - 1)?;
                open.remove(i);
            } else {
                open[i].timer = end - 1;
                ctx.register_event_time_timer(end - 1);
                i += 1;
            }
        }
        if changed {
            if open.is_empty() { self.sessions.clear() } else { self.sessions.set(&open) }
        }
        Ok(())
    }
}
