//! Orders meet their payments: the host's interval join pairs every order with the
//! payments of the same `order_id` made within 15 minutes after it (`interval_join:
//! {lower_ms: 0, upper_ms: 900000}` in `job.yaml`); this operator only shapes each pair.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{Config, Context, Operator, Record, Result, export_operator};
use serde::{Deserialize, Serialize};

struct OrderPayments;

#[derive(Deserialize)]
struct Order<'a> {
    order_id: &'a str,
    amount: f64,
    timestamp: i64,
}

#[derive(Deserialize)]
struct Payment {
    paid: f64,
    timestamp: i64,
}

#[derive(Serialize)]
struct Paired<'a> {
    order_id: &'a str,
    amount: f64,
    paid: f64,
    order_timestamp: i64,
    payment_timestamp: i64,
}

impl Operator for OrderPayments {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(OrderPayments)
    }

    fn join(&mut self, ctx: &mut Context, order: Record<'_>, payment: Record<'_>) -> Result<()> {
        let o: Order<'_> = order.json()?;
        let p: Payment = payment.json()?;
        let out = Paired { order_id: o.order_id, amount: o.amount, paid: p.paid, order_timestamp: o.timestamp, payment_timestamp: p.timestamp };
        ctx.emit_json(&out, order.timestamp.max(payment.timestamp))
    }
}

export_operator!(OrderPayments);
