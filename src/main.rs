//! The `ringfs` command. All logic lives in [`cli`]; this file only hands
//! over the process exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
