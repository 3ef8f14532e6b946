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
//! each flush. Each record's value is one row: records, not lines.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};

use rivulet_checkpoint::{Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::{Barrier, Batch, NodeRole, blocking};
use rivulet_job::PostgresSinkSpec;

use crate::BoxFuture;
use crate::access::Access;
use crate::error::ConnectorError;
use crate::sink::{Sink, SinkConnector};

/// The hosts a PostgreSQL sink connects to, as its URL (or `key=value` string) says,
/// entry by entry as the client pairs them: the i-th `hostaddr` (else the i-th `host`)
/// with the i-th port (or the only port, or 5432). A Unix socket, lists of different
/// lengths or an unparsable URL cannot be checked.
pub(crate) fn sink_accesses(spec: &PostgresSinkSpec) -> Vec<(&'static str, Access)> {
    let config: postgres::Config = match spec.url.parse() {
        Ok(c) => c,
        Err(e) => return vec![("url", Access::UncheckableEndpoint(format!("the URL does not parse: {e}")))],
    };
    let (hosts, addrs, ports) = (config.get_hosts(), config.get_hostaddrs(), config.get_ports());
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return vec![("url", Access::UncheckableEndpoint(format!("{} hosts but {} hostaddrs", hosts.len(), addrs.len())))];
    }
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return vec![("url", Access::UncheckableEndpoint("no host".into()))];
    }
    if ports.len() > 1 && ports.len() != n {
        return vec![("url", Access::UncheckableEndpoint(format!("{n} hosts but {} ports", ports.len())))];
    }
    (0..n)
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().or(Some(5432));
            let access = match (addrs.get(i), hosts.get(i)) {
                (Some(addr), _) => Access::Connect { host: addr.to_string(), port },
                (None, Some(postgres::config::Host::Tcp(h))) => Access::Connect { host: h.clone(), port },
                #[cfg(unix)]
                (None, Some(postgres::config::Host::Unix(p))) => Access::UncheckableEndpoint(format!("a Unix socket ({})", p.display())),
                (None, None) => Access::UncheckableEndpoint("no host".into()),
            };
            ("url", access)
        })
        .collect()
}

/// The hosts, addresses and ports a connection string names, if it parses.
fn endpoints(url: &str) -> Option<(Vec<String>, Vec<String>, Vec<u16>)> {
    let c: postgres::Config = url.parse().ok()?;
    Some((
        c.get_hosts().iter().map(|h| format!("{h:?}")).collect(),
        c.get_hostaddrs().iter().map(ToString::to_string).collect(),
        c.get_ports().to_vec(),
    ))
}

/// Where rows go.
#[derive(Debug, Clone)]
struct PostgresTarget {
    /// `postgres://user[:password]@host:port/db`, its secret references unresolved
    /// (shown only through `mask_connection_string`).
    url: String,
    /// Table (optionally `schema.table`).
    table: String,
    /// Key columns (a primary key or unique constraint on them must exist).
    key: Vec<String>,
    /// Rows per statement.
    batch_size: usize,
}

/// `type: postgres` sinks.
pub(crate) struct PostgresConnector {
    id: String,
    target: PostgresTarget,
}

impl PostgresConnector {
    pub(crate) fn new(spec: &PostgresSinkSpec, cx: &crate::ConnectorContext) -> Self {
        // A secret reference in the URL stays one until the writer connects.
        let url = rivulet_job::secrets::anchor_references(&spec.url, &cx.base_dir);
        let target = PostgresTarget { url, table: spec.table.clone(), key: spec.key.clone(), batch_size: spec.batch_size.unwrap_or(500) };
        PostgresConnector { id: spec.id.clone(), target }
    }
}

impl SinkConnector for PostgresConnector {
    fn prepare<'a>(&'a self, _restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        // Idempotent upserts flushed at barriers: nothing to commit afterwards.
        None
    }

    fn open(&self, _subtask: u32, _restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        let writer = blocking(|| PostgresWriter::new(&self.target)).map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, e.to_string()))?;
        Ok(Box::new(PostgresSink { id: self.id.clone(), writer }))
    }
}

