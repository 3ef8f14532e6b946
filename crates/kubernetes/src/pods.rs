//! A job's worker pods: how they look ([`WorkerPods::pod`], a pure function of the job
//! and the pod's ordinal) and how the coordinator keeps them ([`KubeWorkers`]: created
//! when a run needs slots, surplus ones deleted on rescale, all deleted when the job
//! ends).

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rivulet_cluster::{ProvisionError, WorkerProvisioner};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::KubeError;

/// The label every worker pod carries with its job ([`job_label`] of the job's id).
pub const JOB_LABEL: &str = "rivulet.dev/job";
/// The annotation with the job's id as it is (labels are restricted).
pub const JOB_ANNOTATION: &str = "rivulet.dev/job-id";
/// Where the cluster token is mounted in a worker pod.
const TOKEN_DIR: &str = "/etc/rivulet";

/// What a job's worker pods look like.
#[derive(Debug, Clone)]
pub struct WorkerPods {
    /// The namespace they are created in (the coordinator's).
    pub namespace: String,
    /// The container image (the one the coordinator runs).
    pub image: String,
    /// The coordinator's cluster address as pods reach it (a Service, `HOST:PORT`).
    pub coordinator: String,
    /// Task slots of each pod.
    pub slots: u32,
    /// The Secret holding the cluster token under the key `cluster-token`.
    pub token_secret: String,
    /// What the pods belong to (the coordinator's Deployment): deleting it deletes them.
    pub owner: Option<OwnerReference>,
    /// CPU request and limit of each pod (`"1"`, `"500m"`).
    pub cpu: String,
    /// Memory request and limit of each pod (`"1Gi"`).
    pub memory: String,
    /// A Secret whose keys become the pods' environment (object-store credentials).
    pub env_secret: Option<String>,
    /// A kubernetes.io/tls Secret (`tls.crt`, `tls.key`, `ca.crt`): the pods' cluster TLS.
    pub tls_secret: Option<String>,
}

impl WorkerPods {
    /// How many pods `subtasks` subtasks need.
    pub fn pods_for(&self, subtasks: u32) -> u32 {
        subtasks.max(1).div_ceil(self.slots.max(1))
    }

    /// The name of `job`'s pod number `ordinal`.
    pub fn pod_name(&self, job: &str, ordinal: u32) -> String {
        format!("rivulet-worker-{}-{ordinal}", job_label(job))
    }

    /// Pod number `ordinal` of `job`: `rivulet worker` joining the coordinator with the
    /// job as its pool, the token from the Secret, its pod IP advertised, an emptyDir
    /// for plugins and state.
    pub fn pod(&self, job: &str, ordinal: u32) -> Result<Pod, serde_json::Error> {
        let mut container = json!({
            "name": "worker",
            "image": self.image,
            "args": [
                "worker",
                format!("--coordinator={}", self.coordinator),
                format!("--slots={}", self.slots.max(1)),
                "--data-dir=/work",
                "--advertise=$(POD_IP)",
                "--bind=0.0.0.0",
                "--name=$(POD_NAME)",
                format!("--pool={job}"),
                format!("--cluster-token-file={TOKEN_DIR}/cluster-token"),
            ],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "resources": {
                "requests": {"cpu": self.cpu, "memory": self.memory},
                "limits": {"cpu": self.cpu, "memory": self.memory},
            },
            "volumeMounts": [
                {"name": "work", "mountPath": "/work"},
                {"name": "tokens", "mountPath": TOKEN_DIR, "readOnly": true},
            ],
        });
        if let Some(secret) = &self.env_secret {
            container["envFrom"] = json!([{"secretRef": {"name": secret}}]);
        }
        let mut volumes = vec![
            json!({"name": "work", "emptyDir": {}}),
            json!({"name": "tokens", "secret": {"secretName": self.token_secret, "items": [{"key": "cluster-token", "path": "cluster-token"}]}}),
        ];
        if let Some(secret) = &self.tls_secret {
            let dir = "/etc/rivulet-tls";
            if let Some(args) = container["args"].as_array_mut() {
                args.extend([
                    json!(format!("--cluster-tls-cert={dir}/tls.crt")),
                    json!(format!("--cluster-tls-key={dir}/tls.key")),
                    json!(format!("--cluster-tls-ca={dir}/ca.crt")),
                ]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(json!({"name": "tls", "mountPath": dir, "readOnly": true}));
            }
            volumes.push(json!({"name": "tls", "secret": {"secretName": secret}}));
        }
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.pod_name(job, ordinal),
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/name": "rivulet",
                    "app.kubernetes.io/component": "worker",
                    JOB_LABEL: job_label(job),
                },
                "annotations": {JOB_ANNOTATION: job},
            },
            "spec": {
                // A worker that exits is started again in place and registers again.
                "restartPolicy": "Always",
                // Workers never call the Kubernetes API.
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 10,
                "containers": [container],
                "volumes": volumes,
            },
        });
        if let Some(owner) = &self.owner {
            pod["metadata"]["ownerReferences"] = json!([owner]);
        }
        serde_json::from_value(pod)
    }
}

