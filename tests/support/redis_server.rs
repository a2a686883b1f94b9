//! Redis for the tests about what crosses replicas: the server
//! `scripts/test` starts (`start_redis`), or one of a test's own to kill
//! and start again; and more replicas of a cluster's deployment.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use attache_control_plane::{Config as CpConfig, ControlPlane};

use super::{Cluster, cp_config, temp_dir};

/// The Redis `scripts/test` starts; `None` (the test is skipped) when it
/// is not running.
pub fn redis_url() -> Option<String> {
    match std::env::var("ATTACHE_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_REDIS_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_REDIS_URL is not set (scripts/test sets it)");
            None
        }
    }
}

/// Debian's redis-server, of this test's own: a free port, a password,
/// nothing saved. Killed when dropped.
pub struct RedisServer {
    pub url: String,
    port: u16,
    password: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// `None` (the test is skipped) where redis-server is not installed.
    pub fn start() -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() {
                panic!("redis-server is not installed; run the suite with scripts/test");
            }
            eprintln!("skipped: redis-server is not installed (scripts/test installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let password = format!("pw{}", uuid::Uuid::new_v4().simple());
        let mut r = RedisServer {
            url: format!("redis://:{password}@127.0.0.1:{port}/0"),
            port,
            password,
            dir: temp_dir("redis"),
            child: None,
        };
        r.restart();
        Some(r)
    }

    /// Starts it (again, on the same port) and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--requirepass",
                &self.password,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: every connection drops, every key is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    /// Another replica of this cluster's deployment (its PostgreSQL
    /// database at `database_url`, fleet CA and keys), with the harness's
    /// intervals and `tweak`; it stops with the cluster. Returns its HTTP
    /// URL.
    pub async fn replica(&self, database_url: &str, tweak: impl FnOnce(&mut CpConfig)) -> String {
        let dir = temp_dir("replica");
        let mut c = cp_config(&dir, &self.sandbox, "127.0.0.1:0".parse().unwrap());
        let cp_dir = self.dir.join("cp");
        c.database_url = Some(database_url.to_string());
        c.fleet_ca_dir = Some(cp_dir.clone());
        c.master_key_file = Some(cp_dir.join("master.key"));
        c.erasable_key_dir = Some(cp_dir.join("erasable-keys"));
        tweak(&mut c);
        let cp = ControlPlane::build(c).await.expect("replica builds");
        let http = format!("http://{}", cp.http_addr());
        tokio::spawn(cp.run(self.shutdown.child_token()));
        http
    }
}
