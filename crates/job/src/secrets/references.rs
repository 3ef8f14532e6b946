//! Secret references — `${env:NAME}` and `${file:PATH}`, Kafka's config-provider
//! syntax — found in a value and resolved where a connector builds its client.

use std::path::Path;

/// The largest file a `${file:PATH}` reference may name.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Where a secret value comes from instead of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `${env:NAME}`: an environment variable of the process that runs the connector.
    Env(String),
    /// `${file:PATH}`: a file's content (trailing newline trimmed), relative to the
    /// spec's directory.
    File(String),
}

/// A secret reference that cannot be resolved. Messages name the field and the variable
/// or file, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not UTF-8).
    #[error("{at}: the environment variable {name} named by ${{env:{name}}} is not set (or not UTF-8)")]
    MissingEnv {
        /// The spec field.
        at: String,
        /// The variable.
        name: String,
    },
    /// The file cannot be read, or is no regular file of bounded size.
    #[error("{at}: cannot read the secret file {path} named by ${{file:…}}: {why}")]
    File {
        /// The spec field.
        at: String,
        /// The file as resolved.
        path: String,
        /// Why.
        why: String,
    },
    /// A `${env:` or `${file:` without its closing `}`, or with nothing in it.
    #[error("{at}: a malformed secret reference (write ${{env:NAME}} or ${{file:PATH}})")]
    Malformed {
        /// The spec field.
        at: String,
    },
}

/// One piece of a string: text as written, or a reference.
enum Piece<'a> {
    Text(&'a str),
    Ref(SecretRef),
}

/// `text` split into literal text and `${env:…}` / `${file:…}` references; `None` when a
/// reference is malformed.
fn pieces(text: &str) -> Option<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let next = [("${env:", true), ("${file:", false)].iter().filter_map(|(p, env)| rest.find(p).map(|i| (i, p.len(), *env))).min();
        let Some((start, plen, env)) = next else {
            if !rest.is_empty() {
                out.push(Piece::Text(rest));
            }
            return Some(out);
        };
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + plen..];
        let end = after.find('}')?;
        let name = &after[..end];
        if name.is_empty() {
            return None;
        }
        out.push(Piece::Ref(if env { SecretRef::Env(name.to_owned()) } else { SecretRef::File(name.to_owned()) }));
        rest = &after[end + 1..];
    }
}

/// Whether `s` holds a `${env:…}` or `${file:…}` reference.
pub fn has_reference(s: &str) -> bool {
    s.contains("${env:") || s.contains("${file:")
}

/// Whether `s` is references only (nothing secret written in it).
pub fn is_reference(s: &str) -> bool {
    matches!(pieces(s), Some(p) if !p.is_empty() && p.iter().all(|p| matches!(p, Piece::Ref(_))))
}

/// The references in `s` (none when it holds a malformed one: resolving says why).
pub fn references(s: &str) -> Vec<SecretRef> {
    pieces(s).unwrap_or_default().into_iter().filter_map(|p| if let Piece::Ref(r) = p { Some(r) } else { None }).collect()
}

/// `s` with every `${env:NAME}` and `${file:PATH}` replaced by the variable's value or
/// the file's content (a regular file of at most [`MAX_SECRET_FILE_BYTES`], its trailing
/// newline trimmed; a relative path resolves against `base_dir`). `at` names the field
/// in errors. Text without references comes back as it is.
pub fn resolve(s: &str, base_dir: &Path, at: &str) -> Result<String, SecretError> {
    if !has_reference(s) {
        return Ok(s.to_owned());
    }
    let parts = pieces(s).ok_or_else(|| SecretError::Malformed { at: at.to_owned() })?;
    let mut out = String::with_capacity(s.len());
    for p in parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref(SecretRef::Env(name)) => {
                out.push_str(&std::env::var(&name).map_err(|_| SecretError::MissingEnv { at: at.to_owned(), name: name.clone() })?)
            }
            Piece::Ref(SecretRef::File(path)) => out.push_str(&read_secret_file(&crate::resolve_path(base_dir, &path), at)?),
        }
    }
    Ok(out)
}

/// `s` with each relative `${file:PATH}` made absolute against `base_dir` (still a
/// reference): for a reference kept where the spec's directory is not known (a sink's
/// transaction in a snapshot).
pub fn anchor_references(s: &str, base_dir: &Path) -> String {
    let Some(parts) = pieces(s).filter(|_| has_reference(s)) else { return s.to_owned() };
    let mut out = String::with_capacity(s.len());
    for p in parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref(SecretRef::Env(name)) => {
                out.push_str("${env:");
                out.push_str(&name);
                out.push('}');
            }
            Piece::Ref(SecretRef::File(path)) => {
                out.push_str("${file:");
                out.push_str(&crate::resolve_path(base_dir, &path).display().to_string());
                out.push('}');
            }
        }
    }
    out
}

fn read_secret_file(path: &Path, at: &str) -> Result<String, SecretError> {
    let err = |why: String| SecretError::File { at: at.to_owned(), path: path.display().to_string(), why };
    let bytes = rivulet_dataflow::read_bounded_file(path, MAX_SECRET_FILE_BYTES).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
    let trimmed = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    Ok(trimmed.to_owned())
}
