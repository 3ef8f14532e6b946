//! Order enrichment: each order (`{"order_id", "customer", "price_cents", "qty"}`, keyed
//! by customer) gets its total, the customer's running order count and spend (keyed
//! value state), and a tier that follows the spend: `bronze` below 100.00, `silver`
//! below 1000.00, `gold` above. A malformed order is an error naming it (the host's
//! dead-letter output catches values that are not JSON before they reach here).

use rivulet_sdk::{Config, Context, Error, Operator, Record, Result, ValueState, export_operator};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct Order {
    order_id: u64,
    customer: String,
    price_cents: u64,
    qty: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Customer {
    orders: u64,
    spend_cents: u64,
}

struct Enrich {
    customer: ValueState<Customer>,
}

fn tier(spend_cents: u64) -> &'static str {
    match spend_cents {
        0..10_000 => "bronze",
        10_000..100_000 => "silver",
        _ => "gold",
    }
}

impl Operator for Enrich {
    fn open(_: &mut Context, _: &Config) -> Result<Self> {
        Ok(Enrich { customer: ValueState::new("customer") })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let order: Order = record.json().map_err(|e| Error::msg(format!("not an order: {e}")))?;
        let total = order.price_cents.saturating_mul(order.qty);
        let mut c = self.customer.get().unwrap_or_default();
        c.orders += 1;
        c.spend_cents = c.spend_cents.saturating_add(total);
        self.customer.set(&c);
        let enriched = json!({
            "order_id": order.order_id,
            "customer": order.customer,
            "total_cents": total,
            "customer_orders": c.orders,
            "customer_spend_cents": c.spend_cents,
            "tier": tier(c.spend_cents),
        });
        // Keyed like its input (the customer): the Kafka sink keys records by it.
        ctx.emit(record.key, &serde_json::to_vec(&enriched)?, record.timestamp);
        Ok(())
    }
}

export_operator!(Enrich);
