//! What in a job spec is secret, how it is shown, and where secret values come from.
//!
//! Secret values are Kafka (librdkafka) properties whose names are secret
//! ([`is_secret_property`]: `sasl.password`, `ssl.key.password`, `ssl.key.pem`,
//! `sasl.oauthbearer.client.secret`, … — librdkafka's list of sensitive properties and
//! any name with a credential word in it), the password in a connection string (a URL's
//! `user:PASSWORD@`, a `password=` query parameter, or a PostgreSQL `key=value` string's
//! `password=…`: [`mask_connection_string`]) and values of operator `config` fields whose
//! names are credential words (`password`, `token`, `secret_access_key`, …).
//!
//! Shown anywhere (the REST API, the web UI, logs, `savepoint inspect`), a spec is
//! [`redacted`] (each secret value replaced by [`MASK`], the structure kept) and free
//! text (exception messages, log lines, errors) is scrubbed with [`Secrets::scrub`].
//!
//! A secret value may instead be a *reference* ([`SecretRef`]), in Kafka's
//! config-provider syntax: `${env:NAME}` (an environment variable of the process that
//! runs the connector) or `${file:PATH}` (a file's content, its trailing newline
//! trimmed; relative to the spec's directory). A reference is no secret itself: it is
//! shown as written, and [`resolve`]d only by the connector that uses the value, when it
//! builds its client — never written back into the spec, records or snapshots.

use std::path::Path;

use serde_json::Value;

use crate::spec::{JobSpec, SinkSpec, SourceSpec};

mod references;

pub use references::{MAX_SECRET_FILE_BYTES, SecretError, SecretRef, anchor_references, has_reference, is_reference, references, resolve};

/// What a secret value is shown as.
pub const MASK: &str = "******";


/// Secret values shorter than this are masked in specs but not scrubbed from free text
/// (replacing every occurrence of one or two characters would garble every message).
pub const MIN_SCRUBBED_LEN: usize = 4;

/// librdkafka's sensitive properties (`_RK_SENSITIVE` in its `rdkafka_conf.c`) and the
/// Java client's secret ones.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.jaas.config",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.password",
    "sasl.username",
    "ssl.ca.pem",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.key",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl_key",
];

/// Words that make a field or property name a credential's.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private_key",
    "private.key",
    "privatekey",
    "api_key",
    "apikey",
    "api.key",
    "access_key",
    "session_key",
];

/// Whether a Kafka (librdkafka) property's value is secret, by its name.
pub fn is_secret_property(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PROPERTIES.contains(&lower.as_str()) || is_secret_key(&lower)
}

/// Whether a field name (of an operator's `config`, a URL's query) names a credential:
/// it contains `password`, `secret`, `token`, `api_key`, `private_key`, ….
pub fn is_secret_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// The range of `s` that is a secret in a connection string, each with whether it is a
/// password (as opposed to a query parameter of a secret name): a URL's
/// `scheme://user:PASSWORD@host`, a URL query's secret parameters (`?password=…`), and
/// a `key=value` string's `password='…'`. References (`${…}`) are skipped over as units.
fn secret_ranges(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    if let Some(scheme_end) = s.find("://") {
        let start = scheme_end + 3;
        // The authority: up to the first `/`, `?` or `#` outside a `${…}`.
        let bytes = s.as_bytes();
        let mut i = start;
        let mut at = None;
        while i < bytes.len() {
            match bytes[i] {
                b'$' if bytes.get(i + 1) == Some(&b'{') => match s[i..].find('}') {
                    Some(e) => i += e,
                    None => break,
                },
                b'/' | b'?' | b'#' => break,
                b'@' => at = Some(i),
                _ => {}
            }
            i += 1;
        }
        if let Some(at) = at
            && let Some(colon) = s[start..at].find(':')
            && start + colon + 1 < at
        {
            out.push(start + colon + 1..at);
        }
        if let Some(q) = s[i..].find('?').map(|q| i + q) {
            let query_end = s[q..].find('#').map_or(s.len(), |h| q + h);
            let mut pos = q + 1;
            for param in s[q + 1..query_end].split('&') {
                if let Some((k, v)) = param.split_once('=')
                    && is_secret_key(k)
                    && !v.is_empty()
                {
                    let vs = pos + k.len() + 1;
                    out.push(vs..vs + v.len());
                }
                pos += param.len() + 1;
            }
        }
        return out;
    }
    // libpq's `key=value` form: `host=h user=u password='p w'`.
    let mut pos = 0;
    while pos < s.len() {
        let Some(eq) = s[pos..].find('=').map(|e| pos + e) else { break };
        let key = s[pos..eq].trim();
        let vstart = eq + 1;
        let (vrange, next) = if s[vstart..].starts_with('\'') {
            // Up to the closing quote (a backslash escapes the next character).
            let mut escaped = false;
            let close = s[vstart + 1..].char_indices().find_map(|(off, c)| {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '\'') => return Some(vstart + 1 + off),
                    _ => {}
                }
                None
            });
            let j = close.unwrap_or(s.len());
            (vstart + 1..j, (j + 1).min(s.len()))
        } else {
            let end = s[vstart..].find(char::is_whitespace).map_or(s.len(), |w| vstart + w);
            (vstart..end, end)
        };
        let key = key.rsplit(char::is_whitespace).next().unwrap_or(key);
        if is_secret_key(key) && !vrange.is_empty() {
            out.push(vrange);
        }
        pos = next.max(vstart);
    }
    out
}

