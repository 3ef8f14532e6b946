//! The Nexmark events as the `nexmark` source writes them (Flink's Nexmark JSON):
//! `{"event_type":…,"ts":…,"person"|"auction"|"bid":{…}}`, read without copying.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One event: exactly one of the three is present.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    /// A new person.
    #[serde(borrow, default)]
    pub person: Option<Person<'a>>,
    /// A new auction.
    #[serde(borrow, default)]
    pub auction: Option<Auction<'a>>,
    /// A bid.
    #[serde(borrow, default)]
    pub bid: Option<Bid<'a>>,
}

/// A person registering.
#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Person<'a> {
    /// Id.
    pub id: u64,
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// City.
    #[serde(borrow)]
    pub city: Cow<'a, str>,
    /// US state code.
    #[serde(borrow)]
    pub state: Cow<'a, str>,
    /// Event time, `yyyy-MM-dd HH:mm:ss.SSS`.
    #[serde(borrow)]
    pub date_time: Cow<'a, str>,
}

/// An auction.
#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Auction<'a> {
    /// Id.
    pub id: u64,
    /// Item name.
    #[serde(borrow)]
    pub item_name: Cow<'a, str>,
    /// Description.
    #[serde(borrow)]
    pub description: Cow<'a, str>,
    /// Initial bid (cents).
    pub initial_bid: u64,
    /// Reserve (cents).
    pub reserve: u64,
    /// Event time, `yyyy-MM-dd HH:mm:ss.SSS`.
    #[serde(borrow)]
    pub date_time: Cow<'a, str>,
    /// Closing time, `yyyy-MM-dd HH:mm:ss.SSS`.
    #[serde(borrow)]
    pub expires: Cow<'a, str>,
    /// Seller's person id.
    pub seller: u64,
    /// Category.
    pub category: u64,
    /// Padding.
    #[serde(borrow)]
    pub extra: Cow<'a, str>,
}

/// A bid.
#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Bid<'a> {
    /// Auction id.
    pub auction: u64,
    /// Bidder's person id.
    pub bidder: u64,
    /// Price (cents).
    pub price: u64,
    /// Channel.
    #[serde(borrow, default)]
    pub channel: Cow<'a, str>,
    /// Page.
    #[serde(borrow, default)]
    pub url: Cow<'a, str>,
    /// Event time, `yyyy-MM-dd HH:mm:ss.SSS`.
    #[serde(borrow)]
    pub date_time: Cow<'a, str>,
    /// Padding.
    #[serde(borrow)]
    pub extra: Cow<'a, str>,
}

/// An event's `event_type` (0 person, 1 auction, 2 bid): read from the first bytes when
/// the record starts with it (as the generator writes them), else from the parsed JSON.
pub fn event_type(record: &rivulet_sdk::Record<'_>) -> rivulet_sdk::Result<u8> {
    const PREFIX: &[u8] = br#"{"event_type":"#;
    if let Some(rest) = record.value.strip_prefix(PREFIX)
        && let [d @ b'0'..=b'2', b',' | b'}', ..] = rest
    {
        return Ok(d - b'0');
    }
    #[derive(Deserialize)]
    struct Kind {
        event_type: u8,
    }
    let k: Kind = record.json()?;
    if k.event_type > 2 {
        return Err(rivulet_sdk::Error::msg(format!("event_type {} is not 0, 1 or 2", k.event_type)));
    }
    Ok(k.event_type)
}

/// Milliseconds since the epoch of a `yyyy-MM-dd HH:mm:ss.SSS` UTC time, or `None`.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 23 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' || b[19] != b'.' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> { s.get(from..to)?.parse().ok() };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}
