//! `qnet`: its command line ([`qnet::cli::main`]).

fn main() -> std::process::ExitCode {
    qnet::cli::main()
}
