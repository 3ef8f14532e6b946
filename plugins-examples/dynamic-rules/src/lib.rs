//! Dynamic rules: rules arrive on a broadcast input (`upsert` or `delete`) and live in
//! broadcast state, the same on every instance; each transaction is checked against the
//! rules live at its own event time (the host's default `broadcast_order: event_time`
//! holds transactions until the rules' watermark has passed them).
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{BroadcastMapState, Config, Context, Error, Input, Operator, Record, Result, export_operator};
use serde::{Deserialize, Serialize};

struct DynamicRules {
    /// rule_id → min_amount.
    rules: BroadcastMapState<String, f64>,
}

#[derive(Deserialize)]
struct Rule {
    rule_id: String,
    op: String,
    #[serde(default)]
    min_amount: Option<f64>,
}

#[derive(Deserialize)]
struct Transaction<'a> {
    account_id: &'a str,
    amount: f64,
    timestamp: i64,
}

#[derive(Serialize)]
struct Hit<'a> {
    account_id: &'a str,
    rule_id: &'a str,
    amount: f64,
    timestamp: i64,
}

impl Operator for DynamicRules {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(DynamicRules { rules: BroadcastMapState::new("rules") })
    }

    fn process_broadcast(&mut self, _ctx: &mut Context, _input: &Input, record: Record<'_>) -> Result<()> {
        let rule: Rule = record.json()?;
        match (rule.op.as_str(), rule.min_amount) {
            ("upsert", Some(min)) => self.rules.put(&rule.rule_id, &min),
            ("upsert", None) => return Err(Error::msg(format!("rule '{}': an upsert needs min_amount", rule.rule_id))),
            ("delete", _) => self.rules.remove(&rule.rule_id),
            (op, _) => return Err(Error::msg(format!("rule '{}': unknown op '{op}' (upsert or delete)", rule.rule_id))),
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let tx: Transaction<'_> = record.json()?;
        for (rule_id, min) in self.rules.entries() {
            if tx.amount >= min {
                let hit = Hit { account_id: tx.account_id, rule_id: &rule_id, amount: tx.amount, timestamp: tx.timestamp };
                ctx.emit_json(&hit, record.timestamp)?;
            }
        }
        Ok(())
    }
}

export_operator!(DynamicRules);
