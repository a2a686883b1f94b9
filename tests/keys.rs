//! Keys outside the process, end to end. A real worker joins the sandbox
//! meeting, records it and transcribes it with the local engine, while the
//! tenant's key is wrapped by OpenBao's Transit engine (the server
//! `scripts/test` starts, over TLS) or by the local key file. Then the
//! control plane stops, `attache admin rotate-master-key` (the CLI, on the
//! same database) rewraps every key, and a control plane that holds only
//! the new provider key serves the same transcript, chat, participants and
//! recording bytes as before.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use attache_control_plane::{
    Config, ControlPlane, DefaultTranscription, KeyProviderConfig, KeyProviderKind, VaultConfig,
    VaultToken,
};
use attache_edge_worker::EdgeWorker;
use serde_json::json;
use sha2::Digest;
use support::*;
use tokio_util::sync::CancellationToken;

/// The OpenBao server of `scripts/test`; `None` (skipped) when it is not
/// running, a failure when `ATTACHE_REQUIRE_SERVICES` says it must be.
struct Bao {
    addr: String,
    token: String,
    ca: Option<PathBuf>,
}

fn bao() -> Option<Bao> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("ATTACHE_TEST_BAO_ADDR"), var("ATTACHE_TEST_BAO_TOKEN")) {
        (Some(addr), Some(token)) => Some(Bao {
            addr,
            token,
            ca: var("ATTACHE_TEST_BAO_CA_FILE").map(PathBuf::from),
        }),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!(
                "ATTACHE_TEST_BAO_ADDR / ATTACHE_TEST_BAO_TOKEN are not set; run the suite with scripts/test"
            )
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_BAO_ADDR is not set (scripts/test starts OpenBao)");
            None
        }
    }
}

impl Bao {
    /// A Transit key of this test's own.
    async fn transit_key(&self, name: &str) {
        let mut http = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            http = http.tls_certs_merge(
                reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap(),
            );
        }
        let r = http
            .build()
            .unwrap()
            .post(format!("{}/v1/transit/keys/{name}", self.addr))
            .header("X-Vault-Token", &self.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "creating {name}: {}", r.status());
    }

    fn config(&self, key: &str) -> VaultConfig {
        let mut v = VaultConfig::new(&self.addr, VaultToken::value(&self.token), key);
        v.ca_file = self.ca.clone();
        v.allow_http = self.addr.starts_with("http:");
        v
    }

    /// The same settings as `attache` flags.
    fn flags(&self, key: &str) -> Vec<String> {
        let mut f = vec![
            "--key-provider".into(),
            "vault".into(),
            "--vault-addr".into(),
            self.addr.clone(),
            "--vault-transit-key".into(),
            key.into(),
        ];
        if let Some(ca) = &self.ca {
            f.push("--vault-ca-file".into());
            f.push(ca.display().to_string());
        }
        if self.addr.starts_with("http:") {
            f.push("--vault-allow-http".into());
        }
        f
    }
}

/// What a reader sees of a finished bot.
#[derive(Debug, PartialEq)]
struct Seen {
    transcript: Vec<(String, String)>,
    chat: Vec<(String, String)>,
    participants: Vec<String>,
    recording_sha256: String,
}