/// A label value for `job` (at most 63 characters of `[a-z0-9-]`): its id lowercased
/// with other characters as `-`, cut to 40, and 8 hex digits of its hash (ids that
/// differ only in what the cut or the mapping loses stay apart).
pub fn job_label(job: &str) -> String {
    let mut readable: String = job.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    readable = readable.trim_matches('-').to_owned();
    let hash = hex::encode(&Sha256::digest(job.as_bytes())[..4]);
    if readable.is_empty() { hash } else { format!("{readable}-{hash}") }
}

/// The `kubernetes` scheduler's worker pods, kept through the API server.
#[derive(Clone)]
pub struct KubeWorkers {
    pods: Api<Pod>,
    spec: WorkerPods,
    /// When this coordinator started (seconds since the epoch).
    started_s: i64,
}

impl std::fmt::Debug for KubeWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeWorkers").field("spec", &self.spec).finish()
    }
}

impl KubeWorkers {
    /// Worker pods made with `client` as `spec` says.
    pub fn new(client: kube::Client, spec: WorkerPods) -> Self {
        let started_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        KubeWorkers { pods: Api::namespaced(client, &spec.namespace), spec, started_s }
    }

    /// The owner reference for `kind/name` in `namespace` (kind `deployment`,
    /// `statefulset` or `pod`), with the object's uid read from the API server.
    pub async fn owner(client: &kube::Client, namespace: &str, owner: &str) -> Result<OwnerReference, KubeError> {
        let (kind, name) = owner.split_once('/').ok_or_else(|| KubeError::Owner(owner.to_owned()))?;
        let what = format!("reading the owner {owner} in namespace {namespace}");
        let (api_version, kind, uid) = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" => {
                let d = Api::<Deployment>::namespaced(client.clone(), namespace).get(name).await.map_err(KubeError::api(what))?;
                ("apps/v1", "Deployment", d.metadata.uid)
            }
            "statefulset" | "statefulsets" => {
                let s = Api::<StatefulSet>::namespaced(client.clone(), namespace).get(name).await.map_err(KubeError::api(what))?;
                ("apps/v1", "StatefulSet", s.metadata.uid)
            }
            "pod" | "pods" => {
                let p = Api::<Pod>::namespaced(client.clone(), namespace).get(name).await.map_err(KubeError::api(what))?;
                ("v1", "Pod", p.metadata.uid)
            }
            _ => return Err(KubeError::Owner(owner.to_owned())),
        };
        Ok(OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.ok_or_else(|| KubeError::Owner(owner.to_owned()))?,
            controller: Some(false),
            block_owner_deletion: Some(false),
        })
    }

    /// The job's pods now: (name, ordinal, being deleted or done for).
    async fn existing(&self, job: &str) -> Result<Vec<(String, Option<u32>, bool)>, KubeError> {
        let selector = format!("{JOB_LABEL}={}", job_label(job));
        let list = self.pods.list(&ListParams::default().labels(&selector)).await.map_err(KubeError::api(format!("listing pods {selector}")))?;
        let prefix = format!("rivulet-worker-{}-", job_label(job));
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| {
                let name = p.metadata.name.clone()?;
                let ordinal = name.strip_prefix(&prefix).and_then(|o| o.parse().ok());
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
                let gone = p.metadata.deletion_timestamp.is_some() || matches!(phase, "Failed" | "Succeeded");
                Some((name, ordinal, gone))
            })
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<(), KubeError> {
        match self.pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(KubeError::Api { what: format!("deleting pod {name}"), source: e }),
        }
    }

    /// Make the job's pods what `subtasks` subtasks need: missing ones created, failed
    /// ones deleted (created again by the next run), surplus ones deleted.
    pub async fn reconcile(&self, job: &str, subtasks: u32) -> Result<(), KubeError> {
        let wanted = self.spec.pods_for(subtasks);
        let existing = self.existing(job).await?;
        for (name, ordinal, gone) in &existing {
            let surplus = ordinal.is_none_or(|o| o >= wanted);
            if surplus || *gone {
                tracing::info!(job, pod = %name, surplus, "kubernetes: deleting a worker pod");
                self.delete(name).await?;
            }
        }
        for ordinal in 0..wanted {
            let name = self.spec.pod_name(job, ordinal);
            // A live pod stays; a failed or terminating one (deleted above) is replaced
            // once the API server has let it go.
            let replacing = match existing.iter().find(|(n, _, _)| *n == name) {
                Some((_, _, false)) => continue,
                Some((_, _, true)) => true,
                None => false,
            };
            let pod = self.spec.pod(job, ordinal).map_err(|e| KubeError::Config(format!("worker pod spec: {e}")))?;
            let mut tries = 0;
            loop {
                match self.pods.create(&PostParams::default(), &pod).await {
                    Ok(_) => tracing::info!(job, pod = %name, replacing, "kubernetes: created a worker pod"),
                    Err(kube::Error::Api(s)) if s.is_already_exists() && replacing && tries < 60 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                    Err(e) => return Err(KubeError::Api { what: format!("creating pod {name}"), source: e }),
                }
                break;
            }
        }
        Ok(())
    }

    /// Delete the worker pods of every job not in `active`: pods with this coordinator's
    /// owner (another installation's are not ours) created before this coordinator
    /// started (a job submitted since `active` was taken is not touched).
    pub async fn keep_only(&self, active: &[String]) -> Result<(), KubeError> {
        let selector = "app.kubernetes.io/name=rivulet,app.kubernetes.io/component=worker";
        let list = self.pods.list(&ListParams::default().labels(selector)).await.map_err(KubeError::api(format!("listing pods {selector}")))?;
        let ours = self.spec.owner.as_ref().map(|o| o.uid.as_str());

        for pod in list.items {
            let owner = pod.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| o.uid.as_str());
            let old = pod.metadata.creation_timestamp.as_ref().is_some_and(|t| t.0.as_second() < self.started_s);
            if owner != ours || !old {
                continue;
            }
            let job = pod.metadata.annotations.as_ref().and_then(|a| a.get(JOB_ANNOTATION)).cloned();
            let Some(name) = pod.metadata.name.clone() else { continue };
            if job.as_ref().is_none_or(|j| !active.contains(j)) {
                tracing::info!(pod = %name, job = job.as_deref().unwrap_or("-"), "kubernetes: deleting a worker pod of a job that is not running");
                self.delete(&name).await?;
            }
        }
        Ok(())
    }

    /// Delete every pod of the job.
    pub async fn remove(&self, job: &str) -> Result<(), KubeError> {
        for (name, _, _) in self.existing(job).await? {
            self.delete(&name).await?;
        }
        tracing::info!(job, "kubernetes: the job's worker pods are deleted");
        Ok(())
    }
}

