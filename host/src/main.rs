//! The `rivulet` binary: `run`, `validate`, `plugin`, `savepoint`, `server`, `worker`, `job`, `nexmark`.

mod cli;
mod client;
mod nexmark;
mod scheduler;

fn main() -> std::process::ExitCode {
    cli::main()
}
