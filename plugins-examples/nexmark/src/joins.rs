//! The queries that join auctions with people or bids: q3 (local item suggestion), the
//! winning bid of each auction (q9, and the first stage of q4), q4's average per
//! category, and q8 (new users who sell at once, a window co-group).

use rivulet_sdk::{CoGroup, Context, ListState, Record, Result, ValueState, Window};
use serde::{Deserialize, Serialize};

use crate::events::{Auction, Bid, Envelope, Person, parse_date_time};

/// A person as q3 remembers them.
#[derive(Serialize, Deserialize)]
pub struct Seller {
    name: String,
    city: String,
    state: String,
}

/// q3's output.
#[derive(Serialize)]
struct LocalItem<'a> {
    name: &'a str,
    city: &'a str,
    state: &'a str,
    id: u64,
}

/// q3's keyed state, per seller (person id).
pub struct Q3 {
    /// The seller, once registered.
    seller: ValueState<Seller>,
    /// Category-10 auctions seen before their seller registered.
    waiting: ListState<(u64, i64)>,
}

impl Q3 {
    /// Its states.
    pub fn new() -> Q3 {
        Q3 { seller: ValueState::new("seller"), waiting: ListState::new("waiting") }
    }

    /// An auction (keyed by seller) or a person (keyed by id).
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let e: Envelope<'_> = record.json()?;
        if let Some(a) = e.auction {
            if a.category != 10 {
                return Ok(());
            }
            match self.seller.get() {
                Some(s) => emit_local(ctx, &s, a.id, record.timestamp)?,
                None => self.waiting.add(&(a.id, record.timestamp)),
            }
        } else if let Some(p) = e.person {
            let s = Seller { name: p.name.into_owned(), city: p.city.into_owned(), state: p.state.into_owned() };
            for (id, ts) in self.waiting.get() {
                emit_local(ctx, &s, id, ts.max(record.timestamp))?;
            }
            self.waiting.clear();
            self.seller.set(&s);
        }
        Ok(())
    }
}

fn emit_local(ctx: &mut Context, s: &Seller, auction: u64, ts: i64) -> Result<()> {
    if matches!(s.state.as_str(), "OR" | "ID" | "CA") {
        ctx.emit_json(&LocalItem { name: &s.name, city: &s.city, state: &s.state, id: auction }, ts)?;
    }
    Ok(())
}

/// The best bid of an auction so far: highest price, then earliest, then lowest bidder.
#[derive(Serialize, Deserialize, Clone)]
pub struct BestBid {
    bidder: u64,
    price: u64,
    ts: i64,
    date_time: String,
    extra: String,
}

impl BestBid {
    fn of(b: &Bid<'_>, ts: i64) -> BestBid {
        BestBid { bidder: b.bidder, price: b.price, ts, date_time: b.date_time.to_string(), extra: b.extra.to_string() }
    }

    fn beats(&self, other: &BestBid) -> bool {
        (self.price, std::cmp::Reverse(self.ts), std::cmp::Reverse(self.bidder)) > (other.price, std::cmp::Reverse(other.ts), std::cmp::Reverse(other.bidder))
    }
}

/// An auction's columns, owned (q9 outputs them all).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionRow {
    id: u64,
    item_name: String,
    description: String,
    initial_bid: u64,
    reserve: u64,
    date_time: String,
    expires: String,
    seller: u64,
    category: u64,
    extra: String,
}

impl AuctionRow {
    /// `a`'s columns; the text ones only if `full` (q4 needs none of them).
    fn of(a: Auction<'_>, full: bool) -> AuctionRow {
        let text = |s: std::borrow::Cow<'_, str>| if full { s.into_owned() } else { String::new() };
        AuctionRow {
            id: a.id,
            item_name: text(a.item_name),
            description: text(a.description),
            initial_bid: a.initial_bid,
            reserve: a.reserve,
            date_time: text(a.date_time),
            expires: text(a.expires),
            seller: a.seller,
            category: a.category,
            extra: text(a.extra),
        }
    }
}

/// An open auction as the winning-bid stage remembers it.
#[derive(Serialize, Deserialize)]
pub struct OpenAuction {
    auction: AuctionRow,
    start: i64,
    end: i64,
}

/// q9's output: the auction's columns and its winning bid's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Winner<'a> {
    #[serde(flatten)]
    auction: &'a AuctionRow,
    bidder: u64,
    price: u64,
    bid_date_time: &'a str,
    bid_extra: &'a str,
}

/// q4's first stage's output.
#[derive(Serialize, Deserialize)]
pub struct Final {
    /// The auction.
    pub id: u64,
    /// Its category.
    pub category: u64,
    /// The winning price.
    pub price: u64,
}