/// A connection string (a URL, a PostgreSQL `key=value` string) with its password and
/// secret query parameters replaced by [`MASK`]; a reference there is kept. Any other
/// text comes back as it is.
pub fn mask_connection_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for r in secret_ranges(s) {
        out.push_str(&s[last..r.start]);
        out.push_str(if is_reference(&s[r.clone()]) { &s[r.clone()] } else { MASK });
        last = r.end;
    }
    out.push_str(&s[last..]);
    out
}

/// The secret parts of a connection string as written (passwords, secret parameters).
pub fn connection_secrets(s: &str) -> Vec<&str> {
    secret_ranges(s).into_iter().map(|r| &s[r]).collect()
}

/// A value at a secret place: masked unless it is references only.
fn masked(v: &str) -> String {
    if is_reference(v) { v.to_owned() } else { MASK.to_owned() }
}

/// `config` (an operator's, or any JSON) with the values of credential-named fields
/// masked and passwords in connection strings masked, the structure kept.
fn redact_config(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if is_secret_property(k) {
                    mask_value(x);
                } else {
                    redact_config(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_config),
        Value::String(s) => *s = mask_connection_string(s),
        _ => {}
    }
}

/// Replace a secret value (a string, or anything nested) by [`MASK`]; `null` stays.
fn mask_value(v: &mut Value) {
    match v {
        Value::Null => {}
        Value::String(s) => *s = masked(s),
        _ => *v = Value::String(MASK.to_owned()),
    }
}

/// Any JSON (a spec as stored, a sink's transaction in a snapshot) with secrets masked:
/// the values of secret-named keys anywhere (Kafka's `sasl.password`, a config's
/// `api_key`…) and passwords inside connection strings. The structure is kept; a
/// reference stays as written.
pub fn redact_json(v: &Value) -> Value {
    let mut out = v.clone();
    redact_config(&mut out);
    out
}

/// `spec` with each secret value replaced by [`MASK`] (references kept): the secret
/// properties of Kafka sources and sinks, the passwords in PostgreSQL URLs, object
/// locations and the checkpoint location, and credential-named fields of operator
/// configs.
pub fn redacted(spec: &JobSpec) -> JobSpec {
    let mut spec = spec.clone();
    let props = |p: &mut std::collections::BTreeMap<String, String>| {
        for (k, v) in p.iter_mut() {
            *v = if is_secret_property(k) { masked(v) } else { mask_connection_string(v) };
        }
    };
    for s in &mut spec.sources {
        match s {
            SourceSpec::Kafka(k) => props(&mut k.properties),
            SourceSpec::Objects(o) => o.url = mask_connection_string(&o.url),
            SourceSpec::File(_) | SourceSpec::Generator(_) | SourceSpec::Nexmark(_) => {}
        }
    }
    for s in &mut spec.sinks {
        match s {
            SinkSpec::Kafka(k) => props(&mut k.properties),
            SinkSpec::Postgres(p) => p.url = mask_connection_string(&p.url),
            SinkSpec::Objects(o) => o.url = mask_connection_string(&o.url),
            SinkSpec::File(_) | SinkSpec::Stdout(_) | SinkSpec::Blackhole(_) => {}
        }
    }
    if let Some(dir) = spec.checkpoint.as_mut().and_then(|c| c.dir.as_mut()) {
        *dir = mask_connection_string(dir);
    }
    for op in &mut spec.operators {
        redact_config(&mut op.config);
    }
    spec
}

