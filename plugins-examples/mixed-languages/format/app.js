// JavaScript stage of the mixed-language job: turns the Rust counter's
// {"key", "count"} into a readable line, "<user> made transaction #<count>".
import { Operator, exportOperator } from "rivulet-sdk";

const enc = new TextEncoder();

class Format extends Operator {
  process(ctx, record) {
    const { key, count } = record.json();
    ctx.emit(enc.encode(`${key} made transaction #${count}`), record.timestamp);
  }
}

export const operator = exportOperator(Format);