/// The winning bid of each auction: the best bid made between its opening and its
/// expiry (both included), emitted when the watermark passes the expiry. Keyed by
/// auction id.
pub struct WinningBids {
    /// q9's whole row, or only what q4 averages.
    full: bool,
    open: ValueState<OpenAuction>,
    best: ValueState<BestBid>,
    /// Bids that arrived before their auction (dropped once the watermark passes them:
    /// by then an auction that opened no later has arrived).
    early: ListState<BestBid>,
}

impl WinningBids {
    /// For q9 (`full`) or q4.
    pub fn new(full: bool) -> WinningBids {
        WinningBids { full, open: ValueState::new("auction"), best: ValueState::new("best"), early: ListState::new("early") }
    }

    /// An auction or a bid of this key.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let e: Envelope<'_> = record.json()?;
        if let Some(a) = e.auction {
            let end = parse_date_time(&a.expires).ok_or_else(|| rivulet_sdk::Error::msg(format!("auction {}: bad expires '{}'", a.id, a.expires)))?;
            let start = record.timestamp;
            let mut best: Option<BestBid> = None;
            for b in self.early.get() {
                if (start..=end).contains(&b.ts) && best.as_ref().is_none_or(|cur| b.beats(cur)) {
                    best = Some(b);
                }
            }
            self.early.clear();
            if let Some(b) = best {
                self.best.set(&b);
            }
            let auction = AuctionRow::of(a, self.full);
            self.open.set(&OpenAuction { auction, start, end });
            ctx.register_event_time_timer(end);
        } else if let Some(b) = e.bid {
            let bid = BestBid::of(&b, record.timestamp);
            match self.open.get() {
                Some(open) => {
                    if (open.start..=open.end).contains(&bid.ts) && self.best.get().is_none_or(|cur| bid.beats(&cur)) {
                        self.best.set(&bid);
                    }
                }
                None => {
                    self.early.add(&bid);
                    ctx.register_event_time_timer(bid.ts);
                }
            }
        }
        Ok(())
    }

    /// The auction's expiry (emit its winner, forget it) or an early bid's time (drop
    /// the early bids an auction can no longer claim).
    pub fn on_timer(&mut self, ctx: &mut Context, timestamp: i64) -> Result<()> {
        match self.open.get() {
            Some(open) if open.end == timestamp => {
                if let Some(best) = self.best.get() {
                    if self.full {
                        let w = Winner { auction: &open.auction, bidder: best.bidder, price: best.price, bid_date_time: &best.date_time, bid_extra: &best.extra };
                        ctx.emit_json(&w, open.end)?;
                    } else {
                        ctx.emit_json(&Final { id: open.auction.id, category: open.auction.category, price: best.price }, open.end)?;
                    }
                }
                self.open.clear();
                self.best.clear();
            }
            Some(_) => {}
            None => {
                let early = self.early.get();
                let kept: Vec<BestBid> = early.iter().filter(|b| b.ts > timestamp).cloned().collect();
                if kept.len() != early.len() {
                    if kept.is_empty() { self.early.clear() } else { self.early.update(&kept) }
                }
            }
        }
        Ok(())
    }
}

/// q4's second stage: the running average winning price of a category (keyed by
/// category), an updated row per winning bid — as Flink's `AVG` over BIGINT, truncated.
pub struct CategoryAverage {
    sum_count: ValueState<(u64, u64)>,
}

/// q4's output.
#[derive(Serialize)]
struct Average {
    category: u64,
    avg: u64,
}

impl CategoryAverage {
    /// Its state.
    pub fn new() -> CategoryAverage {
        CategoryAverage { sum_count: ValueState::new("sum-count") }
    }

    /// One auction's final price.
    pub fn process(&mut self, ctx: &mut Context, record: &Record<'_>) -> Result<()> {
        let f: Final = record.json()?;
        let (sum, count) = self.sum_count.get().unwrap_or((0, 0));
        let (sum, count) = (sum + f.price, count + 1);
        self.sum_count.set(&(sum, count));
        ctx.emit_json(&Average { category: f.category, avg: sum / count }, record.timestamp)
    }
}

/// q8's output.
#[derive(Serialize)]
struct NewSeller<'a> {
    id: u64,
    name: &'a str,
    starttime: i64,
}

/// q8: a person who opened an auction in the 10-second window they registered in (a
/// co-group of the window's people and auctions, keyed by person id / seller).
pub fn q8(ctx: &mut Context, window: Window, inputs: &CoGroup<'_>) -> Result<()> {
    let (people, auctions) = (inputs.named("person"), inputs.named("auction"));
    if auctions.is_empty() {
        return Ok(());
    }
    for r in people {
        let e: Envelope<'_> = r.json()?;
        if let Some(Person { id, name, .. }) = e.person {
            ctx.emit_json(&NewSeller { id, name: &name, starttime: window.start }, window.end - 1)?;
        }
    }
    Ok(())
}
