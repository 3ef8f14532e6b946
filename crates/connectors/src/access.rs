//! What a connector touches outside the process, as its spec says: files it reads,
//! directories it writes, object-store locations, hosts it connects to and client
//! properties it hands to a library. A server checks these against what its operator
//! allows before it runs a job a client sent; each connector states its own.

/// One thing a connector touches, with the spec field that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessed {
    /// The spec field (e.g. `sources[0] (id 'in').path`).
    pub at: String,
    /// What it touches.
    pub access: Access,
}

/// What a connector touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Reads the file at this path (relative to the job's base directory).
    ReadFile(String),
    /// Creates and writes files below this directory.
    WriteDir(String),
    /// Reads (or, with `writes`, writes) objects at a location: a local directory,
    /// `file://…`, or `s3://…` (whose endpoint and credentials the process's
    /// environment sets, not the spec).
    Location {
        /// The location as written.
        url: String,
        /// Whether objects are written there.
        writes: bool,
    },
    /// Opens network connections to this host (and port, if the spec names one).
    Connect {
        /// Host name or address, as written.
        host: String,
        /// Port.
        port: Option<u16>,
    },
    /// Connects somewhere the spec does not state in a form that can be checked
    /// (a Unix socket, hosts hidden in options): `why` says what.
    UncheckableEndpoint(String),
    /// Hands this property to a client library; `safe` when it neither loads code,
    /// runs commands, reads files nor changes where the client connects.
    ClientProperty {
        /// Property name.
        key: String,
        /// Whether it is on the connector's list of harmless properties.
        safe: bool,
    },
}

/// `host:port[,host:port…]` (Kafka's bootstrap list) as connections.
pub(crate) fn host_port_list(list: &str) -> Vec<Access> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(host_port).collect()
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address as a connection.
fn host_port(s: &str) -> Access {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Access::Connect { host: host.to_owned(), port };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => Access::Connect { host: host.to_owned(), port: Some(p) },
            Err(_) => Access::UncheckableEndpoint(format!("'{s}' has no valid port")),
        },
        _ => Access::Connect { host: s.to_owned(), port: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_split_into_hosts_and_ports() {
        assert_eq!(
            host_port_list("a:9092, b.example.com:1,[::1]:5"),
            vec![
                Access::Connect { host: "a".into(), port: Some(9092) },
                Access::Connect { host: "b.example.com".into(), port: Some(1) },
                Access::Connect { host: "::1".into(), port: Some(5) },
            ]
        );
        assert_eq!(host_port("h"), Access::Connect { host: "h".into(), port: None });
        assert!(matches!(host_port("h:x"), Access::UncheckableEndpoint(_)));
    }
}
