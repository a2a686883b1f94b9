//! Command-line surface: flags with environment fallbacks, mapped onto the
//! services' typed configs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use attache_control_plane::{
    Admin, Config as CpConfig, ControlPlane, DefaultTranscription, ObjectStoreConfig, S3Config,
};
use attache_edge_worker::{Config as WorkerConfig, EdgeWorker};
use attache_tenant_policy::DataClass;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "attache",
    version,
    about = "Attaché: a self-hostable, multi-tenant meeting-bot platform"
)]
pub(crate) struct Cli {
    /// How logs are written to standard error: `human` (colours only on a
    /// terminal) or `json` (one object per line, with the span fields).
    #[arg(long, global = true, env = "ATTACHE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Everything on one machine: control plane (SQLite), one edge worker in
    /// region `local`, and the sandbox meeting.
    Dev(crate::dev::DevArgs),
    /// The control plane service.
    ControlPlane(Box<ControlPlaneArgs>),
    /// An edge worker.
    EdgeWorker(EdgeWorkerArgs),
    /// Apply database migrations and exit.
    Migrate(DeploymentArgs),
    /// Operator tasks on a deployment's database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Args, Clone)]
pub(crate) struct DeploymentArgs {
    /// Directory for the SQLite database (by default) and the fleet CA.
    #[arg(long, env = "ATTACHE_DATA_DIR", default_value = "./attache-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://user:pass@host/db`); SQLite in the data dir if unset.
    #[arg(long, env = "ATTACHE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory with the fleet CA shared by all replicas; a CA is created in
    /// the data dir if unset.
    #[arg(long, env = "ATTACHE_FLEET_CA_DIR")]
    pub fleet_ca_dir: Option<PathBuf>,
    /// The 32-byte master key that wraps every tenant's key (a mounted
    /// secret, the same on every replica). Unset: `master.key` in the data
    /// dir, created on first start (refused by --production).
    #[arg(long, env = "ATTACHE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl DeploymentArgs {
    fn config(&self) -> CpConfig {
        let mut c = CpConfig::local(&self.data_dir);
        c.database_url = self.database_url.clone();
        c.fleet_ca_dir = self.fleet_ca_dir.clone();
        c.master_key_file = self.master_key_file.clone();
        c
    }
}

/// Where recordings are: the control plane's, and the retention sweep's.
#[derive(Args, Clone)]
pub(crate) struct ObjectStoreArgs {
    /// Store recordings in this S3 bucket (else in `objects/` under the data
    /// dir). Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY, a profile, web identity, instance role).
    #[arg(long, env = "ATTACHE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "ATTACHE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// An S3-compatible endpoint (SeaweedFS, Ceph, MinIO…); AWS if unset.
    #[arg(long, env = "ATTACHE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Path-style bucket addressing, which most S3-compatible servers want.
    #[arg(long, env = "ATTACHE_S3_PATH_STYLE")]
    pub s3_path_style: bool,
}

impl ObjectStoreArgs {
    /// S3 if a bucket is named; else the config's own (a local directory).
    fn apply(&self, c: &mut CpConfig) {
        if let Some(bucket) = &self.s3_bucket {
            c.object_store = ObjectStoreConfig::S3(S3Config {
                bucket: bucket.clone(),
                region: self.s3_region.clone(),
                endpoint: self.s3_endpoint.clone(),
                force_path_style: self.s3_path_style,
                access_key: None,
                secret_key: None,
                create_bucket: false,
            });
        }
    }
}

#[derive(Args)]
struct ControlPlaneArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[arg(long, env = "ATTACHE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    #[arg(long, env = "ATTACHE_QUIC_ADDR", default_value = "127.0.0.1:8443")]
    quic_addr: SocketAddr,
    /// Names workers dial (DNS names or IPs), comma-separated.
    #[arg(
        long,
        env = "ATTACHE_FLEET_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    fleet_names: Vec<String>,
    /// Sandbox meeting origins to accept bots for, comma-separated.
    #[arg(long, env = "ATTACHE_SANDBOX_ORIGINS", value_delimiter = ',')]
    sandbox_origins: Vec<String>,
    #[arg(long, env = "ATTACHE_HEARTBEAT_MS", default_value_t = 2000)]
    heartbeat_ms: u64,
    #[arg(long, env = "ATTACHE_WORKER_GRACE_MS", default_value_t = 15000)]
    worker_grace_ms: u64,
    #[arg(long, env = "ATTACHE_DISPATCH_INTERVAL_MS", default_value_t = 1000)]
    dispatch_interval_ms: u64,
    #[arg(long, env = "ATTACHE_LOBBY_TIMEOUT_MS")]
    lobby_timeout_ms: Option<u64>,
    /// Refuse development fallbacks (SQLite, CA in the data dir).
    #[arg(long, env = "ATTACHE_PRODUCTION")]
    production: bool,
    #[arg(long, env = "ATTACHE_ALLOW_DEV_FALLBACKS")]
    allow_dev_fallbacks: bool,
    #[command(flatten)]
    objects: ObjectStoreArgs,
    /// The URL clients reach this control plane at, for download links.
    #[arg(long, env = "ATTACHE_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long a recording's download URL stays valid.
    #[arg(long, env = "ATTACHE_DOWNLOAD_TTL_SECONDS", default_value_t = 900)]
    download_ttl_seconds: u64,
    /// Speech-to-text for tenants with no settings of their own: `none`, or
    /// `local` (the engine on each worker).
    #[arg(long, env = "ATTACHE_DEFAULT_TRANSCRIPTION", default_value = "none", value_parser = ["none", "local"])]
    default_transcription: String,
    /// Allow webhooks to plain http and private addresses (development).
    #[arg(long, env = "ATTACHE_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Allow identity providers on plain http and private addresses
    /// (development).
    #[arg(long, env = "ATTACHE_SSO_ALLOW_PRIVATE")]
    sso_allow_private: bool,
    /// Answer GraphQL introspection; by default on, and off with
    /// --production.
    #[arg(long, env = "ATTACHE_INTROSPECTION")]
    introspection: Option<bool>,
    /// How long a console sign-in lasts.
    #[arg(long, env = "ATTACHE_SESSION_TTL_MINUTES", default_value_t = 720)]
    session_ttl_minutes: u64,
    /// GraphQL requests per minute per tenant.
    #[arg(long, env = "ATTACHE_API_PER_MINUTE", default_value_t = 1200)]
    api_per_minute: u32,
    /// How often each replica tries the retention sweep (one replica runs
    /// it at a time).
    #[arg(
        long,
        env = "ATTACHE_RETENTION_INTERVAL_SECONDS",
        default_value_t = 600
    )]
    retention_interval_seconds: u64,
    /// Most rows one statement of the retention sweep deletes.
    #[arg(long, env = "ATTACHE_RETENTION_BATCH", default_value_t = 1000)]
    retention_batch: u64,
}

