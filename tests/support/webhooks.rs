//! A tenant's webhook receiver on 127.0.0.1, and the check a Standard
//! Webhooks verifier makes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use tokio_util::sync::CancellationToken;

/// One request the webhook receiver took.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

/// A tenant's webhook receiver on 127.0.0.1: it refuses the first
/// `refuse` requests with 503 and can go away (its port closed) and come
/// back on the same port.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Delivery>>>,
    refuse: Arc<AtomicU32>,
    pub requests: Arc<AtomicU32>,
}

impl Receiver {
    pub async fn new(refuse: u32) -> (Receiver, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            port: listener.local_addr().unwrap().port(),
            got: Arc::default(),
            refuse: Arc::new(AtomicU32::new(refuse)),
            requests: Arc::default(),
        };
        let stop = r.serve(listener);
        (r, stop)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn serve(&self, listener: tokio::net::TcpListener) -> CancellationToken {
        let stop = CancellationToken::new();
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    me.requests.fetch_add(1, Ordering::SeqCst);
                    if me
                        .refuse
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    me.got.lock().unwrap().push(Delivery {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        body,
                    });
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        stop
    }

    /// Comes back on its port.
    pub async fn restart(&self) -> CancellationToken {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener)
    }

    pub fn events(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// Checks a delivery as a receiver following Standard Webhooks would.
pub fn verify(secret: &str, d: &Delivery) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", d.id, d.timestamp, d.body).as_bytes());
    let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    d.signature.split(' ').any(|s| s == want)
}
