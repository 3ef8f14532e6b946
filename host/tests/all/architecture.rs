//! `docs/architecture.md` shows the crate graph as `cargo metadata` has it: this test
//! regenerates it and fails when the page drifts (`RIVULET_WRITE_DOCS=1` rewrites it).
//! It also checks the graph is layered as the page says: the dataflow vocabulary at the
//! bottom, nothing below the runtime knows a connector, the checkpoint protocol knows no
//! connector, guest or runtime.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::repo;

/// Workspace crates and their direct (normal, non-dev) dependencies on each other.
fn crate_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> =
        packages.iter().filter_map(|p| p["name"].as_str()).filter(|n| n.starts_with("rivulet") && *n != "rivulet-sdk").map(str::to_owned).collect();
    let mut graph = BTreeMap::new();
    for p in packages {
        let Some(name) = p["name"].as_str().filter(|n| names.contains(*n)) else { continue };
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| names.contains(*d))
            .map(str::to_owned)
            .collect();
        graph.insert(name.to_owned(), deps);
    }
    graph
}

/// Whether `to` is reachable from `from`.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut stack = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            stack.extend(graph.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

/// The graph as a Mermaid block, without the edges that other paths imply.
fn mermaid(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut out = String::from("```mermaid\ngraph TD\n");
    for (from, deps) in graph {
        for to in deps {
            let implied = deps.iter().any(|other| other != to && reaches(graph, other, to));
            if !implied {
                out.push_str(&format!("  {from} --> {to}\n"));
            }
        }
    }
    out.push_str("```\n");
    out
}

#[test]
fn the_crate_graph_is_layered_and_the_architecture_page_shows_it() {
    let graph = crate_graph();
    let must_not = [
        ("rivulet-dataflow", "rivulet-state"),
        ("rivulet-state", "rivulet-plugin"),
        ("rivulet-plugin", "rivulet-checkpoint"),
        ("rivulet-plugin", "rivulet-job"),
        ("rivulet-checkpoint", "rivulet-connectors"),
        ("rivulet-checkpoint", "rivulet-plugin"),
        ("rivulet-checkpoint", "rivulet-runtime"),
        ("rivulet-checkpoint", "rivulet-job"),
        ("rivulet-connectors", "rivulet-runtime"),
        ("rivulet-connectors", "rivulet-plugin"),
        ("rivulet-runtime", "rivulet-server"),
        ("rivulet-server", "rivulet-api"),
        ("rivulet-network", "rivulet-runtime"),
        ("rivulet-runtime", "rivulet-network"),
        ("rivulet-runtime", "rivulet-cluster"),
        ("rivulet-cluster", "rivulet-server"),
    ];
    for (from, to) in must_not {
        assert!(graph.contains_key(from) && graph.contains_key(to), "{from} or {to} is not a workspace crate");
        assert!(!reaches(&graph, from, to), "{from} depends on {to}: the layers are broken");
    }
    let block = mermaid(&graph);
    let path = repo().join("docs/architecture.md");
    let page = std::fs::read_to_string(&path).expect("docs/architecture.md");
    let (start, end) = ("<!-- crate-graph:start -->\n", "<!-- crate-graph:end -->");
    let a = page.find(start).expect("start marker") + start.len();
    let b = page.find(end).expect("end marker");
    if page[a..b] != block {
        if std::env::var_os("RIVULET_WRITE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{block}{}", &page[..a], &page[b..])).expect("write docs/architecture.md");
        } else {
            panic!("docs/architecture.md does not show the current crate graph; it is:\n{block}(RIVULET_WRITE_DOCS=1 rewrites the page)");
        }
    }
}
