//! The `rivulet` binary: `run`, `validate`, `plugin`, `savepoint`, `server`, `worker`, `job`.

mod cli;
mod client;
mod scheduler;

fn main() -> std::process::ExitCode {
    cli::main()
}
