//! Nexmark events as JSON, in the shape Flink's Nexmark reads:
//! `{"event_type":0|1|2,"ts":<ms>,"person"|"auction"|"bid":{…camelCase fields…}}` with
//! `dateTime` (and `expires`) as `yyyy-MM-dd HH:mm:ss.SSS` in UTC. `ts` repeats the
//! event time in ms, for readers (like a Rivulet file source) that take event time from
//! one top-level field.

use std::io::Write;

use super::model::{Auction, Bid, Event, Person};

/// `ms` since the epoch as `yyyy-MM-dd HH:mm:ss.SSS` (UTC, proleptic Gregorian).
pub fn format_date_time(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let _ = write!(out, "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{milli:03}");
}

fn person(p: &Person, out: &mut Vec<u8>) {
    let _ = write!(
        out,
        r#"{{"id":{},"name":"{}","emailAddress":"{}","creditCard":"{}","city":"{}","state":"{}","dateTime":""#,
        p.id, p.name, p.email_address, p.credit_card, p.city, p.state
    );
    format_date_time(p.date_time, out);
    let _ = write!(out, r#"","extra":"{}"}}"#, p.extra);
}

fn auction(a: &Auction, out: &mut Vec<u8>) {
    let _ = write!(
        out,
        r#"{{"id":{},"itemName":"{}","description":"{}","initialBid":{},"reserve":{},"dateTime":""#,
        a.id, a.item_name, a.description, a.initial_bid, a.reserve
    );
    format_date_time(a.date_time, out);
    out.extend_from_slice(br#"","expires":""#);
    format_date_time(a.expires, out);
    let _ = write!(out, r#"","seller":{},"category":{},"extra":"{}"}}"#, a.seller, a.category, a.extra);
}

fn bid(b: &Bid, out: &mut Vec<u8>) {
    let _ = write!(out, r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","url":"{}","dateTime":""#, b.auction, b.bidder, b.price, b.channel, b.url);
    format_date_time(b.date_time, out);
    let _ = write!(out, r#"","extra":"{}"}}"#, b.extra);
}

/// Append `event` as one JSON object (no newline) to `out`. Every string the generator
/// makes is plain ASCII without quotes or backslashes, so none needs escaping.
pub fn write_event(event: &Event, out: &mut Vec<u8>) {
    let ts = event.date_time();
    match event {
        Event::Person(p) => {
            let _ = write!(out, r#"{{"event_type":0,"ts":{ts},"person":"#);
            person(p, out);
        }
        Event::Auction(a) => {
            let _ = write!(out, r#"{{"event_type":1,"ts":{ts},"auction":"#);
            auction(a, out);
        }
        Event::Bid(b) => {
            let _ = write!(out, r#"{{"event_type":2,"ts":{ts},"bid":"#);
            bid(b, out);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::super::model::NexmarkConfig;
    use super::*;

    fn date(ms: i64) -> String {
        let mut v = Vec::new();
        format_date_time(ms, &mut v);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00.000");
        assert_eq!(date(1_767_225_600_123), "2026-01-01 00:00:00.123");
        assert_eq!(date(951_782_400_000 - 1), "2000-02-28 23:59:59.999");
        assert_eq!(date(951_782_400_000 + 86_400_000), "2000-03-01 00:00:00.000", "2000 is a leap year");
        assert_eq!(date(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn every_event_is_valid_json_in_the_flink_shape() {
        let cfg = NexmarkConfig::default();
        for n in 0..500 {
            let e = cfg.event(n);
            let mut v = Vec::new();
            write_event(&e, &mut v);
            let doc: serde_json::Value = serde_json::from_slice(&v).expect("json");
            assert_eq!(doc["ts"].as_i64(), Some(e.date_time()));
            let (kind, field) = match e {
                Event::Person(_) => (0, "person"),
                Event::Auction(_) => (1, "auction"),
                Event::Bid(_) => (2, "bid"),
            };
            assert_eq!(doc["event_type"], kind);
            assert_eq!(doc[field]["dateTime"].as_str().map(str::len), Some(23));
            if let Event::Bid(b) = &e {
                assert_eq!(doc["bid"]["auction"].as_u64(), Some(b.auction));
                assert_eq!(doc["bid"]["price"].as_u64(), Some(b.price));
            }
        }
    }
}
