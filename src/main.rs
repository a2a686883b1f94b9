//! `attache`: the one binary. It parses, builds the services, waits for a
//! signal and drains; the services themselves live in their crates.

mod cli;
mod control_plane_args;
mod dev;
mod governance_args;
mod key_args;
mod secret_args;
mod worker_args;

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    init_logs(cli.log_format);
    cli.run().await
}

/// Logs go to standard error; `RUST_LOG` filters them.
fn init_logs(format: cli::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,chromiumoxide=off,sqlx=warn,quinn=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Json => logs.json().with_current_span(true).init(),
        // Colour codes only where a person reads them, not in files or pipes.
        cli::LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Cancels on SIGINT or SIGTERM.
pub(crate) fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
