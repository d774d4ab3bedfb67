//! The `tessera` binary.

use tessera_server::args::{self, ArgsOutcome};
use tessera_server::config::Command;

fn main() -> std::process::ExitCode {
    // Never `Cli::parse()`: clap's own error text may quote a key (SEC2-L9).
    let cli = match args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ArgsOutcome::Info(text)) => {
            print!("{text}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(ArgsOutcome::Error(text)) => {
            eprint!("{text}");
            return std::process::ExitCode::from(2);
        }
    };
    let Command::Serve(args) = cli.command;
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tessera_server::logging::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(tessera_server::server::run(config));
    // Background tasks (clean-up, pool maintenance) are cancelled; do not wait on them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
