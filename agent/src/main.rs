//! `sluice-agent`: the per-host log agent.
//!
//! ```text
//! sluice-agent --config /etc/sluice/agent.toml     run
//! sluice-agent check --config /etc/sluice/agent.toml   validate and exit
//! ```
//!
//! Exit codes: 0 clean stop, 1 runtime failure, 2 configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_core::config::Config;

#[derive(Parser)]
#[command(
    name = "sluice-agent",
    version,
    about = "Tails logs into a durable spool and ships them to NATS JetStream"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "/etc/sluice/sluice.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration file and exit.
    Check,
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    sluice_agent::validate(&config).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(Command::Check) = cli.command {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    sluice_agent::priority::tune_allocator();
    sluice_core::telemetry::init();
    sluice_agent::priority::apply(&config.agent.limits);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .worker_threads(config.agent.limits.worker_threads.max(1))
        .max_blocking_threads(4)
        .thread_name("sluice-agent");
    sluice_core::role::main(
        runtime,
        sluice_agent::run(config, sluice_core::shutdown::signal()),
    )
}
