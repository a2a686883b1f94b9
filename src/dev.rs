//! `attache dev`: the whole platform in one process with embedded defaults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use attache_control_plane::{Config as CpConfig, ControlPlane};
use attache_edge_worker::{Config as WorkerConfig, EdgeWorker};
use attache_sandbox::Sandbox;
use clap::Args;

#[derive(Args)]
pub(crate) struct DevArgs {
    #[arg(long, env = "ATTACHE_DATA_DIR", default_value = "./attache-dev")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    #[arg(long, default_value_t = 8443)]
    quic_port: u16,
    #[arg(long, default_value_t = 8090)]
    sandbox_port: u16,
    #[arg(long, env = "ATTACHE_CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    #[arg(long, default_value_t = 9464)]
    worker_metrics_port: u16,
    /// Bots sent to the sandbox's replicas of Meet, Teams and Zoom
    /// (`/platform/{meet,teams,zoom}/<id>`) run those platforms' adapters.
    #[arg(long)]
    platform_replicas: bool,
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown_on_signal();
    let sandbox_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.sandbox_port))
        .await
        .context("binding the sandbox port")?;
    let sandbox_origin = format!("http://{}", sandbox_listener.local_addr()?);

    let mut cp_config = CpConfig::local(args.data_dir.join("control-plane"));
    cp_config.http_addr = ([127, 0, 0, 1], args.http_port).into();
    cp_config.quic_addr = ([127, 0, 0, 1], args.quic_port).into();
    cp_config.sandbox_origins = vec![sandbox_origin.clone()];
    cp_config.platform_replicas = args.platform_replicas;
    // Bots transcribe with the engine on the worker unless told otherwise.
    cp_config.default_transcription = attache_control_plane::DefaultTranscription::Local;
    let cp = ControlPlane::build(cp_config)
        .await
        .context("starting the control plane")?;
    let http = cp.http_addr();
    let admin = cp.admin();

    let tenant = match admin.create_tenant("dev", "local").await {
        Ok(t) => {
            std::fs::write(args.data_dir.join("dev-tenant-id"), &t.tenant_id)?;
            t.api_key
        }
        Err(attache_control_plane::AdminError::Exists(_)) => {
            // A second run on the same data dir: mint a fresh key for the
            // existing tenant rather than printing nothing usable.
            let key_file = args.data_dir.join("dev-tenant-id");
            let id = std::fs::read_to_string(&key_file).context("dev tenant id")?;
            admin
                .create_api_key(
                    id.trim(),
                    "attache dev",
                    attache_tenant_policy::Role::Owner,
                    None,
                )
                .await?
        }
        Err(e) => return Err(e.into()),
    };

    let worker_dir = args.data_dir.join("worker");
    let mut wc = WorkerConfig::new(cp.quic_addr().to_string(), &worker_dir);
    wc.chromium = args.chromium.clone();
    wc.metrics_addr = Some(([127, 0, 0, 1], args.worker_metrics_port).into());
    if !worker_dir.join("worker.json").exists() {
        wc.join_token = Some(
            admin
                .worker_token("local", Duration::from_secs(600))
                .await?
                .token,
        );
    }

    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(Sandbox::new().serve(sandbox_listener, shutdown.clone()));
    tasks.spawn(cp.run(shutdown.clone()));
    let worker = EdgeWorker::build(wc)
        .await
        .context("starting the edge worker")?;
    let worker_metrics = worker.metrics_addr();
    tasks.spawn(worker.run(shutdown.clone()));
    tasks.close();

    let meeting = format!("{sandbox_origin}/m/demo?script=demo-loop");
    println!("graphql: http://{http}/graphql");
    println!("graphiql: http://{http}/graphql");
    println!(
        "console: http://{http}/console/ (sign-in: set the tenant's OpenID Connect provider with setIdentityProvider)"
    );
    println!("api key: {tenant}");
    println!("sandbox meeting: {meeting}");
    if let Some(addr) = worker_metrics {
        println!("worker metrics: http://{addr}/metrics (control plane: http://{http}/metrics)");
    }
    println!(
        "curl -s http://{http}/graphql -H 'Authorization: Bearer {tenant}' -H 'Content-Type: application/json' \
         -d '{{\"query\":\"mutation {{ createBot(input: {{meetingUrl: \\\"{meeting}\\\", botName: \\\"Attaché\\\"}}) {{ id status }} }}\"}}'"
    );
    tasks.wait().await;
    Ok(())
}
