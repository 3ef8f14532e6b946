//! The command-line client of `rivulet server`: `rivulet plugin upload|list` and
//! `rivulet job submit|list|status|savepoint|stop|upgrade|rescale`, printing readable
//! tables or (`--json`) the server's JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// Where the server is and how to talk to it.
#[derive(Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "RIVULET_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// Bearer token (prefer --token-file or RIVULET_TOKEN: arguments show in `ps`).
    #[arg(long, env = "RIVULET_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, env = "RIVULET_TOKEN_FILE", global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in this PEM file (instead of the system's) for an
    /// `https://` server: a private CA or a self-signed server certificate.
    #[arg(long, env = "RIVULET_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl std::fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("ca_cert", &self.ca_cert)
            .field("json", &self.json)
            .finish()
    }
}

/// `rivulet job …`.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Submit a job spec (plugins referenced as `name@version`).
    Submit {
        /// The spec (YAML or JSON).
        spec: PathBuf,
        /// Fill `${NAME}` in the spec (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Start from a savepoint.
        #[arg(long)]
        savepoint: Option<String>,
        /// Drop state of operators the job does not have.
        #[arg(long)]
        allow_non_restored_state: bool,
        /// Parallelism of operators.
        #[arg(long)]
        parallelism: Option<u32>,
        /// `memory` or `rocksdb`.
        #[arg(long)]
        state_backend: Option<String>,
    },
    /// List jobs.
    List,
    /// A job's status and operators.
    Status {
        /// Job id.
        id: String,
    },
    /// Take a savepoint (waits for it).
    Savepoint {
        /// Job id.
        id: String,
    },
    /// Stop a job.
    Stop {
        /// Job id.
        id: String,
        /// Drain, savepoint and commit first.
        #[arg(long)]
        savepoint: bool,
    },
    /// Swap operator plugins through a savepoint (rolls back when the new version fails).
    Upgrade {
        /// Job id.
        id: String,
        /// `UID=NAME@VERSION` (repeatable).
        #[arg(long = "plugin", value_name = "UID=NAME@VERSION")]
        plugins: Vec<String>,
        /// A new parallelism too.
        #[arg(long)]
        parallelism: Option<u32>,
    },
    /// Change a job's parallelism through a savepoint.
    Rescale {
        /// Job id.
        id: String,
        /// New parallelism.
        parallelism: u32,
    },
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(args: &ServerArgs) -> Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(900)))
            .tls_config(tls_config(args.ca_cert.as_deref())?)
            .build()
            .into();
        let token = match &args.token_file {
            Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("reading the token file {}", f.display()))?.trim().to_owned()),
            None => args.token.clone(),
        };
        Ok(Client { base: args.server.trim_end_matches('/').to_owned(), token, agent })
    }

    fn call(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let (ctype, bytes) = body.unwrap_or(("application/json", b"{}".to_vec()));
                r.header("Content-Type", ctype).send(&bytes[..])
            }
        };
        let mut resp = result.map_err(|e| unreachable_server(e, &self.base))?;
        let status = resp.status();
        let text = resp.body_mut().with_config().limit(64 << 20).read_to_string().context("reading the server's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = value.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: {status}: {msg}");
        }
        Ok(value)
    }
}

