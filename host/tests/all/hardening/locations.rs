//! Every place a job sent to the server names is resolved once, to the absolute path
//! that was checked, and that is what the job opens — not the string read again relative
//! to the server's working directory. The probe's attack: with the server started in a
//! directory that holds secrets, an operator token read them through a relative
//! `objects` source (bad records dead-lettered into a file sink) and wrote outside the
//! roots through a relative `objects` sink; `file:/…` and `file://localhost/…` forms and
//! a relative `checkpoint.dir` did the same.

use std::time::Duration;

use serde_json::json;

use crate::server::{Server, TOKEN};
use crate::support::read_output;

#[test]
fn relative_locations_mean_the_files_dir_whatever_the_servers_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The server's working directory, holding what no job may read or write.
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(cwd.join("secret")).expect("mkdir");
    std::fs::write(cwd.join("secret").join("token"), "the-admin-token-in-the-working-directory\n").expect("secret");
    // The same relative names exist below <data-dir>/files, so a check that resolves
    // them there passes (as the probe arranged with an earlier job's output).
    let files = data.join("files");
    std::fs::create_dir_all(files.join("secret")).expect("mkdir");
    std::fs::write(files.join("secret").join("harmless"), "not json either\n").expect("file");
    // Only the files directory is a root here (no --allow-path of the parent).
    let srv = Server::start_in(&cwd, &data, Some(TOKEN), &[]);

    let read = json!({"name": "exfiltrate", "sources": [{"id": "o", "type": "objects", "url": "secret", "bad_records": "dead_letter"}],
        "sinks": [{"id": "bad", "type": "file", "path": "stolen", "inputs": ["o.dead-letter"]},
                  {"id": "ok", "type": "stdout", "inputs": ["o"]},
                  {"id": "w", "type": "objects", "url": "tmp/x", "inputs": ["o.dead-letter"]}],
        "checkpoint": {"dir": "ck"}});
    let (s, job) = srv.post("/v1/jobs", json!({"spec": read}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id");
    srv.wait_status(id, "finished", Duration::from_secs(60));
    let stolen = read_output(&files.join("stolen"));
    assert!(!stolen.contains("the-admin-token"), "a relative objects source read the server's working directory: {stolen}");
    assert!(stolen.contains("not json either"), "it read <data-dir>/files/secret: {stolen}");
    assert!(!cwd.join("tmp").exists(), "a relative objects sink wrote into the server's working directory");
    assert!(files.join("tmp").join("x").is_dir(), "it wrote below <data-dir>/files");
    assert!(!cwd.join("ck").exists() && files.join("ck").is_dir(), "a relative checkpoint.dir is below <data-dir>/files");
    // The stored spec names the absolute paths that were checked.
    let spec = &srv.job(id)["spec"];
    assert_eq!(spec["sources"][0]["url"], files.canonicalize().expect("canonical").join("secret").display().to_string(), "{spec:#}");

    // URL forms that are not resolved are refused, naming the field.
    for url in ["file:/etc", "file://localhost/etc", "file://etc", "ftp://host/x"] {
        let spec = json!({"name": "u", "sources": [{"id": "o", "type": "objects", "url": url}],
            "sinks": [{"id": "out", "type": "stdout", "inputs": ["o"]}]});
        let (s, v) = srv.post("/v1/jobs", json!({"spec": spec}));
        assert_eq!(s, 400, "{url}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("sources[0] (id 'o').url")), "{url}: {v}");
    }
}

/// Without AWS settings, an `s3://` location is a clear error — the process does not
/// fall back to the cloud's instance metadata address (here a local listener standing in
/// for it, which must see no connection) unless the operator asks for that.
#[test]
fn s3_without_credentials_is_an_error_not_a_metadata_lookup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    metadata.set_nonblocking(true).expect("nonblocking");
    let metadata_url = format!("http://{}", metadata.local_addr().expect("addr"));
    let spec = dir.path().join("job.yaml");
    std::fs::write(
        &spec,
        "name: s3nocreds\nsources:\n  - {id: g, type: generator, count: 10}\nsinks:\n  - {id: o, type: objects, url: 's3://some-bucket/out', inputs: [g]}\n",
    )
    .expect("spec");
    let mut cmd = crate::fault::rivulet();
    cmd.arg("run").arg(&spec).arg("--data-dir").arg(dir.path().join("data")).arg("--quiet");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_SKIP_SIGNATURE",
        "RIVULET_S3_INSTANCE_METADATA",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_METADATA_ENDPOINT", &metadata_url).env("AWS_ENDPOINT_URL", "http://127.0.0.1:9").env("AWS_ALLOW_HTTP", "true");
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no S3 credentials are configured"), "{stderr}");
    assert!(metadata.accept().is_err(), "the process contacted the instance metadata address");
}