async fn seen(api: &Api, id: &str) -> Seen {
    let t = api
        .gql(
            "query($id: ID!) { bot(id: $id) { transcript(first: 500) { edges { node { speaker text } } } } }",
            json!({ "id": id }),
        )
        .await;
    let transcript = t["bot"]["transcript"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["speaker"].as_str().unwrap_or("").to_string(),
                e["node"]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let m = api.media(id).await;
    let chat = m["chatMessages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["sender"].as_str().unwrap().to_string(),
                c["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut participants: Vec<String> = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    participants.sort();
    let rec = &m["recording"];
    assert_eq!(rec["status"], "READY", "{m:#}");
    // The bytes themselves, opened and served by the control plane.
    let url = rec["downloadUrl"].as_str().expect("a download URL");
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success(), "download: {}", resp.status());
    let bytes = resp.bytes().await.unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    assert_eq!(sha, rec["sha256"].as_str().unwrap());
    Seen {
        transcript,
        chat,
        participants,
        recording_sha256: sha,
    }
}

fn config(dir: &Path, sandbox: &str, keys: KeyProviderConfig) -> Config {
    let mut c = cp_config(dir, sandbox, "127.0.0.1:0".parse().unwrap());
    c.default_transcription = DefaultTranscription::Local;
    c.key_provider = keys;
    c
}

/// A scripted meeting, recorded and transcribed; returns the control
/// plane's API key, the bot and what a reader sees. The control plane and
/// the worker are stopped on return.
async fn a_meeting(dir: &Path, sandbox: &str, c: Config, meeting: &str) -> (String, String, Seen) {
    let cp = ControlPlane::build(c).await.expect("control plane builds");
    let admin = cp.admin();
    let key = admin.create_tenant("acme", "local").await.unwrap().api_key;
    let api = Api::new(&format!("http://{}", cp.http_addr()), &key);
    let life = CancellationToken::new();
    let quic = cp.quic_addr();
    let served = tokio::spawn(cp.run(life.clone()));

    let mut wc = attache_edge_worker::Config::new(quic.to_string(), dir.join("worker"));
    wc.chromium = chromium();
    wc.join_token = Some(
        admin
            .worker_token("local", Duration::from_secs(60))
            .await
            .unwrap()
            .token,
    );
    let worker = EdgeWorker::build(wc).await.expect("worker enrolls");
    let worker_life = CancellationToken::new();
    let worked = tokio::spawn(worker.run(worker_life.clone()));

    let script = json!({
        "participants": [{ "name": "Alice" }, { "name": "Bob" }],
        "speech": [
            { "speaker": "Alice", "at_ms": 500, "clip": "alice-1" },
            { "speaker": "Bob", "at_ms": 5000, "clip": "bob-1" },
        ],
        "chat": [{ "sender": "Bob", "at_ms": 2000, "text": "Notes are in the shared doc." }],
    });
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/api/meetings"))
        .json(&json!({ "id": meeting, "admission": "open", "custom_script": script }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = api
        .create_bot(&format!("{sandbox}/m/{meeting}"), "Scribe")
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    // Bob's clip ends near 9 s; the engine finishes the turn after it.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/api/meetings/{meeting}/end"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let b = api.wait_status(&id, "ENDED", Duration::from_secs(90)).await;
    assert_eq!(b["statusReason"], "MEETING_ENDED", "{b:#}");
    // The recording closes and the last segments land just after the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let m = api.media(&id).await;
        let t = api
            .gql(
                "query($id: ID!) { bot(id: $id) { transcriptText } }",
                json!({ "id": id }),
            )
            .await;
        // Both turns transcribed (how well the engine heard is not the point).
        let text = t["bot"]["transcriptText"].as_str().unwrap_or("");
        if m["recording"]["status"] == "READY" && text.contains("Alice:") && text.contains("Bob:") {
            break seen(&api, &id).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recording or transcript: {m:#} {t:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        before.chat,
        vec![(
            "Bob".to_string(),
            "Notes are in the shared doc.".to_string()
        )]
    );
    assert!(before.participants.contains(&"Alice".to_string()));
    worker_life.cancel();
    let _ = worked.await;
    life.cancel();
    served.await.unwrap().unwrap();
    (key, id, before)
}

/// `attache admin rotate-master-key` on the deployment in `dir`.
fn rotate(dir: &Path, flags: &[String], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_attache"))
        .args(["admin", "rotate-master-key", "--data-dir"])
        .arg(dir)
        .args(flags)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("attache runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "rotate-master-key failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    stdout
}

/// The control plane again, on the same database: what it serves.
async fn after(c: Config, key: &str, id: &str) -> Seen {
    let cp = ControlPlane::build(c).await.expect("control plane builds");
    let api = Api::new(&format!("http://{}", cp.http_addr()), key);
    let life = CancellationToken::new();
    let served = tokio::spawn(cp.run(life.clone()));
    let s = seen(&api, id).await;
    life.cancel();
    served.await.unwrap().unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_wrapped_by_vault_transit_opens_after_the_transit_key_rotates() {
    let Some(b) = bao() else { return };
    let transit = format!("attache-e2e-{}", uuid::Uuid::new_v4().simple());
    b.transit_key(&transit).await;
    let dir = temp_dir("keys-vault");
    let stop = CancellationToken::new();
    let sandbox = start_sandbox(stop.clone()).await;
    let keys = KeyProviderConfig {
        provider: KeyProviderKind::Vault,
        vault: Some(b.config(&transit)),
        kms: None,
    };
    let (key, id, before) = a_meeting(
        &dir,
        &sandbox,
        config(&dir, &sandbox, keys.clone()),
        "keys-vault",
    )
    .await;
    assert!(
        !dir.join("master.key").exists(),
        "no local key file with vault"
    );

    let out = rotate(
        &dir,
        &b.flags(&transit),
        &[("ATTACHE_VAULT_TOKEN", &b.token)],
    );
    assert!(
        out.contains(&format!("vault:{transit}:v1 -> vault:{transit}:v2")),
        "{out}"
    );
    assert!(
        out.contains(&format!("rewrapped 2 keys under vault:{transit}:v2")),
        "the tenant's and the platform's: {out}"
    );

    let now = after(config(&dir, &sandbox, keys), &key, &id).await;
    assert_eq!(now, before);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_wrapped_by_the_key_file_opens_with_the_new_file_alone() {
    let dir = temp_dir("keys-local");
    let stop = CancellationToken::new();
    let sandbox = start_sandbox(stop.clone()).await;
    let (key, id, before) = a_meeting(
        &dir,
        &sandbox,
        config(&dir, &sandbox, KeyProviderConfig::default()),
        "keys-local",
    )
    .await;
    let old = dir.join("master.key");
    assert!(old.exists());
    let new = dir.join("rotated/master.key");

    let out = rotate(
        &dir,
        &["--new-master-key-file".into(), new.display().to_string()],
        &[],
    );
    assert!(out.contains("rewrapped 2 keys under local:"), "{out}");
    // The old file is destroyed: the new one is all there is.
    std::fs::remove_file(&old).unwrap();
    let mut c = config(&dir, &sandbox, KeyProviderConfig::default());
    c.production = false;
    c.master_key_file = Some(new);
    let now = after(c, &key, &id).await;
    assert_eq!(now, before);
    assert!(!old.exists(), "no key file was made in its place");
    stop.cancel();
}
