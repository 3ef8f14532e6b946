//! The REST API over TLS: `rivulet server --tls-cert FILE --tls-key FILE` serves the API
//! and the web UI over `https://`; the CLI reaches it with `--ca-cert` (or
//! `RIVULET_CA_CERT`) and refuses a certificate it does not trust; plain HTTP to the TLS
//! port gets no answer; bad TLS flags stop the server with an error naming the file.
//!
//! Certificates are made by `openssl` (as scripts/cluster-certs.sh does): a CA, a server
//! certificate it signs for 127.0.0.1, and a second, unrelated CA.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fault::rivulet;

/// A CA and a server certificate for 127.0.0.1 it signs, and an unrelated CA.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn make_ca(dir: &Path, name: &str) {
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.key")]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "30",
            "-subj",
            &format!("/CN=rivulet test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn certs(dir: &Path) -> Certs {
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key"]);
    openssl(dir, &["req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
    )
    .expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
    );
    Certs { ca: dir.join("ca.crt"), cert: dir.join("server.crt"), key: dir.join("server.key"), other_ca: dir.join("other-ca.crt") }
}

/// A `rivulet server` over TLS on 127.0.0.1; killed on drop.
struct TlsServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl TlsServer {
    fn start(dir: &Path, certs: &Certs) -> TlsServer {
        let data = dir.join("data");
        let log = dir.join("server.log");
        let child = rivulet()
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--tls-cert")
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start rivulet server");
        let mut srv = TlsServer { child, url: String::new(), log };
        srv.url = crate::server::listening_url(&mut srv.child, &srv.log, Duration::from_secs(60));
        assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
        srv
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client trusting only the CA certificate in `ca` (rustls with ring).
fn agent(ca: &Path) -> ureq::Agent {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let pem = std::fs::read(ca).expect("the CA file");
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item.expect("PEM") {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(30))).tls_config(tls).build().into()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut resp = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("the body");
    (status, text)
}

/// Run the CLI against the server.
fn cli(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = rivulet();
    cmd.args(args).env_remove("RIVULET_SERVER").env_remove("RIVULET_CA_CERT").env_remove("RIVULET_TOKEN").env_remove("RIVULET_TOKEN_FILE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run rivulet")
}

#[test]
fn the_api_the_cli_and_the_web_ui_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = certs(dir.path());
    let srv = TlsServer::start(dir.path(), &certs);
    let agent = agent(&certs.ca);

    // /healthz and the web UI's page over https, the CA trusted.
    let (status, health) = get(&agent, &format!("{}/healthz", srv.url));
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"version\""), "{health}");
    let (status, page) = get(&agent, &format!("{}/", srv.url));
    assert_eq!(status, 200);
    assert!(page.contains("<title>Rivulet</title>"), "{page}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", srv.port())).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered: {:?}", String::from_utf8_lossy(&answer));
    let http_url = srv.url.replacen("https://", "http://", 1);
    assert!(ureq::get(&format!("{http_url}/healthz")).call().is_err(), "plain http:// to the TLS port must fail");

    // The CLI over https: --ca-cert, or RIVULET_CA_CERT.
    let out = cli(&["job", "list", "--server", &srv.url, "--ca-cert", &certs.ca.display().to_string()], &[]);
    assert!(out.status.success(), "job list over https: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ID"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = cli(&["plugin", "list", "--json", "--server", &srv.url], &[("RIVULET_CA_CERT", &certs.ca)]);
    assert!(out.status.success(), "plugin list over https: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // A certificate the CLI does not trust is refused, saying so and what to do.
    for ca in [Some(&certs.other_ca), None] {
        let mut args = vec!["job".to_owned(), "list".to_owned(), "--server".to_owned(), srv.url.clone()];
        if let Some(ca) = ca {
            args.extend(["--ca-cert".to_owned(), ca.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "an untrusted certificate was accepted ({ca:?})");
        assert!(err.contains("certificate is not trusted") && err.contains("--ca-cert"), "{ca:?}: {err}");
    }
    assert!(!srv.log_text().contains("panicked"), "{}", srv.log_text());
}

#[test]
fn bad_tls_flags_stop_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = certs(dir.path());
    let run = |extra: &[&str]| -> String {
        let mut cmd = rivulet();
        cmd.arg("server").arg("--data-dir").arg(dir.path().join("data")).args(extra);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("poll").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server started with {extra:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (cert, key, ca) = (certs.cert.display().to_string(), certs.key.display().to_string(), certs.ca.display().to_string());

    let err = run(&["--tls-cert", &cert]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = run(&["--tls-key", &key]);
    assert!(err.contains("--tls-cert"), "{err}");
    let missing = dir.path().join("missing.crt").display().to_string();
    let err = run(&["--tls-cert", &missing, "--tls-key", &key]);
    assert!(err.contains("TLS certificate") && err.contains(&missing), "{err}");
    // A key file holding a certificate, and a key that is not the certificate's.
    let err = run(&["--tls-cert", &cert, "--tls-key", &cert]);
    assert!(err.contains("TLS key") && err.contains(&cert), "{err}");
    let err = run(&["--tls-cert", &cert, "--tls-key", &dir.path().join("ca.key").display().to_string()]);
    assert!(err.contains(&cert) && err.contains("ca.key"), "{err}");
    let err = run(&["--tls-cert", &ca, "--tls-key", &ca]);
    assert!(err.contains("TLS key"), "{err}");
    // TLS does not replace authentication: anything but loopback still needs a token.
    let err = run(&["--listen", "0.0.0.0:0", "--tls-cert", &cert, "--tls-key", &key]);
    assert!(err.contains("without authentication"), "{err}");
}
