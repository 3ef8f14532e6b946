//! Word count in two stages of one plugin, chosen by config:
//! `{"stage": "tokenize"}` splits text lines into words (keyed by the word);
//! `{"stage": "count"}` keeps a running count per word in keyed value state.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{Config, Context, Error, Operator, Record, Result, ValueState, export_operator};
use serde::Serialize;

enum WordCount {
    Tokenize,
    Count(ValueState<u64>),
}

#[derive(Serialize)]
struct Row<'a> {
    word: &'a str,
    count: u64,
}

impl Operator for WordCount {
    fn open(_ctx: &mut Context, config: &Config) -> Result<Self> {
        match config.get::<String>("stage")?.as_deref() {
            Some("tokenize") => Ok(WordCount::Tokenize),
            Some("count") => Ok(WordCount::Count(ValueState::new("count"))),
            other => Err(Error::msg(format!("config.stage must be \"tokenize\" or \"count\", not {other:?}"))),
        }
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        match self {
            WordCount::Tokenize => {
                let line = record.value_str()?;
                for raw in line.split_whitespace() {
                    let word = raw.to_lowercase();
                    let word = word.trim_matches(|c: char| c.is_ascii_punctuation());
                    if !word.is_empty() {
                        ctx.emit(Some(word.as_bytes()), word.as_bytes(), record.timestamp);
                    }
                }
            }
            WordCount::Count(count) => {
                let n = count.get().unwrap_or(0) + 1;
                count.set(&n);
                let word = record.key_str().ok_or_else(|| Error::msg("count stage needs records keyed by word"))?;
                ctx.emit_json(&Row { word, count: n }, record.timestamp)?;
            }
        }
        Ok(())
    }
}

export_operator!(WordCount);