#[derive(Args)]
pub(crate) struct EdgeWorkerArgs {
    /// The control plane's fleet endpoint, `host:port`.
    #[arg(long, env = "ATTACHE_CONTROL_PLANE", default_value = "127.0.0.1:8443")]
    pub control_plane: String,
    #[arg(long, env = "ATTACHE_SERVER_NAME")]
    pub server_name: Option<String>,
    #[arg(
        long,
        env = "ATTACHE_WORKER_DATA_DIR",
        default_value = "./attache-worker"
    )]
    pub data_dir: PathBuf,
    /// One-time join token, needed until the worker has enrolled.
    #[arg(long, env = "ATTACHE_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    #[arg(long, env = "ATTACHE_CAPACITY", default_value_t = 4)]
    pub capacity: u32,
    #[arg(long, env = "ATTACHE_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "ATTACHE_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Python with faster-whisper, for the local speech-to-text engine.
    #[arg(long, env = "ATTACHE_STT_PYTHON")]
    pub stt_python: Option<PathBuf>,
}

impl EdgeWorkerArgs {
    pub(crate) fn config(&self) -> WorkerConfig {
        let mut c = WorkerConfig::new(&self.control_plane, &self.data_dir);
        c.server_name = self.server_name.clone();
        c.join_token = self.join_token.clone();
        c.capacity = self.capacity;
        c.chromium = self.chromium.clone();
        c.metrics_addr = self.metrics_addr;
        c.stt_python = self.stt_python.clone();
        c
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant and print its first API key (shown once).
    CreateTenant {
        name: String,
        #[arg(long)]
        region: String,
        /// Invite this address as the tenant's owner in the console.
        #[arg(long)]
        owner_email: Option<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Create the fleet CA in a directory (for --fleet-ca-dir) and print its
    /// fingerprint; an existing CA there is kept.
    InitFleetCa {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Let an address sign in to the console as the platform operator.
    AddOperator {
        email: String,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    RemoveOperator {
        email: String,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Set the identity provider operators sign in with. The client secret
    /// is read from a file (never from the command line).
    OperatorSso {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret_file: PathBuf,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Print a console session cookie for an operator, for when the
    /// identity provider is down (break-glass; recorded in the audit log).
    OperatorSession {
        email: String,
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Check the audit log's hash chain from the first entry to the last;
    /// exits non-zero at the first entry edited, deleted or out of place.
    VerifyAudit {
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Write the audit log as JSON lines to stdout (one tenant's, or all).
    ExportAudit {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Show the platform's default retention per data class, or set one
    /// (`--class transcripts --days 90`, or `--keep` for no default).
    /// Stored in the database: every replica follows it.
    RetentionDefaults {
        /// recordings, transcripts, chat, participants, bot_metadata or
        /// webhook_deliveries.
        #[arg(long, requires = "change", value_parser = parse_class)]
        class: Option<DataClass>,
        #[arg(long, group = "change", requires = "class")]
        days: Option<i64>,
        /// No default for the class: kept unless a tenant says otherwise.
        #[arg(long, group = "change", requires = "class")]
        keep: bool,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Run one retention sweep now, as if it were `--as-of` (RFC 3339;
    /// now if omitted), and print what it deleted per class.
    RetentionSweep {
        /// Sweep as if it were this moment (`2030-01-01T00:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        objects: ObjectStoreArgs,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Issue a one-time join token for a worker in a region.
    WorkerToken {
        #[arg(long)]
        region: String,
        /// Minutes until the token expires.
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
}

fn parse_class(s: &str) -> Result<DataClass, String> {
    DataClass::parse(s).ok_or_else(|| {
        let names: Vec<&str> = DataClass::ALL.iter().map(|c| c.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("an RFC 3339 time such as 2030-01-01T00:00:00Z: {e}"))
}

/// What a sweep did, one line per class (`transcripts: 140`).
fn print_sweep(r: &attache_control_plane::SweepReport) {
    println!(
        "retention sweep as of {}: {} tenants",
        r.as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.tenants
    );
    for (class, n) in &r.deleted {
        if *class == DataClass::Recordings {
            println!("{}: {n} ({} objects)", class.as_str(), r.objects);
        } else {
            println!("{}: {n}", class.as_str());
        }
    }
    match r.oldest_expired {
        Some(age) => println!(
            "left for the next sweep: expired items up to {} s past their expiry",
            age.num_seconds()
        ),
        None => println!("nothing expired is left"),
    }
    if !r.complete {
        println!("incomplete: the sweep's budget ran out; run it again");
    }
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Dev(args) => crate::dev::run(args).await,
            Command::ControlPlane(a) => {
                let mut c = a.deployment.config();
                c.http_addr = a.http_addr;
                c.quic_addr = a.quic_addr;
                c.fleet_names = a.fleet_names;
                c.sandbox_origins = a.sandbox_origins;
                c.heartbeat_interval = Duration::from_millis(a.heartbeat_ms);
                c.worker_grace = Duration::from_millis(a.worker_grace_ms);
                c.dispatch_interval = Duration::from_millis(a.dispatch_interval_ms);
                if let Some(l) = a.lobby_timeout_ms {
                    c.default_limits.lobby_timeout_ms = l;
                }
                c.production = a.production;
                c.allow_dev_fallbacks = a.allow_dev_fallbacks || !a.production;
                a.objects.apply(&mut c);
                c.public_url = a.public_url;
                c.download_ttl = Duration::from_secs(a.download_ttl_seconds);
                c.sso_allow_private = a.sso_allow_private;
                c.introspection = a.introspection.unwrap_or(!a.production);
                c.session_ttl = Duration::from_secs(a.session_ttl_minutes * 60);
                c.api_per_minute = a.api_per_minute;
                c.retention_interval = Duration::from_secs(a.retention_interval_seconds);
                c.retention_batch = a.retention_batch;
                c.default_transcription = if a.default_transcription == "local" {
                    DefaultTranscription::Local
                } else {
                    DefaultTranscription::None
                };
                c.webhook_allow_private = a.webhook_allow_private;
                let cp = ControlPlane::build(c)
                    .await
                    .context("starting the control plane")?;
                tracing::info!(http = %cp.http_addr(), fleet = %cp.quic_addr(), "control plane listening");
                cp.run(crate::shutdown_on_signal()).await?;
                Ok(())
            }
            Command::EdgeWorker(a) => {
                let worker = EdgeWorker::build(a.config())
                    .await
                    .context("starting the edge worker")?;
                tracing::info!(worker_id = worker.worker_id(), "edge worker running");
                worker.run(crate::shutdown_on_signal()).await;
                Ok(())
            }
            Command::Migrate(d) => {
                Admin::open(&d.config()).await.context("migrating")?;
                println!("migrations applied");
                Ok(())
            }
            Command::Admin(AdminCommand::CreateTenant {
                name,
                region,
                owner_email,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()).await?;
                let t = admin.create_tenant(&name, &region).await?;
                println!("tenant: {} ({})", t.name, t.tenant_id);
                println!("region: {}", t.region);
                println!("api key: {}", t.api_key);
                if let Some(email) = owner_email {
                    admin
                        .invite(&t.tenant_id, &email, attache_tenant_policy::Role::Owner)
                        .await?;
                    println!("owner invited: {email}");
                }
                Ok(())
            }
            Command::Admin(AdminCommand::AddOperator { email, deployment }) => {
                Admin::open(&deployment.config())
                    .await?
                    .add_operator(&email)
                    .await?;
                println!("operator added: {email}");
                Ok(())
            }
            Command::Admin(AdminCommand::RemoveOperator { email, deployment }) => {
                let removed = Admin::open(&deployment.config())
                    .await?
                    .remove_operator(&email)
                    .await?;
                println!(
                    "{}",
                    if removed {
                        "operator removed"
                    } else {
                        "no such operator"
                    }
                );
                Ok(())
            }
            Command::Admin(AdminCommand::OperatorSso {
                issuer,
                client_id,
                client_secret_file,
                deployment,
            }) => {
                let secret = std::fs::read_to_string(&client_secret_file)
                    .with_context(|| format!("reading {}", client_secret_file.display()))?;
                Admin::open(&deployment.config())
                    .await?
                    .set_operator_sso(&issuer, &client_id, secret.trim())
                    .await?;
                println!("operator sign-in set: {issuer}");
                Ok(())
            }
            Command::Admin(AdminCommand::OperatorSession {
                email,
                ttl_minutes,
                deployment,
            }) => {
                let token = Admin::open(&deployment.config())
                    .await?
                    .operator_session(&email, Duration::from_secs(ttl_minutes * 60))
                    .await?;
                println!("attache_session={token}");
                Ok(())
            }
            Command::Admin(AdminCommand::VerifyAudit { deployment }) => {
                let admin = Admin::open(&deployment.config()).await?;
                match admin.verify_audit().await? {
                    attache_control_plane::AuditVerdict::Intact { entries, head } => {
                        println!("audit log intact: {entries} entries, head {head}");
                        Ok(())
                    }
                    attache_control_plane::AuditVerdict::Broken { seq, reason } => {
                        anyhow::bail!("audit log broken at entry {seq}: {reason}")
                    }
                }
            }
            Command::Admin(AdminCommand::ExportAudit { tenant, deployment }) => {
                let admin = Admin::open(&deployment.config()).await?;
                let mut out = std::io::stdout().lock();
                admin.export_audit(tenant.as_deref(), &mut out).await?;
                Ok(())
            }
            Command::Admin(AdminCommand::RetentionDefaults {
                class,
                days,
                keep,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()).await?;
                if let Some(class) = class {
                    admin
                        .set_retention_default(class, if keep { None } else { days })
                        .await?;
                }
                for (class, days) in admin.retention_defaults().await? {
                    match days {
                        Some(d) => println!("{}: {d} days", class.as_str()),
                        None => println!("{}: kept (no default)", class.as_str()),
                    }
                }
                Ok(())
            }
            Command::Admin(AdminCommand::RetentionSweep {
                as_of,
                objects,
                deployment,
            }) => {
                let mut config = deployment.config();
                objects.apply(&mut config);
                let admin = Admin::open(&config).await?;
                let report = admin
                    .retention_sweep(as_of.unwrap_or_else(chrono::Utc::now))
                    .await?;
                print_sweep(&report);
                Ok(())
            }
            Command::Admin(AdminCommand::InitFleetCa { dir }) => {
                let fp = attache_control_plane::init_fleet_ca(&dir)?;
                println!("fleet CA: {} (sha256 {fp})", dir.display());
                Ok(())
            }
            Command::Admin(AdminCommand::WorkerToken {
                region,
                ttl_minutes,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()).await?;
                let t = admin
                    .worker_token(&region, Duration::from_secs(ttl_minutes * 60))
                    .await?;
                println!("join token: {}", t.token);
                println!("region: {}  expires: {}", t.region, t.expires_at);
                Ok(())
            }
        }
    }
}
