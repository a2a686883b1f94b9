//! `attache`: the one binary. It parses, builds the services, waits for a
//! signal and drains; the services themselves live in their crates.

mod cli;
mod control_plane_args;
mod dev;
mod governance_args;
mod key_args;
mod secret_args;
mod telemetry;
mod worker_args;

use clap::Parser;
use mimalloc::MiMalloc;
use tokio_util::sync::CancellationToken;

/// Under result ingest glibc's malloc took a quarter of the control
/// plane's CPU; mimalloc's per-thread heaps do not contend.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    let traces = telemetry::init(
        cli.log_format,
        cli.otlp_endpoint.as_deref(),
        cli.service_name(),
    )?;
    let outcome = cli.run().await;
    // What is still batched goes out before the process ends.
    if let Some(provider) = traces {
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    outcome
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
