//! Command-line surface: flags with environment fallbacks, mapped onto the
//! services' typed configs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use attache_control_plane::{
    Admin, Config as CpConfig, ControlPlane, Isolation, ObjectStoreConfig, Rotation, S3Config,
};
use attache_edge_worker::EdgeWorker;
use clap::{Args, Parser, Subcommand};

use crate::control_plane_args::ControlPlaneArgs;
use crate::key_args::{KeyArgs, KeyProviderArg};
use crate::worker_args::EdgeWorkerArgs;

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
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (`/v1/traces` is added when no path is
    /// given). One trace runs from `createBot` through dispatch and the
    /// worker's session to the results' persistence; JSON logs carry its
    /// `trace_id`. Unset: no traces.
    #[arg(long, global = true, env = "ATTACHE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
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
    /// Apply database migrations, seal personal fields older versions
    /// stored in the clear, and exit.
    Migrate(DeploymentArgs),
    /// Print the GraphQL schema (SDL): the API's published contract, as
    /// committed in `schema.graphql`.
    Schema,
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
    /// A file holding the PostgreSQL URL (a mounted secret), instead of
    /// --database-url.
    #[arg(long, env = "ATTACHE_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Directory with the fleet CA shared by all replicas; a CA is created in
    /// the data dir if unset.
    #[arg(long, env = "ATTACHE_FLEET_CA_DIR")]
    pub fleet_ca_dir: Option<PathBuf>,
    /// The 32-byte master key that wraps every tenant's key (a mounted
    /// secret, the same on every replica). Unset: `master.key` in the data
    /// dir, created on first start (refused by --production). Beside
    /// another --key-provider: the file that opens keys it wrapped before.
    #[arg(long, env = "ATTACHE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// With the local key provider: where the keys an erasure destroys are
    /// kept, one file each (default: `erasable-keys/` in the data dir). The
    /// same directory on every replica; back it up apart from the
    /// database, or not at all.
    #[arg(long, env = "ATTACHE_ERASABLE_KEY_DIR")]
    pub erasable_key_dir: Option<PathBuf>,
    /// A single-tenant deployment: serve this tenant only, create no other,
    /// and refuse to start on a database that holds another.
    #[arg(long, env = "ATTACHE_SINGLE_TENANT")]
    pub single_tenant: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
}

impl DeploymentArgs {
    pub(crate) fn config(&self) -> anyhow::Result<CpConfig> {
        let mut c = CpConfig::local(&self.data_dir);
        c.database_url = crate::secret_args::secret(
            self.database_url.as_deref(),
            self.database_url_file.as_deref(),
            "database-url",
            false,
        )?;
        c.fleet_ca_dir = self.fleet_ca_dir.clone();
        c.master_key_file = self.master_key_file.clone();
        c.erasable_key_dir = self.erasable_key_dir.clone();
        c.single_tenant = self.single_tenant.clone();
        c.key_provider = self.keys.config()?;
        Ok(c)
    }
}

/// Where recordings are: the default store (`--s3-bucket`, else a local
/// directory, else none when only per-region buckets are named) and the
/// buckets of regions and tenants. The control plane's, and the retention
/// sweep's (which deletes from each).
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
    /// The bucket of one home region, `REGION=BUCKET` (or
    /// `REGION=BUCKET@S3_REGION` when the bucket is not in --s3-region);
    /// repeat it for each region. Tenants of a region keep their recordings
    /// there and nowhere else; --s3-bucket, if set, serves the regions not
    /// named, and without it their tenants cannot create bots.
    #[arg(long, env = "ATTACHE_S3_BUCKET_FOR", value_delimiter = ',', value_parser = bucket_for)]
    pub s3_bucket_for: Vec<BucketFor>,
    /// A tenant's own bucket, `TENANT=BUCKET[@S3_REGION]`, ahead of its
    /// region's (a dedicated tenant needs one); repeatable.
    #[arg(long, env = "ATTACHE_S3_BUCKET_FOR_TENANT", value_delimiter = ',', value_parser = bucket_for)]
    pub s3_bucket_for_tenant: Vec<BucketFor>,
}

