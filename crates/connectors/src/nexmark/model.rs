//! The Nexmark event model: an online auction's people, auctions and bids, in the
//! proportions and distributions of the benchmark's reference generator (Beam and Flink
//! Nexmark), written here from its published description.
//!
//! Event `n` of a stream is a pure function of the configuration, the seed and `n`: a
//! parallel source's subtask `s` of `p` generates the events `n ≡ s (mod p)`, and a
//! checkpoint needs only the next `n`.
//!
//! - Of every 50 events, 1 is a new person, 3 are new auctions and 46 are bids.
//! - Ids start at 1000. An auction's seller is a "hot" seller (one of every 4th person
//!   id) 3 times in 4, else one of the 1000 most recent people (or up to 10 not yet
//!   created). A bid's auction is a hot auction (every 2nd id) half the time, else one of
//!   the 100 auctions in flight (or up to 10 not yet created); its bidder is hot 3 times
//!   in 4.
//! - Prices are log-uniform between 1 and 10⁶ dollars, in cents. Categories are 10–14.
//! - Event time advances by `1000 / event_rate` ms per event; an auction expires within
//!   twice the time 100 auctions take to be created.

/// Persons in every [`TOTAL_PROPORTION`] events.
pub const PERSON_PROPORTION: u64 = 1;
/// Auctions in every [`TOTAL_PROPORTION`] events.
pub const AUCTION_PROPORTION: u64 = 3;
/// Bids in every [`TOTAL_PROPORTION`] events.
pub const BID_PROPORTION: u64 = 46;
/// The period of the event kinds.
pub const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
/// The first person id.
pub const FIRST_PERSON_ID: u64 = 1000;
/// The first auction id.
pub const FIRST_AUCTION_ID: u64 = 1000;
/// The first category id.
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Number of categories.
pub const NUM_CATEGORIES: u64 = 5;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_CHANNEL_RATIO: u64 = 2;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const CHANNELS: u64 = 10_000;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// What shapes a generated stream (besides its length and pacing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NexmarkConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Event time of event 0, in ms since the epoch.
    pub base_time_ms: i64,
    /// Events per second of event time (not of wall-clock time).
    pub event_rate: f64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z; 10,000 events per second of event time, as the reference.
        NexmarkConfig { seed: 0, base_time_ms: 1_767_225_600_000, event_rate: 10_000.0 }
    }
}

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A new person.
    Person,
    /// A new auction.
    Auction,
    /// A bid.
    Bid,
}

impl EventKind {
    /// The kind of event `n`.
    pub fn of(n: u64) -> EventKind {
        let offset = n % TOTAL_PROPORTION;
        if offset < PERSON_PROPORTION {
            EventKind::Person
        } else if offset < PERSON_PROPORTION + AUCTION_PROPORTION {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }
}

/// A person registering.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Id, from 1000.
    pub id: u64,
    /// "First Last".
    pub name: String,
    /// An e-mail address.
    pub email_address: String,
    /// Sixteen digits in groups of four.
    pub credit_card: String,
    /// A US city.
    pub city: String,
    /// A US state's code.
    pub state: String,
    /// Event time (ms).
    pub date_time: i64,
    /// Padding to the reference's average size.
    pub extra: String,
}

/// An auction opening.
#[derive(Debug, Clone, PartialEq)]
pub struct Auction {
    /// Id, from 1000.
    pub id: u64,
    /// Item name.
    pub item_name: String,
    /// Item description.
    pub description: String,
    /// Initial bid (cents).
    pub initial_bid: u64,
    /// Reserve price (cents).
    pub reserve: u64,
    /// Event time (ms).
    pub date_time: i64,
    /// When the auction closes (ms).
    pub expires: i64,
    /// The seller's person id.
    pub seller: u64,
    /// Category, 10–14.
    pub category: u64,
    /// Padding to the reference's average size.
    pub extra: String,
}

/// A bid.
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidder's person id.
    pub bidder: u64,
    /// Price (cents).
    pub price: u64,
    /// Where the bid came from.
    pub channel: String,
    /// The page it was made on.
    pub url: String,
    /// Event time (ms).
    pub date_time: i64,
    /// Padding to the reference's average size.
    pub extra: String,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// Its event time (ms).
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

