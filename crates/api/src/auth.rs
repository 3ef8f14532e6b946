//! Bearer tokens with roles: every route but `/healthz` and the UI's files needs a token,
//! and what a request may do depends on its token's role — `viewer` reads, `operator`
//! also runs jobs (submit, stop, savepoints, rescale, swap), `admin` also manages
//! plugins (upload, delete).

use std::fmt;
use std::str::FromStr;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rivulet_server::ServerError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::{Shared, ui};

/// What a token may do; each role may do everything of the roles before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything: jobs, plugins, metrics, logs.
    Viewer,
    /// Also run jobs: submit, stop, savepoints, rescale, upgrade.
    Operator,
    /// Also manage plugins: upload and delete.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role '{other}' (viewer, operator or admin)")),
        }
    }
}

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The tokens a server accepts, each with its role.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Role, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<String> = self.entries.iter().map(|(r, _)| r.to_string()).collect();
        write!(f, "Tokens({} redacted: {})", self.entries.len(), roles.join(", "))
    }
}

impl Tokens {
    /// Parse a token file: one `ROLE TOKEN` per line, each optionally followed by a
    /// `# comment` (whole-line comments and blank lines skipped), or — as before roles
    /// existed — a single bare token, which is `admin`. A token listed twice (under the
    /// same role or two) makes the file invalid: which role was meant cannot be told.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let lines: Vec<(usize, &str)> =
            text.lines().enumerate().map(|(i, l)| (i + 1, without_comment(l).trim())).filter(|(_, l)| !l.is_empty()).collect();
        let mut entries: Vec<(usize, Role, &str)> = Vec::new();
        if let [(n, only)] = lines.as_slice()
            && !only.contains(char::is_whitespace)
        {
            entries.push((*n, Role::Admin, only));
        } else {
            for (n, line) in lines {
                let mut parts = line.split_whitespace();
                let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!("line {n}: expected `ROLE TOKEN` (optionally followed by `# comment`)"));
                };
                entries.push((n, role.parse().map_err(|e| format!("line {n}: {e}"))?, token));
            }
        }
        if entries.is_empty() {
            return Err("no token".into());
        }
        if let Some((n, role, _)) = entries.iter().find(|(_, _, t)| t.len() < MIN_TOKEN_LEN) {
            return Err(format!("line {n}: the {role} token is too short (use at least {MIN_TOKEN_LEN} characters)"));
        }
        for (i, (n, role, token)) in entries.iter().enumerate() {
            if let Some((first, first_role, _)) = entries[..i].iter().find(|(_, _, t)| t == token) {
                return Err(format!(
                    "line {n}: the same token as line {first} (listed as {first_role} there, {role} here): a token may have one role only"
                ));
            }
        }
        Ok(Tokens { entries: entries.into_iter().map(|(_, r, t)| (r, Sha256::digest(t.as_bytes()).into())).collect() })
    }

    /// The role of `presented`, comparing in constant time with every token (hashed
    /// first, so neither length nor content leaks through timing).
    fn role_of(&self, presented: &str) -> Option<Role> {
        let p: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (role, t) in &self.entries {
            if p.iter().zip(t.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

/// `line` without its `# comment`: a `#` that starts the line or follows whitespace (a
/// `#` inside a token is part of it).
fn without_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// The role a request needs: reading needs `viewer`; changing plugins `admin`; any other
/// change `operator`.
fn required_role(method: &Method, path: &str) -> Role {
    if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else if path == "/v1/plugins" || path.starts_with("/v1/plugins/") {
        Role::Admin
    } else {
        Role::Operator
    }
}

/// The middleware: 401 without a valid token, 403 when its role is not enough. The role
/// goes into the request's extensions (`admin` on a server without tokens).
pub async fn auth(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let open = req.uri().path() == "/healthz" || (ui::is_read(req.method()) && ui::is_ui_path(req.uri().path()));
    let role = match &state.config.auth {
        None => Role::Admin,
        Some(_) if open => Role::Viewer,
        Some(tokens) => {
            let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            let Some(role) = presented.and_then(|p| tokens.role_of(p.trim())) else {
                // The body of an unauthenticated request is not read: the connection closes.
                return closing(ApiError(ServerError::Unauthorized).into_response());
            };
            let needed = required_role(req.method(), req.uri().path());
            if role < needed {
                let e = ServerError::Forbidden(format!("a {role} token may not {} {}: that needs {needed}", req.method(), req.uri().path()));
                // The caller holds a valid token: read (and drop) what it is sending, up
                // to the upload limit, so that it sees the 403 instead of a broken pipe.
                let drained = drain(req.into_body(), state.config.max_plugin_bytes).await;
                let resp = ApiError(e).into_response();
                return if drained { resp } else { closing(resp) };
            }
            role
        }
    };
    req.extensions_mut().insert(role);
    next.run(req).await
}

/// Reads and drops a request body of at most `limit` bytes within [`DRAIN_TIME`]; false
/// when it is longer, slower or broken (the connection is then closed after the answer).
async fn drain(body: axum::body::Body, limit: usize) -> bool {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let all = async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    read = read.saturating_add(c.len());
                    if read > limit {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, all).await.unwrap_or(false)
}

/// How long a forbidden request's body may take to arrive before the connection closes.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "admin-token-123456";
    const O: &str = "operator-token-1234";
    const V: &str = "viewer-token-123456";

    #[test]
    fn tokens_compare_whole_and_carry_their_role() {
        let t = Tokens::parse(&format!("# roles\nadmin {A}\n\noperator {O}\nviewer {V}\n")).expect("tokens");
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of(O), Some(Role::Operator));
        assert_eq!(t.role_of(V), Some(Role::Viewer));
        assert_eq!(t.role_of(&A[..A.len() - 1]), None);
        assert_eq!(t.role_of(""), None);
        let single = Tokens::parse(&format!("{A}\n")).expect("a single bare token");
        assert_eq!(single.role_of(A), Some(Role::Admin), "the single-token file keeps working as admin");
        assert!(Tokens::parse("root abcdefghijklmnopqrst").expect_err("role").contains("unknown role 'root'"));
        assert!(Tokens::parse("viewer short").expect_err("short").contains("too short"));
        assert!(Tokens::parse("viewer a b c").expect_err("shape").contains("line 1"));
        assert!(!format!("{t:?}").contains(A), "never printed");
    }

    #[test]
    fn trailing_comments_are_allowed_and_a_token_has_one_role() {
        let t = Tokens::parse(&format!("viewer {V}   # dashboards\noperator {O}\t# CI\n  # indented comment\n")).expect("comments");
        assert_eq!(t.role_of(V), Some(Role::Viewer));
        assert_eq!(t.role_of(O), Some(Role::Operator));
        let e = Tokens::parse(&format!("viewer {A}\nadmin {A}\n")).expect_err("one token, two roles");
        assert!(e.contains("line 2") && e.contains("line 1") && e.contains("one role only"), "{e}");
        let hashed = Tokens::parse("admin abcdefghijklmnopqrstuvwxyz#123 # the admin\n").expect("a # inside a token");
        assert_eq!(hashed.role_of("abcdefghijklmnopqrstuvwxyz#123"), Some(Role::Admin));
        assert_eq!(hashed.role_of("abcdefghijklmnopqrstuvwxyz"), None, "a # inside a token does not cut it short");
        let e = Tokens::parse(&format!("operator {O}\noperator {O}\n")).expect_err("listed twice");
        assert!(e.contains("line 2"), "{e}");
    }

    /// The token-file example in docs/security.md, taken verbatim, is a valid file.
    #[test]
    fn the_documented_token_file_example_parses() {
        let doc = include_str!("../../../docs/security.md");
        let block = doc.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("the docs' token-file example");
        let t = Tokens::parse(block).expect("the documented example");
        assert_eq!(t.entries.len(), 3);
        let roles: Vec<Role> = t.entries.iter().map(|(r, _)| *r).collect();
        assert_eq!(roles, vec![Role::Viewer, Role::Operator, Role::Admin]);
    }

    #[test]
    fn reading_needs_a_viewer_running_jobs_an_operator_plugins_an_admin() {
        assert_eq!(required_role(&Method::GET, "/v1/plugins"), Role::Viewer);
        assert_eq!(required_role(&Method::POST, "/v1/plugins"), Role::Admin);
        assert_eq!(required_role(&Method::DELETE, "/v1/plugins/a/1"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/v1/jobs"), Role::Operator);
        assert_eq!(required_role(&Method::POST, "/v1/jobs/x/stop"), Role::Operator);
        assert_eq!(required_role(&Method::GET, "/metrics"), Role::Viewer);
    }
}
