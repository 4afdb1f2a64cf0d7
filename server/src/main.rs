//! `depot`: the server binary and its administration commands (see
//! `depot_server::cli`, where they live so that this crate compiles nothing).

fn main() -> std::process::ExitCode {
    depot_server::cli::main()
}
