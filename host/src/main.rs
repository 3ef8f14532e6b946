//! The `rivulet` binary: `run`, `validate`, `plugin`, `savepoint`, `server`, `job`.

mod cli;
mod client;

fn main() -> std::process::ExitCode {
    cli::main()
}