impl ObjectStoreArgs {
    pub(crate) fn apply(&self, c: &mut CpConfig) {
        let s3 = |bucket: String, s3_region: Option<String>| {
            ObjectStoreConfig::S3(S3Config {
                bucket,
                region: s3_region.unwrap_or_else(|| self.s3_region.clone()),
                endpoint: self.s3_endpoint.clone(),
                force_path_style: self.s3_path_style,
                access_key: None,
                secret_key: None,
                create_bucket: false,
            })
        };
        for b in self.s3_bucket_for.iter().cloned() {
            c.region_object_stores
                .insert(b.name, s3(b.bucket, b.s3_region));
        }
        for b in self.s3_bucket_for_tenant.iter().cloned() {
            c.tenant_object_stores
                .insert(b.name, s3(b.bucket, b.s3_region));
        }
        match self.s3_bucket.clone() {
            Some(bucket) => c.object_store = Some(s3(bucket, None)),
            // Buckets named per region and none by default: the other
            // regions keep nothing, not even on local disk.
            None if !self.s3_bucket_for.is_empty() => c.object_store = None,
            None => {}
        }
    }
}

/// `NAME=BUCKET` or `NAME=BUCKET@S3_REGION`: a region's (or a tenant's)
/// bucket, in its own S3 region if it is not `--s3-region`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BucketFor {
    pub name: String,
    pub bucket: String,
    pub s3_region: Option<String>,
}

