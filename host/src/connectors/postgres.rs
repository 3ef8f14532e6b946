//! The PostgreSQL sink: each record's value (a JSON object, one row) is upserted by key,
//! in batches.
//!
//! `INSERT INTO t SELECT * FROM json_populate_recordset(NULL::t, $1) ON CONFLICT (key)
//! DO UPDATE SET …` — the table's own column types convert the JSON, and a row written
//! twice ends the same. Batches are flushed when full and at every checkpoint barrier
//! (before the sink acknowledges it), so everything before a completed checkpoint is in
//! the table, and a replay after recovery rewrites rows with the values they already
//! have: the table converges to the failure-free result (idempotent, effectively
//! exactly-once for the final state; a reader may briefly see a row's older value
//! during a replay).
//!
//! The client (the `postgres` crate, blocking) runs on a thread of its own; the sink
//! hands it rows through a bounded channel (backpressure) and waits for its answer at
//! each flush.

use std::collections::HashMap;
use std::sync::mpsc;

/// Where rows go.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Table (optionally `schema.table`).
    pub table: String,
    /// Key columns (a primary key or unique constraint on them must exist).
    pub key: Vec<String>,
    /// Rows per statement.
    pub batch_size: usize,
}

enum Cmd {
    Row(serde_json::Value),
    Flush(mpsc::Sender<Result<(), String>>),
}

/// Lines written to it (JSON objects) become upserted rows; `flush` returns once they are
/// in the table.
pub struct PostgresLineWriter {
    tx: mpsc::SyncSender<Cmd>,
    line: Vec<u8>,
    table: String,
}

/// PostgreSQL's own message (the crate's `Display` says only "db error").
fn pg_err(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn qualified(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

struct Worker {
    client: ::postgres::Client,
    sql: String,
    key: Vec<String>,
    batch_size: usize,
    /// Rows of the batch, the last per key (one statement cannot update a row twice).
    rows: Vec<serde_json::Value>,
    index: HashMap<String, usize>,
}

impl Worker {
    fn connect(t: &PostgresTarget) -> Result<Worker, String> {
        let mut client = ::postgres::Client::connect(&t.url, ::postgres::NoTls).map_err(|e| format!("cannot connect to {}: {}", t.url, pg_err(&e)))?;
        let (schema, name) = match t.table.split_once('.') {
            Some((s, n)) => (Some(s.to_owned()), n.to_owned()),
            None => (None, t.table.clone()),
        };
        let rows = client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 AND table_schema = coalesce($2, current_schema()) ORDER BY ordinal_position",
                &[&name, &schema],
            )
            .map_err(|e| format!("cannot read the columns of {}: {}", t.table, pg_err(&e)))?;
        let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if columns.is_empty() {
            return Err(format!("table {} does not exist (or has no columns)", t.table));
        }
        if t.key.is_empty() {
            return Err("`key` needs at least one column".into());
        }
        for k in &t.key {
            if !columns.contains(k) {
                return Err(format!("key column '{k}' is not a column of {} ({})", t.table, columns.join(", ")));
            }
        }
        let updates: Vec<String> = columns.iter().filter(|c| !t.key.contains(c)).map(|c| format!("{} = EXCLUDED.{}", quote(c), quote(c))).collect();
        let table = qualified(&t.table);
        let conflict = t.key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
        let action = if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(", ")) };
        let sql = format!("INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::text::json) ON CONFLICT ({conflict}) DO {action}");
        // An empty batch is planned like a full one: fails now, with the server's words,
        // when no constraint matches the key.
        client.execute(&sql, &[&"[]"]).map_err(|e| format!("cannot prepare the upsert into {}: {}", t.table, pg_err(&e)))?;
        Ok(Worker { client, sql, key: t.key.clone(), batch_size: t.batch_size.max(1), rows: Vec::new(), index: HashMap::new() })
    }

    fn add(&mut self, row: serde_json::Value) -> Result<(), String> {
        let key = self.key.iter().map(|k| row.get(k).map_or("null".to_owned(), ToString::to_string)).collect::<Vec<_>>().join("\u{1}");
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
        if self.rows.len() >= self.batch_size { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let json = serde_json::Value::Array(std::mem::take(&mut self.rows)).to_string();
        self.index.clear();
        self.client.execute(&self.sql, &[&json]).map(|_| ()).map_err(|e| format!("upsert failed: {}", pg_err(&e)))
    }
}

impl PostgresLineWriter {
    /// Connect (on the writer's own thread) and check the table and key.
    pub fn new(t: &PostgresTarget) -> Result<Self, String> {
        let (tx, rx) = mpsc::sync_channel::<Cmd>(10_000);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let target = t.clone();
        std::thread::Builder::new()
            .name(format!("postgres-sink-{}", t.table))
            .spawn(move || {
                let mut worker = match Worker::connect(&target) {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut failed: Option<String> = None;
                for cmd in rx {
                    match cmd {
                        Cmd::Row(row) => {
                            if failed.is_none()
                                && let Err(e) = worker.add(row)
                            {
                                failed = Some(e);
                            }
                        }
                        Cmd::Flush(reply) => {
                            let r = match failed.take() {
                                Some(e) => Err(e),
                                None => worker.flush(),
                            };
                            let _ = reply.send(r);
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the PostgreSQL writer: {e}"))?;
        ready_rx.recv().map_err(|_| "the PostgreSQL writer stopped".to_owned())??;
        Ok(PostgresLineWriter { tx, line: Vec::new(), table: t.table.clone() })
    }

    fn gone(&self) -> std::io::Error {
        std::io::Error::other(format!("the writer of table {} stopped", self.table))
    }

    fn send(&self, line: &[u8]) -> std::io::Result<()> {
        let row: serde_json::Value = serde_json::from_slice(line)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| std::io::Error::other(format!("a record for table {} is not a JSON object: {}", self.table, String::from_utf8_lossy(line))))?;
        self.tx.send(Cmd::Row(row)).map_err(|_| self.gone())
    }
}

impl std::io::Write for PostgresLineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = std::mem::take(&mut self.line);
        let r = super::sink::split_lines(&mut line, buf, |l| self.send(l));
        self.line = line;
        r.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Cmd::Flush(reply)).map_err(|_| self.gone())?;
        answer.recv().map_err(|_| self.gone())?.map_err(|e| std::io::Error::other(format!("table {}: {e}", self.table)))
    }
}
