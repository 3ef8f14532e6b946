//! Kafka's `bootstrap.servers` list, parsed the way librdkafka reads it — entries split
//! at commas, each `[PROTOCOL://]HOST[:PORT]` with the default port 9092 — but strictly:
//! whatever librdkafka would silently ignore or guess (a path after the address, an
//! empty host, trailing characters after the port, an unknown protocol) is refused, so
//! that what is checked against a server's `--allow-connect` is exactly where the
//! client connects.

/// The port librdkafka connects to when an entry names none.
pub(crate) const DEFAULT_PORT: u16 = 9092;

/// The security protocols librdkafka accepts before `://`, compared without case.
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// One broker address of a bootstrap list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broker {
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// The port (9092 when the entry names none).
    pub port: u16,
}

/// Parse `list`; the first entry that does not parse is an error naming it.
pub(crate) fn parse_bootstrap(list: &str) -> Result<Vec<Broker>, String> {
    let brokers: Vec<Broker> = list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(parse_entry).collect::<Result<_, _>>()?;
    if brokers.is_empty() {
        return Err("no broker address".into());
    }
    Ok(brokers)
}

fn parse_entry(entry: &str) -> Result<Broker, String> {
    let bad = |why: &str| format!("'{entry}' is not [PROTOCOL://]HOST[:PORT]: {why}");
    let address = match entry.split_once("://") {
        Some((proto, rest)) => {
            if !PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(proto)) {
                return Err(bad(&format!("unknown protocol '{proto}' (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")));
            }
            rest
        }
        None => entry,
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| bad("an IPv6 address without its closing ']'"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(&format!("'{v6}' is not an IPv6 address")));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("characters after the address"))?),
        };
        (v6, port)
    } else {
        match address.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !address.starts_with('[') && !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return Err(bad(&format!("'{host}' is not a host name or address")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(|| bad(&format!("'{p}' is not a port")))?
        }
        Some(p) => return Err(bad(&format!("'{p}' is not a port"))),
    };
    Ok(Broker { host: host.to_owned(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(host: &str, port: u16) -> Broker {
        Broker { host: host.into(), port }
    }

    #[test]
    fn entries_parse_as_librdkafka_reads_them() {
        assert_eq!(parse_bootstrap("a:9092, b.example.com:1,[::1]:5").expect("list"), vec![b("a", 9092), b("b.example.com", 1), b("::1", 5)]);
        assert_eq!(parse_bootstrap("kafka").expect("no port"), vec![b("kafka", DEFAULT_PORT)]);
        assert_eq!(parse_bootstrap("sasl_ssl://k1:9093,PLAINTEXT://k2").expect("protocols"), vec![b("k1", 9093), b("k2", DEFAULT_PORT)]);
        assert_eq!(parse_bootstrap("[fe80::1]").expect("v6 without port"), vec![b("fe80::1", DEFAULT_PORT)]);
    }

    /// What librdkafka would connect to somewhere other than what a pattern check sees
    /// (or guess at) is refused.
    #[test]
    fn anything_after_the_address_or_a_guessed_part_is_refused() {
        for bad in [
            "PLAINTEXT://127.0.0.1:9093/x.localtest",
            "127.0.0.1:9093/x.localtest",
            "127.0.0.1:9093x",
            "host:",
            ":9092",
            "user@host:9092",
            "::1",
            "[::1]x",
            "[nothost]:1",
            "http://host:80",
            "://host",
            "host:0",
            "host:99999",
            "h ost:1",
            "",
        ] {
            assert!(parse_bootstrap(bad).is_err(), "{bad} parsed");
        }
    }
}
