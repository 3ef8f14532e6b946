//! Brute-force logins: per user, three failed logins in a row followed directly by a
//! successful one, all within 60 s of the first failure (the success less than 60 s
//! after it), found with the SDK's CEP library. After a match, matching restarts after
//! the success. Partial matches that run out of time go to the `timed-out` side output.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::cep::{AfterMatchSkip, Cep, Pattern};
use rivulet_sdk::{Config, Context, Error, Operator, Record, Result, TimeDomain, export_operator};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Login {
    user: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize)]
struct Attack<'a> {
    user: &'a str,
    first_fail: i64,
    success: i64,
}

struct CepLogin {
    attacks: Cep<Login>,
}

impl Operator for CepLogin {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        let pattern = Pattern::<Login>::begin("fails")
            .where_(|e| e.kind == "fail")
            .times(3)
            .consecutive()
            .next("success")
            .where_(|e| e.kind == "success")
            .within(60_000)
            .skip(AfterMatchSkip::SkipPastLastEvent);
        Ok(CepLogin { attacks: Cep::new("attacks", pattern).map_err(Error::msg)? })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let login: Login = record.json()?;
        if !self.attacks.process(ctx, login, record.timestamp) {
            ctx.emit_to("late", record.key, record.value, record.timestamp);
        }
        Ok(())
    }

    fn on_timer(&mut self, ctx: &mut Context, timestamp: i64, domain: TimeDomain) -> Result<()> {
        if domain != TimeDomain::EventTime {
            return Ok(());
        }
        let found = self.attacks.on_timer(ctx, timestamp)?;
        for m in &found.matches {
            let (Some(user), Some(first_fail), Some(success)) =
                (m.get("fails").first().map(|l| l.user.clone()), m.timestamps("fails").first().copied(), m.timestamps("success").first().copied())
            else {
                continue;
            };
            ctx.emit_json(&Attack { user: &user, first_fail, success }, success)?;
        }
        for m in &found.timed_out {
            let fails = m.timestamps("fails");
            if let Some(l) = m.get("fails").first() {
                ctx.emit_json_to("timed-out", &serde_json::json!({"user": l.user, "fails": fails}), m.last_timestamp())?;
            }
        }
        Ok(())
    }
}

export_operator!(CepLogin);
