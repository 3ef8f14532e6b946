// The cep-login example in JavaScript, with the SDK's Pattern and Cep: per user, three
// failed logins in a row directly followed by a success less than 60 s after the first
// failure; matching restarts after the success. Same contract as the Rust `cep-login`.
import { Cep, EVENT_TIME, Operator, Pattern, SKIP_PAST_LAST_EVENT, exportOperator } from "rivulet-sdk";

class CepLogin extends Operator {
  open(ctx, config) {
    const pattern = Pattern.begin("fails")
      .where((e) => e.type === "fail")
      .times(3)
      .consecutive()
      .next("success")
      .where((e) => e.type === "success")
      .within(60000)
      .skip(SKIP_PAST_LAST_EVENT);
    this.attacks = new Cep("attacks", pattern);
  }

  process(ctx, record) {
    const login = record.json();
    if (!this.attacks.process(ctx, { user: login.user, type: login.type }, record.timestamp)) {
      ctx.emitTo("late", record.value, record.timestamp, record.key);
    }
  }

  onTimer(ctx, timestamp, domain) {
    if (domain !== EVENT_TIME) return;
    const found = this.attacks.onTimer(ctx, timestamp);
    for (const m of found.matches) {
      const success = m.timestamps("success")[0];
      ctx.emitJson({ user: m.get("fails")[0].user, first_fail: m.timestamps("fails")[0], success }, success);
    }
    for (const m of found.timedOut) {
      ctx.emitJsonTo("timed-out", { user: m.get("fails")[0].user, fails: m.timestamps("fails") }, m.lastTimestamp());
    }
  }
}

export const operator = exportOperator(CepLogin);
