//! The `rivulet` binary.

fn main() -> std::process::ExitCode {
    rivulet::cli::main()
}
