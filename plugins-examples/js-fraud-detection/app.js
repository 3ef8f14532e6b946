// Flink's fraud-detection walkthrough in event time, in JavaScript: alert when an
// account's transaction under 1.00 is immediately followed by one over 500.00 at most
// 60 s later. Same contract as the Rust `fraud-detection` example.
import { Operator, ValueState, exportOperator } from "rivulet-sdk";

const SMALL = 1.0;
const LARGE = 500.0;
const WINDOW_MS = 60000;

class FraudDetector extends Operator {
  open(ctx, config) {
    this.smallTs = new ValueState("small_ts");
    this.timer = new ValueState("timer");
  }

  clear(ctx) {
    const t = this.timer.get();
    if (t !== undefined) ctx.deleteEventTimeTimer(t);
    this.timer.clear();
    this.smallTs.clear();
  }

  process(ctx, record) {
    const tx = record.json();
    const ts = tx.timestamp ?? record.timestamp;
    const small = this.smallTs.get();
    if (small !== undefined) {
      const gap = ts - small;
      if (tx.amount > LARGE && gap >= 0 && gap <= WINDOW_MS) {
        ctx.emitJson({ account_id: tx.account_id, small_timestamp: small, large_timestamp: ts }, ts);
      }
      // Any next transaction clears the flag.
      this.clear(ctx);
    }
    if (tx.amount < SMALL) {
      this.smallTs.set(ts);
      const t = ts + WINDOW_MS;
      ctx.registerEventTimeTimer(t);
      this.timer.set(t);
    }
  }

  onTimer(ctx, timestamp, domain) {
    this.timer.clear();
    this.smallTs.clear();
  }
}

export const operator = exportOperator(FraudDetector);
