//! Secret references in connector settings (`${env:NAME}`, `${file:PATH}`: see
//! [`rivulet_job::secrets`]): what reading them touches, and their resolution where a
//! connector builds its client — never earlier, and never written back.

use std::collections::BTreeMap;
use std::path::Path;

use rivulet_job::JobSpec;
use rivulet_job::secrets::{SecretError, SecretRef, anchor_references, resolve, spec_references};

use crate::access::{Access, Accessed};

/// What resolving the secret references of `spec` touches: `Access::ReadFile(PATH)` for
/// each `${file:PATH}` (relative to the job's base directory) and `Access::ReadEnv` for
/// each `${env:NAME}`, each with its field.
pub fn secret_accesses(spec: &JobSpec) -> Vec<Accessed> {
    spec_references(spec)
        .into_iter()
        .map(|(at, r)| Accessed {
            at,
            access: match r {
                SecretRef::Env(name) => Access::ReadEnv { name },
                SecretRef::File(path) => Access::ReadFile(path),
            },
        })
        .collect()
}

/// Client properties with each relative `${file:PATH}` made absolute against
/// `base_dir`: still references (no secret read), usable where the spec's directory is
/// not known (a transaction committed after a restore).
pub(crate) fn anchored(properties: &BTreeMap<String, String>, base_dir: &Path) -> BTreeMap<String, String> {
    properties.iter().map(|(k, v)| (k.clone(), anchor_references(v, base_dir))).collect()
}

/// Client properties with their references resolved, for the client about to be built
/// (errors name `properties.<name>` and the variable or file, never a value).
pub(crate) fn resolved(properties: &BTreeMap<String, String>, base_dir: &Path) -> Result<Vec<(String, String)>, SecretError> {
    properties.iter().map(|(k, v)| Ok((k.clone(), resolve(v, base_dir, &format!("properties.{k}"))?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_accesses_and_resolve_only_when_asked() {
        let yaml = concat!(
            "name: j\nsources:\n",
            "  - {id: k, type: kafka, bootstrap_servers: 'b:1', topic: t, properties: {sasl.password: '${env:RIVULET_SECRET_KAFKA}', ssl.key.pem: '${file:keys/k.pem}'}}\n",
            "sinks:\n  - {id: p, type: postgres, url: 'postgres://u:${file:/run/pg}@db/d', table: t, key: [k], inputs: [k]}\n",
        );
        let spec = JobSpec::parse(yaml, "t", &rivulet_job::Params::default()).expect("spec");
        let got: Vec<(String, Access)> = secret_accesses(&spec).into_iter().map(|a| (a.at, a.access)).collect();
        assert_eq!(
            got,
            vec![
                ("sources[0] (id 'k').properties.sasl.password".to_owned(), Access::ReadEnv { name: "RIVULET_SECRET_KAFKA".into() }),
                ("sources[0] (id 'k').properties.ssl.key.pem".to_owned(), Access::ReadFile("keys/k.pem".into())),
                ("sinks[0] (id 'p').url".to_owned(), Access::ReadFile("/run/pg".into())),
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("keys")).expect("mkdir");
        std::fs::write(dir.path().join("keys/k.pem"), "PEM\n").expect("write");
        let props: BTreeMap<String, String> =
            [("ssl.key.pem".to_owned(), "${file:keys/k.pem}".to_owned()), ("linger.ms".to_owned(), "5".to_owned())].into();
        let anchored = anchored(&props, dir.path());
        assert_eq!(anchored["ssl.key.pem"], format!("${{file:{}}}", dir.path().join("keys/k.pem").display()));
        let r = resolved(&anchored, Path::new("/elsewhere")).expect("resolved");
        assert_eq!(r, vec![("linger.ms".to_owned(), "5".to_owned()), ("ssl.key.pem".to_owned(), "PEM".to_owned())]);
        let missing: BTreeMap<String, String> = [("sasl.password".to_owned(), "${env:RIVULET_SECRET_SURELY_UNSET_7}".to_owned())].into();
        let e = resolved(&missing, dir.path()).expect_err("unset").to_string();
        assert!(e.contains("properties.sasl.password") && e.contains("RIVULET_SECRET_SURELY_UNSET_7"), "{e}");
    }
}
