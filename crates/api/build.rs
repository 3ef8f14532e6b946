//! Rebuild when the web UI's built assets change (they are embedded by `ui`).
fn main() {
    println!("cargo:rerun-if-changed=../../web-ui/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