/// The references of `spec` that connectors resolve, each with its field
/// (`sources[0] (id 'in').properties.sasl.password`): in Kafka properties and the
/// PostgreSQL URL.
pub fn spec_references(spec: &JobSpec) -> Vec<(String, SecretRef)> {
    fn props(out: &mut Vec<(String, SecretRef)>, at: &str, p: &std::collections::BTreeMap<String, String>) {
        for (k, v) in p {
            out.extend(references(v).into_iter().map(|r| (format!("{at}.properties.{k}"), r)));
        }
    }
    let mut out = Vec::new();
    for (i, s) in spec.sources.iter().enumerate() {
        if let SourceSpec::Kafka(k) = s {
            props(&mut out, &format!("sources[{i}] (id '{}')", k.id), &k.properties);
        }
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        match s {
            SinkSpec::Kafka(k) => props(&mut out, &format!("sinks[{i}] (id '{}')", k.id), &k.properties),
            SinkSpec::Postgres(p) => out.extend(references(&p.url).into_iter().map(|r| (format!("sinks[{i}] (id '{}').url", p.id), r))),
            _ => {}
        }
    }
    out
}

/// A job's secret values, resolved where they are references (those that cannot be
/// resolved here are left out): what free text about the job is scrubbed of.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so a value containing another is replaced whole.
    values: Vec<String>,
}

impl Secrets {
    /// The secrets of `spec` (references resolved against `base_dir` where possible).
    pub fn of(spec: &JobSpec, base_dir: &Path) -> Self {
        match serde_json::to_value(spec) {
            Ok(v) => Self::of_json(&v, base_dir),
            Err(_) => Self::default(),
        }
    }

    /// The secrets of a spec (or any JSON) as stored: values of secret-named keys and
    /// passwords in connection strings, anywhere in it.
    pub fn of_json(spec: &Value, base_dir: &Path) -> Self {
        let mut found = Vec::new();
        collect(spec, &mut found, false);
        let mut values: Vec<String> = Vec::new();
        for (v, resolvable) in found {
            // Only references a connector resolves (client properties, connection
            // strings) — those a server checked at submit — are read here; any other is
            // text that nothing resolves, so it holds no secret to scrub.
            let resolved = match (has_reference(&v), resolvable) {
                (false, _) => Some(v),
                (true, true) => resolve(&v, base_dir, "").ok(),
                (true, false) => None,
            };
            if let Some(r) = resolved
                && r.chars().count() >= MIN_SCRUBBED_LEN
                && !values.contains(&r)
            {
                values.push(r);
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Secrets { values }
    }

    /// The secrets of a job graph's sources, operators and sinks (what a run knows of
    /// its spec).
    pub fn of_graph(graph: &crate::JobGraph) -> Self {
        let nodes: Vec<Value> = graph
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                crate::NodeKind::Source(s) => serde_json::to_value(s).ok(),
                crate::NodeKind::Sink(s) => serde_json::to_value(s).ok(),
                crate::NodeKind::Operator { spec, .. } => serde_json::to_value(spec).ok(),
            })
            .collect();
        Self::of_json(&Value::Array(nodes), &graph.base_dir)
    }

    /// The values (longest first).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every occurrence of a secret value replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }
}

/// Secret values (as written) anywhere in `v`, each with whether a connector resolves
/// it (a client property, or a password in a connection string); `in_properties` says
/// whether `v` is a connector's `properties` map.
fn collect(v: &Value, out: &mut Vec<(String, bool)>, in_properties: bool) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if is_secret_property(k) {
                    match x {
                        Value::String(s) => out.push((s.clone(), in_properties)),
                        Value::Null => {}
                        other => {
                            let mut scalars = Vec::new();
                            collect_scalars(other, &mut scalars);
                            out.extend(scalars.into_iter().map(|s| (s, false)));
                        }
                    }
                } else {
                    collect(x, out, k == "properties");
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect(x, out, false)),
        Value::String(s) => out.extend(connection_secrets(s).into_iter().map(|p| (p.to_owned(), true))),
        _ => {}
    }
}

