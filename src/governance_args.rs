//! `attache admin`'s data-governance commands: the platform's retention
//! defaults, a retention sweep on demand, and the erasure certificates'
//! key and their check.

use std::path::PathBuf;

use anyhow::Context;
use attache_control_plane::Admin;
use attache_tenant_policy::DataClass;
use clap::Subcommand;

use crate::cli::{DeploymentArgs, ObjectStoreArgs};

#[derive(Subcommand)]
pub(crate) enum GovernanceCommand {
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
    /// Print the public key erasure certificates are signed with, as a
    /// JWKS (what `/.well-known/attache-erasure-key` serves).
    ErasureKey {
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Check an erasure certificate (a file, or - for standard input)
    /// against this deployment's key, or the JWKS in `--key`; print what it
    /// certifies. Exits non-zero if it does not verify.
    VerifyErasure {
        file: PathBuf,
        /// A JWKS file (from `erasure-key` or the well-known URL): check
        /// without the deployment's database.
        #[arg(long)]
        key: Option<PathBuf>,
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

impl GovernanceCommand {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self {
            GovernanceCommand::RetentionDefaults {
                class,
                days,
                keep,
                deployment,
            } => {
                let admin = Admin::open(&deployment.config()?).await?;
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
            GovernanceCommand::ErasureKey { deployment } => {
                let admin = Admin::open(&deployment.config()?).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&admin.erasure_key().await?)?
                );
                Ok(())
            }
            GovernanceCommand::VerifyErasure {
                file,
                key,
                deployment,
            } => {
                let certificate = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                };
                let payload = match key {
                    Some(k) => {
                        let jwks: serde_json::Value = serde_json::from_str(
                            &std::fs::read_to_string(&k)
                                .with_context(|| format!("reading {}", k.display()))?,
                        )
                        .with_context(|| format!("{} is not a JWKS", k.display()))?;
                        attache_control_plane::verify_erasure_certificate(&certificate, &jwks)?
                    }
                    None => {
                        let admin = Admin::open(&deployment.config()?).await?;
                        admin.verify_erasure(&certificate).await?
                    }
                };
                println!("{}", serde_json::to_string_pretty(&payload)?);
                eprintln!("the certificate verifies");
                Ok(())
            }
            GovernanceCommand::RetentionSweep {
                as_of,
                objects,
                deployment,
            } => {
                let mut config = deployment.config()?;
                objects.apply(&mut config);
                let admin = Admin::open(&config).await?;
                let report = admin
                    .retention_sweep(as_of.unwrap_or_else(chrono::Utc::now))
                    .await?;
                print_sweep(&report);
                Ok(())
            }
        }
    }
}