/// SplitMix64 mixing (deterministic on every platform).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random choices of one event: a SplitMix64 stream seeded by (seed, n).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, n: u64) -> Rng {
        Rng(splitmix(seed ^ splitmix(n)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// `len` lowercase letters.
    fn letters(&mut self, len: usize, out: &mut String) {
        for _ in 0..len {
            out.push(char::from(b'a' + self.below(26) as u8));
        }
    }

    /// A word of 3 to `max` letters.
    fn word(&mut self, max: usize) -> String {
        let len = 3 + self.below((max - 3) as u64) as usize;
        let mut s = String::with_capacity(len);
        self.letters(len, &mut s);
        s
    }

    /// Padding so that a record of `current` bytes averages `average` (±20%).
    fn extra(&mut self, current: usize, average: usize) -> String {
        if current >= average {
            return String::new();
        }
        let wanted = average - current;
        let delta = (wanted as f64 * 0.2).round() as usize;
        let len = wanted - delta + if delta == 0 { 0 } else { self.below(2 * delta as u64) as usize };
        let mut s = String::with_capacity(len);
        self.letters(len, &mut s);
        s
    }

    /// A price in cents, log-uniform between 1 and 10⁶ dollars.
    fn price(&mut self) -> u64 {
        (10f64.powf(self.unit() * 6.0) * 100.0).round() as u64
    }
}

/// Persons created before event `n` (counting the one `n` may create), less one: the
/// id offset of the newest person at `n`.
// General in the proportions (with one person per epoch the offset is always 0).
#[allow(clippy::unnecessary_min_or_max)]
fn last_base0_person_id(n: u64) -> u64 {
    let epoch = n / TOTAL_PROPORTION;
    let offset = (n % TOTAL_PROPORTION).min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

/// The id offset of the newest auction at `n`.
fn last_base0_auction_id(n: u64) -> u64 {
    let mut epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // Before this epoch's first auction: the previous epoch's last.
        if epoch == 0 {
            return 0;
        }
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

impl NexmarkConfig {
    /// Microseconds of event time between consecutive events.
    fn inter_event_us(&self) -> u64 {
        if self.event_rate > 0.0 { (1e6 / self.event_rate).round().max(1.0) as u64 } else { 100 }
    }

    /// The event time of event `n` (ms).
    pub fn timestamp(&self, n: u64) -> i64 {
        let us = u128::from(n) * u128::from(self.inter_event_us());
        self.base_time_ms.saturating_add(i64::try_from(us / 1000).unwrap_or(i64::MAX))
    }

    /// Event `n`.
    pub fn event(&self, n: u64) -> Event {
        let mut rng = Rng::new(self.seed, n);
        match EventKind::of(n) {
            EventKind::Person => Event::Person(self.person(n, &mut rng)),
            EventKind::Auction => Event::Auction(self.auction(n, &mut rng)),
            EventKind::Bid => Event::Bid(self.bid(n, &mut rng)),
        }
    }

    /// A recent person's id offset (or one of the next few, not yet created).
    fn some_base0_person(n: u64, rng: &mut Rng) -> u64 {
        let people = last_base0_person_id(n) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + rng.below(active + PERSON_ID_LEAD)
    }

    fn person(&self, n: u64, rng: &mut Rng) -> Person {
        let id = last_base0_person_id(n) + FIRST_PERSON_ID;
        let name = format!("{} {}", rng.pick(&FIRST_NAMES), rng.pick(&LAST_NAMES));
        let email_address = format!("{}@{}.com", rng.word(7), rng.word(5));
        let credit_card = format!("{:04} {:04} {:04} {:04}", rng.below(10_000), rng.below(10_000), rng.below(10_000), rng.below(10_000));
        let city = rng.pick(&US_CITIES).to_owned();
        let state = rng.pick(&US_STATES).to_owned();
        let current = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = rng.extra(current, AVG_PERSON_BYTES);
        Person { id, name, email_address, credit_card, city, state, date_time: self.timestamp(n), extra }
    }

    fn auction(&self, n: u64, rng: &mut Rng) -> Auction {
        let id = last_base0_auction_id(n) + FIRST_AUCTION_ID;
        let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
            (last_base0_person_id(n) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            Self::some_base0_person(n, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES);
        let initial_bid = rng.price();
        let date_time = self.timestamp(n);
        // Expires within twice the time the next `NUM_IN_FLIGHT_AUCTIONS` auctions take.
        let horizon_events = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let horizon_ms = self.timestamp(n + horizon_events) - date_time;
        let expires = date_time + 1 + rng.below((horizon_ms * 2).max(1) as u64) as i64;
        let item_name = rng.word(20);
        let description = rng.word(100);
        let reserve = initial_bid + rng.price();
        let current = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = rng.extra(current, AVG_AUCTION_BYTES);
        Auction { id, item_name, description, initial_bid, reserve, date_time, expires, seller, category, extra }
    }

    fn bid(&self, n: u64, rng: &mut Rng) -> Bid {
        let last_auction = last_base0_auction_id(n);
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (last_auction / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            let min = last_auction.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
            min + rng.below(last_auction - min + 1 + AUCTION_ID_LEAD)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            (last_base0_person_id(n) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            Self::some_base0_person(n, rng)
        } + FIRST_PERSON_ID;
        let price = rng.price();
        let (channel, url) = if rng.below(HOT_CHANNEL_RATIO) > 0 {
            let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
            (HOT_CHANNELS[i].to_owned(), format!("https://www.nexmark.com/{}/item.htm?query=1", HOT_CHANNELS[i].to_lowercase()))
        } else {
            let c = rng.below(CHANNELS);
            (format!("channel-{c}"), format!("https://www.nexmark.com/{}/item.htm?query=1&channel_id={c}", rng.word(6)))
        };
        let extra = rng.extra(32, AVG_BID_BYTES);
        Bid { auction, bidder, price, channel, url, date_time: self.timestamp(n), extra }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_in_the_reference_proportions_with_dense_ids() {
        let cfg = NexmarkConfig::default();
        let (mut persons, mut auctions, mut bids) = (Vec::new(), Vec::new(), 0);
        for n in 0..50_000 {
            match cfg.event(n) {
                Event::Person(p) => persons.push(p.id),
                Event::Auction(a) => auctions.push(a.id),
                Event::Bid(_) => bids += 1,
            }
        }
        assert_eq!((persons.len(), auctions.len(), bids), (1_000, 3_000, 46_000));
        assert_eq!(persons, (1000..2000).collect::<Vec<_>>(), "person ids are dense from 1000");
        assert_eq!(auctions, (1000..4000).collect::<Vec<_>>(), "auction ids are dense from 1000");
    }

    #[test]
    fn an_event_is_a_function_of_seed_and_number() {
        let a = NexmarkConfig::default();
        let b = NexmarkConfig { seed: 7, ..a };
        assert_eq!(a.event(12_345), a.event(12_345));
        assert_ne!(a.event(12_345), b.event(12_345));
    }

    #[test]
    fn references_point_at_existing_or_soon_created_people_and_auctions() {
        let cfg = NexmarkConfig::default();
        let (mut hot_auction, mut bids) = (0, 0);
        for n in 0..100_000 {
            match cfg.event(n) {
                Event::Auction(a) => {
                    assert!(a.seller >= FIRST_PERSON_ID && a.seller <= last_base0_person_id(n) + FIRST_PERSON_ID + PERSON_ID_LEAD);
                    assert!((10..15).contains(&a.category));
                    assert!(a.expires > a.date_time && a.reserve >= a.initial_bid);
                }
                Event::Bid(b) => {
                    bids += 1;
                    assert!(b.auction <= last_base0_auction_id(n) + FIRST_AUCTION_ID + AUCTION_ID_LEAD);
                    assert!(b.price >= 100 && b.price <= 100_000_000);
                    if b.auction % 2 == 0 {
                        hot_auction += 1;
                    }
                }
                Event::Person(_) => {}
            }
        }
        // Hot auctions are even ids: about half the bids plus half of the rest.
        let share = f64::from(hot_auction) / f64::from(bids);
        assert!((0.70..0.80).contains(&share), "{share}");
    }

    #[test]
    fn event_time_follows_the_event_rate() {
        let cfg = NexmarkConfig { event_rate: 1000.0, base_time_ms: 5, ..NexmarkConfig::default() };
        assert_eq!(cfg.timestamp(0), 5);
        assert_eq!(cfg.timestamp(2500), 2505);
        let tenk = NexmarkConfig { base_time_ms: 0, ..NexmarkConfig::default() };
        assert_eq!(tenk.timestamp(25), 2, "10,000 events per second: 0.1 ms apart");
    }

    #[test]
    fn prices_are_log_uniform() {
        let cfg = NexmarkConfig::default();
        let prices: Vec<u64> = (0..200_000)
            .filter_map(|n| match cfg.event(n) {
                Event::Bid(b) => Some(b.price),
                _ => None,
            })
            .collect();
        // Each decade of dollars holds about a sixth of the prices.
        let below_100_dollars = prices.iter().filter(|&&p| p < 10_000).count() as f64 / prices.len() as f64;
        assert!((0.30..0.37).contains(&below_100_dollars), "{below_100_dollars}");
    }
}
