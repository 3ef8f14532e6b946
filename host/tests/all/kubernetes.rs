//! `deploy/kubernetes/` against a real kube-apiserver and etcd (built from the Go module
//! proxy by `scripts/kubernetes.sh`, started on loopback, the way envtest tests
//! controllers): every manifest is created with strict field validation, so a typo in a
//! field name or a wrong type fails here as it would on a real cluster, and what was
//! stored is read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::repo;

/// A kube-apiserver with its etcd, stopped on drop.
struct ApiServer {
    dir: PathBuf,
    url: String,
    token: String,
    ca: String,
}

impl ApiServer {
    fn start(base: &Path) -> ApiServer {
        // Free ports are picked before the servers bind them, so another test's socket can
        // take one in between: a start that fails is retried on fresh ports (it says why).
        let mut attempt = 0;
        let dir = loop {
            attempt += 1;
            let dir = base.join(format!("k8s-{attempt}"));
            let out = Command::new("bash").arg(repo().join("scripts/kubernetes.sh")).arg("start").arg(&dir).output().expect("scripts/kubernetes.sh");
            if out.status.success() {
                break dir;
            }
            let why = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let _ = Command::new("bash").arg(repo().join("scripts/kubernetes.sh")).arg("stop").arg(&dir).status();
            assert!(attempt < 3, "kube-apiserver did not start:\n{why}");
            eprintln!("kube-apiserver did not start (attempt {attempt}); again on fresh ports:\n{why}");
        };
        let dir = dir.as_path();
        let env = std::fs::read_to_string(dir.join("env")).expect("env file");
        let get = |k: &str| env.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("{k} in {env}")).trim().to_owned();
        ApiServer { dir: dir.to_path_buf(), url: get("KUBE_API"), token: get("KUBE_TOKEN"), ca: get("KUBE_CA") }
    }

    /// `method path` with a JSON body: (HTTP status, answer).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        assert!(self.url.starts_with("https://127.0.0.1:"), "{}", self.url);
        let mut c = Command::new("curl");
        c.args(["-sS", "-X", method, "--cacert", &self.ca, "-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-H", "Content-Type: application/json", "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.url));
        if let Some(b) = body {
            c.args(["--data-binary", &b.to_string()]);
        }
        let out = c.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(json).unwrap_or(Value::String(json.to_owned())))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/kubernetes.sh")).arg("stop").arg(&self.dir).status();
    }
}

/// Where objects of `obj`'s kind are created.
fn collection(obj: &Value) -> String {
    let (api, kind) = (obj["apiVersion"].as_str().unwrap_or_default(), obj["kind"].as_str().unwrap_or_default());
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    let plural = match kind {
        "Namespace" => return "/api/v1/namespaces".into(),
        "Secret" => "secrets",
        "Service" => "services",
        "ServiceAccount" => "serviceaccounts",
        "PersistentVolumeClaim" => "persistentvolumeclaims",
        "Deployment" => "deployments",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("a manifest of kind {other}: add its collection here"),
    };
    let prefix = if api == "v1" { "/api/v1".to_owned() } else { format!("/apis/{api}") };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

fn manifests() -> Vec<Value> {
    let dir = repo().join("deploy/kubernetes");
    let mut objects = Vec::new();
    // Namespace first: everything else lives in it.
    for file in ["namespace.yaml", "secret.yaml", "rbac.yaml", "coordinator.yaml", "workers.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("manifest");
        for doc in text.split("\n---\n") {
            let v: Value = serde_yaml::from_str(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !v.is_null() {
                objects.push(v);
            }
        }
    }
    objects
}

#[test]
fn the_manifests_are_accepted_by_a_real_api_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = ApiServer::start(dir.path());
    let objects = manifests();
    assert!(objects.len() >= 10, "{} objects", objects.len());
    for obj in &objects {
        let path = format!("{}?fieldValidation=Strict", collection(obj));
        let (status, answer) = api.call("POST", &path, Some(obj));
        assert_eq!(status, 201, "{} {}: {answer:#}", obj["kind"], obj["metadata"]["name"]);
    }
    // Read back what matters: the workers join the coordinator's cluster service with the
    // token from the Secret; the coordinator runs under its service account.
    let (status, workers) = api.call("GET", "/apis/apps/v1/namespaces/rivulet/deployments/rivulet-worker", None);
    assert_eq!(status, 200, "{workers}");
    let args: Vec<&str> = workers["spec"]["template"]["spec"]["containers"][0]["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    assert_eq!(args.first(), Some(&"worker"), "{args:?}");
    assert!(args.contains(&"--coordinator=rivulet-cluster:7070"), "{args:?}");
    let (status, svc) = api.call("GET", "/api/v1/namespaces/rivulet/services/rivulet-cluster", None);
    assert_eq!(status, 200, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 7070, "{svc}");
    let (status, coord) = api.call("GET", "/apis/apps/v1/namespaces/rivulet/deployments/rivulet-coordinator", None);
    assert_eq!(status, 200, "{coord}");
    assert_eq!(coord["spec"]["template"]["spec"]["serviceAccountName"], "rivulet-coordinator", "{coord}");

    // The check has teeth: a misspelt field is refused.
    let mut typo = objects.iter().find(|o| o["kind"] == "Deployment").cloned().expect("a deployment");
    typo["metadata"]["name"] = "rivulet-typo".into();
    typo["spec"]["replica"] = 2.into();
    let (status, answer) = api.call("POST", &format!("{}?fieldValidation=Strict", collection(&typo)), Some(&typo));
    assert!(status == 400 || status == 422, "a misspelt field was accepted ({status}): {answer:#}");
}