/// TLS for `https://` servers: rustls with the `ring` provider (as the server's), trusting
/// the CA certificates of `ca_cert` when given, else the system's trust store.
fn tls_config(ca_cert: Option<&Path>) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let roots = match ca_cert {
        None => RootCerts::PlatformVerifier,
        Some(file) => {
            let pem = std::fs::read(file).with_context(|| format!("reading the CA certificate {}", file.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let PemItem::Certificate(c) = item.with_context(|| format!("the CA certificate {}", file.display()))? {
                    certs.push(c);
                }
            }
            if certs.is_empty() {
                bail!("the CA certificate {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file.display());
            }
            RootCerts::new_with_certs(&certs)
        }
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(roots)
        .build())
}

/// Why a request got no answer, with a hint when the server's certificate is not trusted.
fn unreachable_server(e: ureq::Error, base: &str) -> anyhow::Error {
    // rustls' verdict comes as such, or inside the I/O error of the handshake.
    let tls = match &e {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(tls @ rustls::Error::InvalidCertificate(why)) = tls {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        if matches!(why, NotValidForName | NotValidForNameContext { .. }) {
            return anyhow::anyhow!("cannot reach the server at {base}: its TLS certificate does not name this host ({tls})");
        }
        return anyhow::anyhow!(
            "cannot reach the server at {base}: its TLS certificate is not trusted ({tls}): pass --ca-cert FILE \
             (or RIVULET_CA_CERT) with the CA certificate that signed it"
        );
    }
    anyhow::Error::new(e).context(format!("cannot reach the server at {base}"))
}

fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn versions(v: &Value) -> String {
    v.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

fn plugin_versions(plugins: &Value) -> String {
    plugins
        .as_object()
        .map(|m| m.iter().map(|(k, p)| format!("{k}={}@{}", s(&p["name"]), s(&p["version"]))).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// `rivulet plugin upload`.
pub fn plugin_upload(args: &ServerArgs, file: &std::path::Path, name: Option<String>, version: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = name.unwrap_or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into()));
    let path = format!("/v1/plugins?name={}&version={}", urlencode(&name), urlencode(version));
    let v = Client::new(args)?.call("POST", &path, Some(("application/wasm", bytes)))?;
    if args.json {
        println!("{v:#}");
    } else {
        println!("registered {}@{} {} ({} bytes, WIT {})", s(&v["name"]), s(&v["version"]), s(&v["digest"]), s(&v["size"]), s(&v["wit_version"]));
    }
    Ok(())
}

/// `rivulet plugin list`.
pub fn plugin_list(args: &ServerArgs) -> Result<()> {
    let v = Client::new(args)?.call("GET", "/v1/plugins", None)?;
    if args.json {
        println!("{v:#}");
        return Ok(());
    }
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| vec![s(&p["name"]), s(&p["version"]), s(&p["digest"]).chars().take(19).collect(), s(&p["size"]), s(&p["wit_version"])])
                .collect()
        })
        .unwrap_or_default();
    print_table(&["name", "version", "digest", "bytes", "wit"], rows);
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `rivulet job …`.
pub fn job(args: &ServerArgs, cmd: JobCommand) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        JobCommand::Submit { spec, params, savepoint, allow_non_restored_state, parallelism, state_backend } => {
            let text = std::fs::read_to_string(&spec).with_context(|| format!("reading {}", spec.display()))?;
            let mut p = BTreeMap::new();
            for kv in &params {
                let Some((k, v)) = kv.split_once('=') else { bail!("--param {kv:?}: expected NAME=VALUE") };
                p.insert(k.to_owned(), v.to_owned());
            }
            let body = json!({"spec": text, "params": p, "savepoint": savepoint, "allow_non_restored_state": allow_non_restored_state,
                "parallelism": parallelism, "state_backend": state_backend});
            let v = c.call("POST", "/v1/jobs", Some(("application/json", body.to_string().into_bytes())))?;
            if args.json {
                println!("{v:#}");
            } else {
                println!("{}", s(&v["id"]));
            }
        }
        JobCommand::List => {
            let v = c.call("GET", "/v1/jobs", None)?;
            if args.json {
                println!("{v:#}");
                return Ok(());
            }
            let rows = v
                .as_array()
                .map(|a| a.iter().map(|j| vec![s(&j["id"]), s(&j["name"]), s(&j["status"]), plugin_versions(&j["plugins"])]).collect())
                .unwrap_or_default();
            print_table(&["id", "name", "status", "plugins"], rows);
        }
        JobCommand::Status { id } => {
            let v = c.call("GET", &format!("/v1/jobs/{id}"), None)?;
            if args.json {
                println!("{v:#}");
                return Ok(());
            }
            println!(
                "job {} ({}) — {}, attempt {}, up {:.1}s",
                s(&v["id"]),
                s(&v["name"]),
                s(&v["status"]),
                s(&v["attempt"]),
                v["uptime_s"].as_f64().unwrap_or(0.0)
            );
            if let Some(ck) = v.get("last_checkpoint").filter(|c| !c.is_null()) {
                println!("last snapshot: {} {} ({} bytes, {} ms)", s(&ck["kind"]), s(&ck["id"]), s(&ck["bytes"]), s(&ck["duration_ms"]));
            }
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                println!("error: {}", s(e));
            }
            let rows = v["nodes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| {
                            vec![
                                s(&n["id"]),
                                s(&n["kind"]),
                                s(&n["parallelism"]),
                                s(&n["plugin"]),
                                s(&n["records_in"]),
                                s(&n["records_out"]),
                                s(&n["watermark"]),
                                format!("{:.0}%", n["backpressure"].as_f64().unwrap_or(0.0) * 100.0),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print_table(&["node", "kind", "par", "plugin", "in", "out", "watermark", "backpressure"], rows);
        }
        JobCommand::Savepoint { id } => {
            let v = c.call("POST", &format!("/v1/jobs/{id}/savepoints"), None)?;
            let trigger = s(&v["trigger"]);
            let deadline = std::time::Instant::now() + Duration::from_secs(3600);
            let done = loop {
                let v = c.call("GET", &format!("/v1/jobs/{id}/savepoints/{trigger}"), None)?;
                if v["status"] != "in_progress" {
                    break v;
                }
                if std::time::Instant::now() > deadline {
                    bail!("savepoint {trigger} of job {id} is still in progress after an hour");
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if args.json {
                println!("{done:#}");
            } else if done["status"] == "completed" {
                println!("{}", s(&done["location"]));
            } else {
                bail!("savepoint failed: {}", s(&done["error"]));
            }
        }
        JobCommand::Stop { id, savepoint } => {
            let body = json!({"savepoint": savepoint}).to_string().into_bytes();
            let v = c.call("POST", &format!("/v1/jobs/{id}/stop"), Some(("application/json", body)))?;
            if args.json {
                println!("{v:#}");
            } else {
                let sp = v["history"].as_array().and_then(|h| h.last()).map(|e| s(&e["savepoint"])).unwrap_or_default();
                println!("job {id} {}{}", s(&v["status"]), if savepoint { format!(" with savepoint {sp}") } else { String::new() });
            }
        }
        JobCommand::Upgrade { id, plugins, parallelism } => {
            let mut map = BTreeMap::new();
            for p in &plugins {
                let Some((uid, r)) = p.split_once('=') else { bail!("--plugin {p:?}: expected UID=NAME@VERSION") };
                map.insert(uid.to_owned(), r.to_owned());
            }
            let body = json!({"plugins": map, "parallelism": parallelism}).to_string().into_bytes();
            let v = c.call("POST", &format!("/v1/jobs/{id}/upgrade"), Some(("application/json", body)))?;
            print_upgrade(args, &v);
        }
        JobCommand::Rescale { id, parallelism } => {
            let body = json!({"parallelism": parallelism}).to_string().into_bytes();
            let v = c.call("POST", &format!("/v1/jobs/{id}/rescale"), Some(("application/json", body)))?;
            print_upgrade(args, &v);
        }
    }
    Ok(())
}

fn print_upgrade(args: &ServerArgs, v: &Value) {
    if args.json {
        println!("{v:#}");
        return;
    }
    println!(
        "{}: {} → {} (savepoint {}, downtime {} ms)",
        s(&v["result"]),
        versions(&v["from_versions"]),
        versions(&v["versions"]),
        s(&v["savepoint"]),
        s(&v["downtime_ms"])
    );
    if let Some(r) = v.get("rollback_reason").filter(|r| !r.is_null()) {
        println!("rolled back because: {}", s(r));
    }
}