impl WorkerProvisioner for KubeWorkers {
    fn provide<'a>(&'a self, job: &'a str, subtasks: u32) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(async move { self.reconcile(job, subtasks).await.map_err(|e| ProvisionError { job: job.to_owned(), reason: e.to_string() }) })
    }

    fn release<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(async move { self.remove(job).await.map_err(|e| ProvisionError { job: job.to_owned(), reason: e.to_string() }) })
    }

    fn retain<'a>(&'a self, active: &'a [String]) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(async move { self.keep_only(active).await.map_err(|e| ProvisionError { job: "(others)".to_owned(), reason: e.to_string() }) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkerPods {
        WorkerPods {
            namespace: "rivulet".into(),
            image: "rivulet:dev".into(),
            coordinator: "rivulet-cluster:7070".into(),
            slots: 2,
            token_secret: "rivulet-tokens".into(),
            owner: None,
            cpu: "1".into(),
            memory: "1Gi".into(),
            env_secret: Some("s3".into()),
            tls_secret: None,
        }
    }

    #[test]
    fn labels_are_valid_and_tell_jobs_apart() {
        let a = job_label("Fraud_Detection.v2");
        assert!(a.starts_with("fraud-detection-v2-") && a.len() <= 63, "{a}");
        assert_ne!(job_label("a.b"), job_label("a-b"));
        let long = job_label(&"x".repeat(300));
        assert!(long.len() <= 63 && long.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{long}");
        assert_eq!(job_label("___").len(), 8);
    }

    #[test]
    fn a_pod_runs_a_worker_for_its_job() {
        let s = spec();
        assert_eq!(s.pods_for(3), 2);
        assert_eq!(s.pods_for(4), 2);
        assert_eq!(s.pods_for(0), 1);
        let pod = s.pod("job-1", 1).expect("pod");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["name"], s.pod_name("job-1", 1));
        assert_eq!(v["metadata"]["labels"][JOB_LABEL], job_label("job-1"));
        let c = &v["spec"]["containers"][0];
        let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
        assert!(args.contains(&"--pool=job-1") && args.contains(&"--coordinator=rivulet-cluster:7070") && args.contains(&"--slots=2"), "{args:?}");
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "s3");
        assert_eq!(v["spec"]["volumes"][1]["secret"]["secretName"], "rivulet-tokens");
    }
}
