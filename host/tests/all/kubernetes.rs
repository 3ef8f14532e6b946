//! `deploy/kubernetes/` against a real kube-apiserver and etcd (built from the Go module
//! proxy by `scripts/kubernetes.sh`, started on loopback, the way envtest tests
//! controllers): every manifest is created with strict field validation, so a typo in a
//! field name or a wrong type fails here as it would on a real cluster, and what was
//! stored is read back. And the `kubernetes` scheduler with coordinator leadership by a
//! Lease against the same API server, the test playing the kubelet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Server, TOKEN, assert_exact_counts, counter_job, counter_v1};
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
    let args: Vec<&str> =
        workers["spec"]["template"]["spec"]["containers"][0]["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
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

impl ApiServer {
    /// A merge patch of `path` (e.g. a pod's status).
    fn merge_patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-sS", "-X", "PATCH", "--cacert", &self.ca, "-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-H", "Content-Type: application/merge-patch+json", "-w", "\n%{http_code}", "--data-binary", &body.to_string()])
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(json).unwrap_or(Value::String(json.to_owned())))
    }

    fn worker_pods(&self) -> Vec<Value> {
        let (s, list) = self.call("GET", "/api/v1/namespaces/rivulet/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dworker", None);
        assert_eq!(s, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    fn lease(&self) -> Value {
        let (s, lease) = self.call("GET", "/apis/coordination.k8s.io/v1/namespaces/rivulet/leases/rivulet-coordinator", None);
        assert_eq!(s, 200, "{lease}");
        lease
    }
}

/// What a kubelet would do for this test's pods, as the API server has no kubelet: run
/// each new worker pod's container as a `rivulet worker` process (its arguments with the
/// downward-API variables and the mounted token resolved to this machine), report the
/// pod Running at 127.0.0.1, and kill the process when the pod is deleted.
struct Kubelet {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every pod it started, by name.
    started: Arc<Mutex<Vec<String>>>,
}

impl Kubelet {
    fn start(api: Arc<ApiServer>, dir: PathBuf, cluster_token: String) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Mutex::new(Vec::new()));
        let (stop_c, started_c) = (stop.clone(), started.clone());
        let thread = std::thread::spawn(move || {
            let mut running: HashMap<String, Child> = HashMap::new();
            while !stop_c.load(Ordering::Relaxed) {
                let pods = api.worker_pods();
                let names: Vec<String> = pods.iter().filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned)).collect();
                for pod in &pods {
                    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    if running.contains_key(&name) {
                        continue;
                    }
                    let home = dir.join(&name);
                    std::fs::create_dir_all(&home).expect("pod dir");
                    std::fs::write(home.join("cluster-token"), &cluster_token).expect("token");
                    let args: Vec<String> = pod["spec"]["containers"][0]["args"]
                        .as_array()
                        .expect("args")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|a| {
                            let a = a.replace("$(POD_IP)", "127.0.0.1").replace("$(POD_NAME)", &name).replace("--bind=0.0.0.0", "--bind=127.0.0.1");
                            if a.starts_with("--cluster-token-file=") {
                                format!("--cluster-token-file={}", home.join("cluster-token").display())
                            } else if a == "--data-dir=/work" {
                                format!("--data-dir={}", home.join("work").display())
                            } else {
                                a
                            }
                        })
                        .collect();
                    let log = std::fs::File::create(home.with_extension("log")).expect("log");
                    let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
                        .args(&args)
                        .env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"))
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .expect("rivulet worker");
                    let status = json!({"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}});
                    let (s, v) = api.merge_patch(&format!("/api/v1/namespaces/rivulet/pods/{name}/status"), &status);
                    assert_eq!(s, 200, "{v}");
                    started_c.lock().expect("lock").push(name.clone());
                    running.insert(name, child);
                }
                running.retain(|name, child| {
                    let keep = names.contains(name);
                    if !keep {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    keep
                });
                std::thread::sleep(Duration::from_millis(200));
            }
            for (_, mut child) in running {
                let _ = child.kill();
                let _ = child.wait();
            }
        });
        Kubelet { stop, thread: Some(thread), started }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The `kubernetes` scheduler against a real API server, with the RBAC of
/// `deploy/kubernetes/` (the coordinators use a token of its service account): worker
/// pods are created per job with the right spec and owner reference and run it exactly,
/// a rescale adds a pod;
/// the coordinator lease is taken, a `kill -9`ed holder's standby takes it over and
/// resumes the job on the same pods (they register with the new epoch), the pods are
/// deleted when the job ends; a holder that stalls loses the lease to another and steps
/// down when it wakes; a holder stopped with SIGTERM releases the lease; a new holder
/// deletes worker pods of jobs it does not run.
#[test]
fn the_kubernetes_scheduler_runs_jobs_on_pods_and_the_lease_fails_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Arc::new(ApiServer::start(dir.path()));
    let cluster_token = "kubernetes-test-cluster-token-0123456789";
    for mut obj in manifests().into_iter().filter(|o| o["kind"] != "Deployment" || o["metadata"]["name"] == "rivulet-coordinator") {
        if obj["kind"] == "Secret" {
            obj["stringData"]["cluster-token"] = cluster_token.into();
        }
        let (status, answer) = api.call("POST", &collection(&obj), Some(&obj));
        assert_eq!(status, 201, "{} {}: {answer:#}", obj["kind"], obj["metadata"]["name"]);
    }
    let (_, deployment) = api.call("GET", "/apis/apps/v1/namespaces/rivulet/deployments/rivulet-coordinator", None);
    let owner_uid = deployment["metadata"]["uid"].as_str().expect("uid").to_owned();
    // The coordinators act as the service account: the Role in rbac.yaml must suffice.
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let (s, answer) = api.call("POST", "/api/v1/namespaces/rivulet/serviceaccounts/rivulet-coordinator/token", Some(&request));
    assert_eq!(s, 201, "{answer}");
    let sa_token = answer["status"]["token"].as_str().expect("token");
    let kubeconfig = dir.path().join("kubeconfig");
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": api.url, "certificate-authority": api.ca}}],
        "users": [{"name": "coordinator", "user": {"token": sa_token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "coordinator", "namespace": "rivulet"}}],
    });
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config).expect("yaml")).expect("kubeconfig");
    let token_file = dir.path().join("cluster-token");
    std::fs::write(&token_file, cluster_token).expect("token file");
    let kubelet = Kubelet::start(api.clone(), dir.path().join("pods"), cluster_token.to_owned());

    // Coordinators share the data directory (a ReadWriteMany volume) and the cluster
    // address (the Service): the standby binds it once it holds the lease.
    let data = dir.path().join("data");
    let cluster_port = free_port().to_string();
    let coordinator = |name: &str, port: &str| {
        let listen = format!("127.0.0.1:{port}");
        let args = [
            "--scheduler",
            "kubernetes",
            "--cluster-listen",
            &listen,
            "--kube-coordinator-address",
            &listen,
            "--cluster-token-file",
            token_file.to_str().expect("path"),
            "--kube-worker-image",
            "rivulet:test",
            "--kube-owner",
            "deployment/rivulet-coordinator",
            "--kube-lease",
            "rivulet-coordinator",
            "--kube-lease-duration",
            "3",
            "--slots-per-worker",
            "2",
            "--state-backend",
            "rocksdb",
        ];
        let envs = [
            ("KUBECONFIG", kubeconfig.to_str().expect("path")),
            ("POD_NAME", name),
            ("RIVULET_LOG", "warn,rivulet_cluster=info,rivulet_kubernetes=info"),
        ];
        Server::launch(&data, Some(TOKEN), &args, &envs)
    };
    let mut a = coordinator("coordinator-a", &cluster_port);
    a.wait_listening(Duration::from_secs(60));
    let lease = api.lease();
    assert_eq!(lease["spec"]["holderIdentity"], "coordinator-a", "{lease}");
    let first_epoch = lease["spec"]["leaseTransitions"].as_u64().unwrap_or(0);
    let mut b = coordinator("coordinator-b", &cluster_port);
    std::thread::sleep(Duration::from_secs(2));
    assert!(b.child.try_wait().expect("poll").is_none() && !b.log_text().contains("server listening"), "the standby serves: {}", b.log_text());

    // A job at parallelism 3 on pods of 2 slots: two pods, made for it.
    assert_eq!(a.upload("counter", "1", counter_v1()).0, 201);
    let out = dir.path().join("out");
    let total = 30_000;
    let (s, job) = a.post("/v1/jobs", json!({"spec": counter_job(&out, total, 2000, "counter@1"), "parallelism": 3}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pods = loop {
        let pods = api.worker_pods();
        if pods.len() == 2 {
            break pods;
        }
        assert!(Instant::now() < deadline, "{} worker pods: {pods:#?}\n{}", pods.len(), a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().expect("name");
        assert!(name.starts_with("rivulet-worker-") && name.contains(&id.to_lowercase()), "{name}");
        assert_eq!(pod["metadata"]["annotations"]["rivulet.dev/job-id"], id.as_str(), "{pod:#}");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str(), owner["uid"].as_str()),
            (Some("Deployment"), Some("rivulet-coordinator"), Some(owner_uid.as_str())),
            "{pod:#}"
        );
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["image"], "rivulet:test", "{pod:#}");
        let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
        assert!(args.contains(&format!("--pool={id}").as_str()) && args.contains(&"--slots=2"), "{args:?}");
        assert_eq!(pod["spec"]["volumes"][1]["secret"]["secretName"], "rivulet-tokens", "{pod:#}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.sink_in(&id) < 3000 || a.get(&format!("/v1/jobs/{id}/checkpoints")).1["retained"].as_array().is_none_or(Vec::is_empty) {
        assert!(Instant::now() < deadline, "no output or checkpoint on the pods:\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, workers) = a.get("/v1/workers");
    let listed: Vec<&str> = workers["workers"].as_array().expect("workers").iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(listed.len(), 2, "{workers:#}");
    assert!(workers["workers"].as_array().expect("workers").iter().all(|w| w["pool"] == id.as_str()), "{workers:#}");

    // Rescale 3 → 5: a third pod is made and key groups move to it.
    let (s, rescaled) = a.post(&format!("/v1/jobs/{id}/rescale"), json!({"parallelism": 5}));
    assert_eq!(s, 200, "{rescaled}");
    assert_eq!(rescaled["result"], "swapped", "{rescaled}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, workers) = a.get("/v1/workers");
        let busy = workers["workers"].as_array().map_or(0, |w| w.iter().filter(|w| w["tasks"].as_u64() > Some(0)).count());
        if busy == 3 && api.worker_pods().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the rescaled job is not on three pods: {workers:#}\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = a.sink_in(&id);
    while a.sink_in(&id) < before + 2000 {
        assert!(Instant::now() < deadline, "no output after the rescale:\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600)); // a checkpoint at parallelism 5

    // The holder dies: the standby takes the lease (a new epoch), binds the cluster
    // address, resumes the job from its checkpoint, and the same pods join it.
    a.kill9();
    b.wait_listening(Duration::from_secs(60));
    let lease = api.lease();
    assert_eq!(lease["spec"]["holderIdentity"], "coordinator-b", "{lease}");
    assert!(lease["spec"]["leaseTransitions"].as_u64().unwrap_or(0) > first_epoch, "{lease}");
    b.wait_status(&id, "finished", Duration::from_secs(120));
    assert_exact_counts(&out, total);
    let log = b.log_text();
    assert!(log.contains("worker registered") && log.contains(&format!("pool={id}")), "{log}");
    assert_eq!(kubelet.started.lock().expect("lock").len(), 3, "the pods were made again instead of rejoining");
    // The job ended: its pods are deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.worker_pods().is_empty() {
        assert!(Instant::now() < deadline, "worker pods outlived their job: {:#?}", api.worker_pods());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The holder stalls past the lease's duration: another coordinator takes it over, and
    // the stalled one steps down as soon as it runs again.
    // (Meanwhile a worker pod of a job no coordinator knows, as a coordinator that died
    // before deleting its job's pods leaves: the next one deletes it.)
    let stray = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "rivulet-worker-stray-0", "namespace": "rivulet",
            "labels": {"app.kubernetes.io/name": "rivulet", "app.kubernetes.io/component": "worker"},
            "annotations": {"rivulet.dev/job-id": "no-such-job"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "rivulet-coordinator", "uid": owner_uid, "controller": false, "blockOwnerDeletion": false}]},
        "spec": {"containers": [{"name": "worker", "image": "rivulet:test",
            "args": ["worker", "--coordinator=127.0.0.1:9", "--pool=no-such-job", "--data-dir=/work", "--cluster-token-file=/etc/rivulet/cluster-token"]}]},
    });
    let (s, answer) = api.call("POST", "/api/v1/namespaces/rivulet/pods", Some(&stray));
    assert_eq!(s, 201, "{answer}");
    assert!(crate::cluster::signal("-STOP", b.child.id()));
    let mut c = coordinator("coordinator-c", &free_port().to_string());
    c.wait_listening(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.worker_pods().is_empty() {
        assert!(Instant::now() < deadline, "the stray pod was not deleted: {:#?}\n{}", api.worker_pods(), c.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(crate::cluster::signal("-CONT", b.child.id()));
    assert_eq!(api.lease()["spec"]["holderIdentity"], "coordinator-c");
    let status = b.exit_within(Duration::from_secs(30)).unwrap_or_else(|| panic!("a deposed coordinator kept running: {}", b.log_text()));
    assert!(!status.success() && b.log_text().contains("lost the coordinator lease"), "{status}: {}", b.log_text());
    assert_eq!(c.job(&id)["status"], "finished");

    // A stopped holder (SIGTERM, a rolling update) hands the lease over at once.
    assert!(crate::cluster::signal("-TERM", c.child.id()));
    let status = c.exit_within(Duration::from_secs(10)).unwrap_or_else(|| panic!("SIGTERM did not stop the holder: {}", c.log_text()));
    assert!(status.success(), "{status}: {}", c.log_text());
    let lease = api.lease();
    assert!(lease["spec"]["holderIdentity"].as_str().is_none_or(|h| h != "coordinator-c"), "the lease was not released: {lease}");
    drop(kubelet);
}