fn bucket_for(s: &str) -> Result<BucketFor, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=BUCKET or NAME=BUCKET@S3_REGION"))?;
    let (bucket, s3_region) = match rest.split_once('@') {
        Some((b, r)) => (b, Some(r.trim().to_string())),
        None => (rest, None),
    };
    let (name, bucket) = (name.trim(), bucket.trim());
    if name.is_empty() || bucket.is_empty() || s3_region.as_deref() == Some("") {
        return Err(format!(
            "{s:?}: expected NAME=BUCKET or NAME=BUCKET@S3_REGION"
        ));
    }
    Ok(BucketFor {
        name: name.to_string(),
        bucket: bucket.to_string(),
        s3_region,
    })
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant and print its first API key (shown once).
    CreateTenant {
        name: String,
        /// Its home region: where its bots run and its data is kept.
        #[arg(long)]
        region: String,
        /// `shared`: the shared workers of its region; `dedicated`: only the
        /// workers of its own --pool (and its own bucket,
        /// --s3-bucket-for-tenant).
        #[arg(long, value_enum, default_value_t = IsolationArg::Shared)]
        isolation: IsolationArg,
        /// A dedicated tenant's worker pool (`attache admin worker-token
        /// --pool NAME` enrolls workers into it).
        #[arg(long)]
        pool: Option<String>,
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
    /// Stop an address from signing in to the console as the platform
    /// operator.
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
    #[command(flatten)]
    Governance(crate::governance_args::GovernanceCommand),
    /// Rewrap every tenant key and the platform key under a new provider
    /// key, without touching any data: a new key file (local), a new
    /// version of the Transit key or another Transit key (vault), another
    /// KMS key (kms); or, after --key-provider changed, every key onto the
    /// new provider (give the old one's settings too, e.g.
    /// --master-key-file). Safe to run again; exits non-zero if a key
    /// could not be rewrapped.
    RotateMasterKey {
        /// local: the key file that replaces --master-key-file (created if
        /// missing); point --master-key-file at it afterwards.
        #[arg(long)]
        new_master_key_file: Option<PathBuf>,
        /// vault: move to this Transit key; unset, the configured key gets
        /// a new version.
        #[arg(long)]
        new_vault_transit_key: Option<String>,
        /// vault: rewrap onto the newest version without making one (it was
        /// rotated in Vault already, or a rotation is resumed).
        #[arg(long)]
        keep_key_version: bool,
        /// kms: move to this key; unset, keys are re-encrypted under the
        /// configured key's current material.
        #[arg(long)]
        new_kms_key_id: Option<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Put a dedicated tenant on a provider key of its own: a Transit key
    /// name (vault) or a KMS key id (kms). Its key is rewrapped onto it,
    /// and rotations leave it there.
    TenantKey {
        tenant: String,
        #[arg(long)]
        provider_key: String,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Issue a join token for a worker in a region (one-time unless --uses).
    WorkerToken {
        #[arg(long)]
        region: String,
        /// Enroll the worker into a dedicated tenant's pool: it runs that
        /// tenant's bots and no one else's.
        #[arg(long)]
        pool: Option<String>,
        /// Minutes until the token expires.
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
        /// How many workers may enroll with it (an autoscaled group sharing
        /// one secret); each keeps its identity in its data directory.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum IsolationArg {
    Shared,
    Dedicated,
}

impl From<IsolationArg> for Isolation {
    fn from(i: IsolationArg) -> Isolation {
        match i {
            IsolationArg::Shared => Isolation::Shared,
            IsolationArg::Dedicated => Isolation::Dedicated,
        }
    }
}

impl Cli {
    /// The `service.name` of this process's traces.
    pub(crate) fn service_name(&self) -> &'static str {
        match self.command {
            Command::Dev(_) => "attache-dev",
            Command::ControlPlane(_) => "attache-control-plane",
            Command::EdgeWorker(_) => "attache-edge-worker",
            _ => "attache",
        }
    }

    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Dev(args) => crate::dev::run(args).await,
            Command::ControlPlane(a) => {
                let c = a.config()?;
                let cp = ControlPlane::build(c)
                    .await
                    .context("starting the control plane")?;
                tracing::info!(http = %cp.http_addr(), fleet = %cp.quic_addr(), "control plane listening");
                cp.run(crate::shutdown_on_signal()).await?;
                Ok(())
            }
            Command::EdgeWorker(a) => {
                let worker = EdgeWorker::build(a.config()?)
                    .await
                    .context("starting the edge worker")?;
                tracing::info!(worker_id = worker.worker_id(), "edge worker running");
                worker.run(crate::shutdown_on_signal()).await;
                Ok(())
            }
            Command::Schema => {
                print!("{}", attache_control_plane::sdl());
                Ok(())
            }
            Command::Migrate(d) => {
                // Sealing needs the deployment's own keys: a master key
                // file made here (for a data dir of its own) would wrap new
                // keys the control plane cannot unwrap.
                let master_key = d
                    .master_key_file
                    .clone()
                    .unwrap_or_else(|| d.data_dir.join("master.key"));
                let has_key = d.keys.key_provider != KeyProviderArg::Local || master_key.exists();
                let admin = Admin::open(&d.config()?).await.context("migrating")?;
                println!("migrations applied");
                if !has_key {
                    println!(
                        "personal fields stored in the clear by older versions not sealed here: \
                         no master key at {} (--master-key-file); the control plane seals them on start",
                        master_key.display()
                    );
                    return Ok(());
                }
                // Rows older versions stored in the clear: the schema
                // cannot seal them, the control plane's keys can.
                let r = admin
                    .seal_personal_fields()
                    .await
                    .context("sealing personal fields stored in the clear")?;
                println!(
                    "personal fields sealed: {} bots, {} participants, {} speaker segments, \
                     {} transcript segments, {} chat messages ({} rows skipped)",
                    r.bots,
                    r.participants,
                    r.speaker_segments,
                    r.transcript_segments,
                    r.chat_messages,
                    r.skipped
                );
                Ok(())
            }
            Command::Admin(AdminCommand::CreateTenant {
                name,
                region,
                isolation,
                pool,
                owner_email,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()?).await?;
                let t = admin
                    .create_tenant_in(&name, &region, isolation.into(), pool.as_deref())
                    .await?;
                println!("tenant: {} ({})", t.name, t.tenant_id);
                println!("region: {}", t.region);
                match &t.pool {
                    Some(p) => println!("isolation: dedicated, pool {p}"),
                    None => println!("isolation: shared"),
                }
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
                Admin::open(&deployment.config()?)
                    .await?
                    .add_operator(&email)
                    .await?;
                println!("operator added: {email}");
                Ok(())
            }
            Command::Admin(AdminCommand::RemoveOperator { email, deployment }) => {
                let removed = Admin::open(&deployment.config()?)
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
                Admin::open(&deployment.config()?)
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
                let token = Admin::open(&deployment.config()?)
                    .await?
                    .operator_session(&email, Duration::from_secs(ttl_minutes * 60))
                    .await?;
                println!("attache_session={token}");
                Ok(())
            }
            Command::Admin(AdminCommand::VerifyAudit { deployment }) => {
                let admin = Admin::open(&deployment.config()?).await?;
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
                let admin = Admin::open(&deployment.config()?).await?;
                let mut out = std::io::stdout().lock();
                admin.export_audit(tenant.as_deref(), &mut out).await?;
                Ok(())
            }
            Command::Admin(AdminCommand::Governance(g)) => g.run().await,
            Command::Admin(AdminCommand::RotateMasterKey {
                new_master_key_file,
                new_vault_transit_key,
                keep_key_version,
                new_kms_key_id,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()?).await?;
                let report = admin
                    .rotate_master_key(&Rotation {
                        new_master_key_file,
                        new_vault_transit_key,
                        keep_key_version,
                        new_kms_key_id,
                    })
                    .await?;
                for c in &report.rewrapped {
                    println!("{}: {} -> {}", c.subject, c.from, c.to);
                }
                println!(
                    "rewrapped {} keys under {} ({} already there, {} on a tenant's own key)",
                    report.rewrapped.len(),
                    report.target,
                    report.unchanged,
                    report.own_keys
                );
                if report.resealed_operator_secret {
                    println!("operator sign-in secret sealed under the platform key");
                }
                for (subject, e) in &report.failed {
                    eprintln!("{subject}: not rewrapped: {e}");
                }
                if !report.failed.is_empty() {
                    anyhow::bail!(
                        "{} keys were not rewrapped; they are as they were: run the rotation again",
                        report.failed.len()
                    );
                }
                Ok(())
            }
            Command::Admin(AdminCommand::TenantKey {
                tenant,
                provider_key,
                deployment,
            }) => {
                let c = Admin::open(&deployment.config()?)
                    .await?
                    .set_tenant_provider_key(&tenant, &provider_key)
                    .await?;
                println!("{}: {} -> {}", c.subject, c.from, c.to);
                Ok(())
            }
            Command::Admin(AdminCommand::InitFleetCa { dir }) => {
                let fp = attache_control_plane::init_fleet_ca(&dir)?;
                println!("fleet CA: {} (sha256 {fp})", dir.display());
                Ok(())
            }
            Command::Admin(AdminCommand::WorkerToken {
                region,
                pool,
                ttl_minutes,
                uses,
                deployment,
            }) => {
                let admin = Admin::open(&deployment.config()?).await?;
                let t = admin
                    .shared_worker_token(
                        &region,
                        pool.as_deref(),
                        Duration::from_secs(ttl_minutes * 60),
                        uses,
                    )
                    .await?;
                println!("join token: {}", t.token);
                println!(
                    "region: {}  pool: {}  uses: {}  expires: {}",
                    t.region,
                    t.pool.as_deref().unwrap_or("shared"),
                    t.uses,
                    t.expires_at
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_per_region() {
        assert_eq!(
            bucket_for("eu-west-1=acme-eu").unwrap(),
            BucketFor {
                name: "eu-west-1".into(),
                bucket: "acme-eu".into(),
                s3_region: None
            }
        );
        assert_eq!(
            bucket_for("us=rec-us@us-west-2")
                .unwrap()
                .s3_region
                .as_deref(),
            Some("us-west-2")
        );
        for bad in ["", "eu", "=b", "eu=", "eu=b@", "eu=@r"] {
            assert!(bucket_for(bad).is_err(), "{bad:?}");
        }
    }

    fn control_plane(flags: &[&str]) -> CpConfig {
        let cli = Cli::try_parse_from(["attache", "control-plane"].iter().chain(flags)).unwrap();
        let Command::ControlPlane(a) = cli.command else {
            panic!("not the control plane");
        };
        a.config().unwrap()
    }

    fn bucket(s: &ObjectStoreConfig) -> (&str, &str) {
        match s {
            ObjectStoreConfig::S3(s3) => (s3.bucket.as_str(), s3.region.as_str()),
            ObjectStoreConfig::Local { .. } => ("local", ""),
        }
    }

    #[test]
    fn flags_fill_the_residency_config() {
        let c = control_plane(&[
            "--s3-bucket-for",
            "eu=rec-eu",
            "--s3-bucket-for",
            "us=rec-us@us-west-2",
            "--s3-bucket-for-tenant",
            "acme=acme-rec",
            "--queue-timeout-seconds",
            "30",
            "--s3-region",
            "eu-west-1",
        ]);
        assert_eq!(c.queue_timeout, Duration::from_secs(30));
        assert_eq!(
            bucket(&c.region_object_stores["eu"]),
            ("rec-eu", "eu-west-1")
        );
        assert_eq!(
            bucket(&c.region_object_stores["us"]),
            ("rec-us", "us-west-2")
        );
        assert_eq!(
            bucket(&c.tenant_object_stores["acme"]),
            ("acme-rec", "eu-west-1")
        );
        assert!(c.object_store.is_none(), "only the named regions keep data");

        // --s3-bucket still serves every region not named.
        let c = control_plane(&["--s3-bucket", "rec", "--s3-bucket-for", "eu=rec-eu"]);
        assert_eq!(bucket(c.object_store.as_ref().unwrap()).0, "rec");
        // No bucket at all: the local directory, as before.
        let c = control_plane(&[]);
        assert_eq!(bucket(c.object_store.as_ref().unwrap()).0, "local");
        assert_eq!(c.queue_timeout, Duration::from_secs(600));
    }
}
