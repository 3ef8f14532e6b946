//! q0 (pass-through), q1 (currency conversion) and q2 (selection): one bid in, at most
//! one record out, no state.

use rivulet_sdk::{Context, Record, Result};
use serde::Serialize;

use crate::events::Envelope;

/// q0's and q1's output: the bid's columns Flink's queries select.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BidOut<'a, P> {
    auction: u64,
    bidder: u64,
    price: P,
    date_time: &'a str,
    extra: &'a str,
}

/// A price in cents times 0.908, as Flink's DECIMAL(23, 3): the nearest double prints
/// as the exact three-decimal number (shortest round-trip formatting).
fn euros(cents: u64) -> f64 {
    (u128::from(cents) * 908) as f64 / 1000.0
}

/// q0: every bid's columns, unchanged.
pub fn q0(ctx: &mut Context, record: &Record<'_>) -> Result<()> {
    let e: Envelope<'_> = record.json()?;
    if let Some(b) = e.bid {
        let out = BidOut { auction: b.auction, bidder: b.bidder, price: b.price, date_time: &b.date_time, extra: &b.extra };
        ctx.emit_json(&out, record.timestamp)?;
    }
    Ok(())
}

/// q1: every bid with its price converted from dollars to euros (× 0.908).
pub fn q1(ctx: &mut Context, record: &Record<'_>) -> Result<()> {
    let e: Envelope<'_> = record.json()?;
    if let Some(b) = e.bid {
        let out = BidOut { auction: b.auction, bidder: b.bidder, price: euros(b.price), date_time: &b.date_time, extra: &b.extra };
        ctx.emit_json(&out, record.timestamp)?;
    }
    Ok(())
}

/// q2's output.
#[derive(Serialize)]
struct AuctionPrice {
    auction: u64,
    price: u64,
}

/// q2: the bids on every 123rd auction.
pub fn q2(ctx: &mut Context, record: &Record<'_>) -> Result<()> {
    let e: Envelope<'_> = record.json()?;
    if let Some(b) = e.bid
        && b.auction % 123 == 0
    {
        ctx.emit_json(&AuctionPrice { auction: b.auction, price: b.price }, record.timestamp)?;
    }
    Ok(())
}