/// Why the PostgreSQL writer failed, in PostgreSQL's own words where it has them.
#[derive(Debug, Clone, thiserror::Error)]
enum PostgresError {
    #[error("{0}")]
    Server(String),
    #[error("the writer of table {0} stopped")]
    Gone(String),
    #[error("a record for table {table} is not a JSON object: {value}")]
    NotAnObject { table: String, value: String },
}

/// Each record's value becomes an upserted row.
struct PostgresSink {
    id: String,
    writer: PostgresWriter,
}

impl PostgresSink {
    fn flush(&mut self) -> Result<SinkTransaction, ConnectorError> {
        self.writer.flush().map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, format!("flush failed: {e}")))?;
        Ok(SinkTransaction::none())
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for r in batch.records() {
            let r = r.map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, e.to_string()))?;
            self.writer.send(r.value).map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, format!("write failed: {e}")))?;
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _barrier: Barrier, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        // Everything before the barrier is in the table before the sink acks it.
        self.flush()
    }

    fn finish(&mut self, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.flush()
    }
}

enum Cmd {
    Row(serde_json::Value),
    Flush(mpsc::Sender<Result<(), String>>),
}

/// Rows sent to it are upserted by its thread; `flush` returns once they are in the table.
struct PostgresWriter {
    tx: mpsc::SyncSender<Cmd>,
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
        let shown = rivulet_job::secrets::mask_connection_string(&t.url);
        let url = rivulet_job::secrets::resolve(&t.url, std::path::Path::new("/"), "url").map_err(|e| e.to_string())?;
        if rivulet_job::secrets::has_reference(&t.url) && endpoints(&t.url).is_none_or(|checked| endpoints(&url) != Some(checked)) {
            // What a secret holds must not add or change hosts, addresses or ports: the
            // URL was checked (against a server's --allow-connect) without it.
            return Err(format!(
                "{shown}: a secret reference changes where the URL connects (or the URL cannot be checked); references may hold only a password"
            ));
        }
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).map_err(|e| format!("cannot connect to {shown}: {}", pg_err(&e)))?;
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
        let sql =
            format!("INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::text::json) ON CONFLICT ({conflict}) DO {action}");
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

impl PostgresWriter {
    /// Connect (on the writer's own thread) and check the table and key.
    fn new(t: &PostgresTarget) -> Result<Self, PostgresError> {
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
            .map_err(|e| PostgresError::Server(format!("cannot start the PostgreSQL writer: {e}")))?;
        ready_rx.recv().map_err(|_| PostgresError::Gone(t.table.clone()))?.map_err(PostgresError::Server)?;
        Ok(PostgresWriter { tx, table: t.table.clone() })
    }

    fn gone(&self) -> PostgresError {
        PostgresError::Gone(self.table.clone())
    }

    /// Send one row (a JSON object).
    fn send(&self, value: &[u8]) -> Result<(), PostgresError> {
        let row: serde_json::Value = serde_json::from_slice(value)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| PostgresError::NotAnObject { table: self.table.clone(), value: String::from_utf8_lossy(value).into_owned() })?;
        self.tx.send(Cmd::Row(row)).map_err(|_| self.gone())
    }

    /// Wait until every row sent is in the table.
    fn flush(&self) -> Result<(), PostgresError> {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Cmd::Flush(reply)).map_err(|_| self.gone())?;
        answer.recv().map_err(|_| self.gone())?.map_err(|e| PostgresError::Server(format!("table {}: {e}", self.table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a secret reference holds cannot add a host or change where the URL connects:
    /// the endpoints before and after resolving differ, so the connection is refused.
    #[test]
    fn a_secret_reference_cannot_move_the_connection() {
        let checked = endpoints("host=a.db.example port=5432 user=u password=${file:pw}");
        assert!(checked.is_some());
        assert_ne!(checked, endpoints("host=a.db.example port=5432 user=u password=x hostaddr=10.0.0.66"));
        assert_ne!(endpoints("postgres://u:${file:pw}@a.db.example/d"), endpoints("postgres://u:x@evil:22/d?application_name=@a.db.example/d"));
        assert_eq!(endpoints("postgres://u:${file:pw}@a.db.example/d"), endpoints("postgres://u:s3cret@a.db.example/d"));
    }
}