/// Every string and number in `v` (a secret given as a structure).
fn collect_scalars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|x| collect_scalars(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_scalars(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;

    const SPEC: &str = concat!(
        "name: j\nsources:\n",
        "  - {id: k, type: kafka, bootstrap_servers: 'b:9092', topic: t, properties: {sasl.password: hunter2-secret-XYZ, sasl.mechanism: PLAIN, ssl.key.pem: PEMPEMPEM, linger.ms: '5'}}\n",
        "operators:\n  - {uid: o, plugin: p.wasm, inputs: [k], config: {api_key: key-123456, nested: {db_password: pw-654321}, plain: visible}}\n",
        "sinks:\n",
        "  - {id: p, type: postgres, url: 'postgres://user:pg-pass-777@db:5432/d?sslmode=disable', table: t, key: [k], inputs: [o]}\n",
        "  - {id: q, type: postgres, url: \"host=db user=u password='p w 888' dbname=d\", table: t, key: [k], inputs: [o]}\n",
        "  - {id: r, type: kafka, bootstrap_servers: 'b:9092', topic: t, properties: {sasl.password: '${env:RIVULET_SECRET_T1}'}, inputs: [o]}\n",
        "checkpoint: {dir: 's3://bucket/cp'}\n",
    );

    fn spec() -> JobSpec {
        JobSpec::parse(SPEC, "t", &Params::default()).expect("spec")
    }

    #[test]
    fn secrets_are_masked_and_the_structure_kept() {
        let r = redacted(&spec());
        let SourceSpec::Kafka(k) = &r.sources[0] else { panic!("kafka") };
        assert_eq!(k.properties["sasl.password"], MASK);
        assert_eq!(k.properties["ssl.key.pem"], MASK);
        assert_eq!(k.properties["sasl.mechanism"], "PLAIN");
        assert_eq!(k.properties["linger.ms"], "5");
        let SinkSpec::Postgres(p) = &r.sinks[0] else { panic!("postgres") };
        assert_eq!(p.url, "postgres://user:******@db:5432/d?sslmode=disable");
        let SinkSpec::Postgres(q) = &r.sinks[1] else { panic!("postgres") };
        assert_eq!(q.url, "host=db user=u password='******' dbname=d");
        let SinkSpec::Kafka(k) = &r.sinks[2] else { panic!("kafka") };
        assert_eq!(k.properties["sasl.password"], "${env:RIVULET_SECRET_T1}", "a reference is shown");
        assert_eq!(r.operators[0].config["api_key"], MASK);
        assert_eq!(r.operators[0].config["nested"]["db_password"], MASK);
        assert_eq!(r.operators[0].config["plain"], "visible");
        let text = serde_json::to_string(&r).expect("json");
        for secret in ["hunter2-secret-XYZ", "PEMPEMPEM", "pg-pass-777", "p w 888", "key-123456", "pw-654321"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The JSON form masks the same.
        let json = serde_json::to_value(spec()).expect("json");
        assert_eq!(redact_json(&json), serde_json::to_value(&r).expect("json"));
    }

    #[test]
    fn connection_strings_lose_only_their_passwords() {
        assert_eq!(mask_connection_string("postgres://u:p@h/d"), "postgres://u:******@h/d");
        assert_eq!(mask_connection_string("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            mask_connection_string("postgres://h/d?user=u&password=x1&sslmode=require"),
            "postgres://h/d?user=u&password=******&sslmode=require"
        );
        assert_eq!(mask_connection_string("postgres://u:${file:/run/pw/db}@h/d"), "postgres://u:${file:/run/pw/db}@h/d");
        assert_eq!(mask_connection_string("host=h password=abc user=u"), "host=h password=****** user=u");
        assert_eq!(mask_connection_string("s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(mask_connection_string("just text, a=b"), "just text, a=b");
        assert_eq!(mask_connection_string("kafka://b:9092/t"), "kafka://b:9092/t");
        assert_eq!(mask_connection_string("password='a\\'é' host=h"), "password='******' host=h");
        // Whatever a user writes, masking never panics.
        for s in ["password='\\é", "x://é@", "a=é'", "x://u:${", "postgres://u:p@", "=", "'", "password=", "x://?password=&token=é"] {
            let _ = (mask_connection_string(s), connection_secrets(s));
        }
    }

    #[test]
    fn free_text_is_scrubbed_of_the_jobs_secret_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Secrets::of(&spec(), dir.path());
        let text = "sink 'p': cannot connect to postgres://user:pg-pass-777@db:5432/d: refused; sasl hunter2-secret-XYZ; 'p w 888'";
        let scrubbed = s.scrub(text);
        assert_eq!(scrubbed, "sink 'p': cannot connect to postgres://user:******@db:5432/d: refused; sasl ******; '******'");
        assert!(s.values().iter().any(|v| v == "key-123456"));
        assert!(!s.values().iter().any(|v| v == "PLAIN" || v == "visible"));
    }

    #[test]
    fn references_resolve_from_files_and_the_environment_with_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "from-a-file\n").expect("write");
        assert_eq!(resolve("${file:pw}", dir.path(), "f").expect("file"), "from-a-file");
        let abs = dir.path().join("pw").display().to_string();
        assert_eq!(resolve(&format!("postgres://u:${{file:{abs}}}@h/d"), Path::new("/nowhere"), "f").expect("file"), "postgres://u:from-a-file@h/d");
        assert_eq!(resolve("plain", dir.path(), "f").expect("plain"), "plain");
        // PATH is set in every test process; its value must not be in the error of another.
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(resolve("${env:PATH}", dir.path(), "f").expect("env"), path);
        let e = resolve("${env:RIVULET_SECRET_SURELY_UNSET_9}", dir.path(), "sinks[0] (id 'k').properties.sasl.password").expect_err("unset");
        let m = e.to_string();
        assert!(m.contains("RIVULET_SECRET_SURELY_UNSET_9") && m.contains("sasl.password"), "{m}");
        let e = resolve("${file:missing}", dir.path(), "sinks[0].url").expect_err("missing");
        assert!(e.to_string().contains("missing") && e.to_string().contains("sinks[0].url"), "{e}");
        let e = resolve("${file:.}", dir.path(), "x").expect_err("a directory");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::write(dir.path().join("big"), vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).expect("write");
        assert!(resolve("${file:big}", dir.path(), "x").expect_err("big").to_string().contains("larger than"));
        assert!(matches!(resolve("${env:X", dir.path(), "x"), Err(SecretError::Malformed { .. })));
        assert_eq!(anchor_references("${file:pw}", Path::new("/base")), "${file:/base/pw}");
        assert_eq!(anchor_references("${env:A}", Path::new("/base")), "${env:A}");
        assert!(is_reference("${env:A}${file:b}") && !is_reference("x${env:A}") && !is_reference(""));
    }

    #[test]
    fn params_leave_secret_references_alone() {
        let p = Params::new([("t".to_owned(), "topic".to_owned())].into_iter().collect());
        let yaml = "name: j\nsources:\n  - {id: k, type: kafka, bootstrap_servers: 'b:1', topic: '${t}', properties: {sasl.password: '${env:PW}', ssl.key.pem: '${file:k.pem}', x: 'a${env:B}c'}}\nsinks: []\n";
        let spec = JobSpec::parse(yaml, "t", &p).expect("no param named env:PW is needed");
        let SourceSpec::Kafka(k) = &spec.sources[0] else { panic!("kafka") };
        assert_eq!(k.topic, "topic");
        assert_eq!(k.properties["sasl.password"], "${env:PW}");
        assert_eq!(k.properties["ssl.key.pem"], "${file:k.pem}");
        assert_eq!(k.properties["x"], "a${env:B}c");
        let refs = spec_references(&spec);
        assert_eq!(refs[0], ("sources[0] (id 'k').properties.sasl.password".to_owned(), SecretRef::Env("PW".into())));
        assert_eq!(refs[1], ("sources[0] (id 'k').properties.ssl.key.pem".to_owned(), SecretRef::File("k.pem".into())));
    }
}
