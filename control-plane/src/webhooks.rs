//! Webhook delivery, signed as Standard Webhooks specifies: headers
//! `webhook-id` (the same on every attempt of one event), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over
//! `id.timestamp.body` with the endpoint's secret). Events wait in a durable
//! outbox (`store::webhooks`); each is retried with exponential backoff and
//! jitter for `webhook_retry_for` (26 hours by default). Per endpoint and
//! bot, only the oldest pending event is sent, so a bot's events arrive in
//! order. An endpoint that fails for `webhook_disable_after` is disabled and
//! its tenant told. With several replicas, each attempt is claimed first
//! (a compare-and-swap on the delivery's `claimed_until`), so one replica
//! sends it; when an endpoint answers again after failing, every delivery
//! waiting out its backoff for it is due at once.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::Instrument;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::store::{DueDelivery, StoreError};

const SECRET_PREFIX: &str = "whsec_";
const CONCURRENT_DELIVERIES: usize = 16;
const POLL: Duration = Duration::from_millis(250);
/// How long past the request timeout a claimed attempt holds its delivery:
/// a replica that died mid-attempt leaves it due again after this.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// A new signing secret, in the form tenants paste into their verifier.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header value for one message.
pub(crate) fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

fn secret_context(endpoint_id: &str) -> Vec<u8> {
    format!("attache/webhook-secret/{endpoint_id}").into_bytes()
}

pub(crate) async fn seal_secret(
    state: &AppState,
    tenant_id: &str,
    endpoint_id: &str,
    secret: &str,
) -> Result<Vec<u8>, StoreError> {
    let key = state.keys.tenant_key(tenant_id).await?;
    Ok(key.seal(&secret_context(endpoint_id), secret.as_bytes()))
}

async fn open_secret(state: &AppState, d: &DueDelivery) -> Result<String, StoreError> {
    let key = state.keys.tenant_key(&d.endpoint.tenant_id).await?;
    let plain = key
        .open(&secret_context(&d.endpoint.id), &d.endpoint.secret_sealed)
        .map_err(|e| StoreError::Corrupt(format!("a webhook secret does not open: {e}")))?;
    String::from_utf8(plain).map_err(|_| StoreError::Corrupt("a webhook secret is not text".into()))
}

/// Whether an address is one only a private deployment should reach.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Checks an endpoint URL a tenant registers.
pub(crate) fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    if raw.len() > 2048 {
        return Err("url must be at most 2048 characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("url: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("url must be https".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials".into());
    }
    let host = url.host().ok_or("url must name a host")?;
    if !allow_private {
        let private = match host {
            url::Host::Ipv4(ip) => is_private(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_private(IpAddr::V6(ip)),
            url::Host::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
        };
        if private {
            return Err("url must be a public address".into());
        }
    }
    Ok(url)
}

/// Refuses, at send time, a name that resolves to a private address.
async fn resolves_publicly(url: &url::Url) -> Result<(), String> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for a in addrs {
        if is_private(a.ip()) {
            return Err(format!("{host} resolves to a private address"));
        }
    }
    Ok(())
}

/// The delay before retry number `attempt` (0-based): doubling from `base`
/// up to `max`, with jitter over the upper half.
pub(crate) fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = ceiling / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

/// Sends due events until `shutdown`.
pub(crate) async fn deliver(state: AppState, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(state.config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Attache-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are not sent");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let due = match state.store.due_deliveries(crate::store::now(), 256).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                continue;
            }
        };
        // Each attempt is claimed first: with several replicas, one sends.
        let claim_for = state.config.webhook_timeout + CLAIM_MARGIN;
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENT_DELIVERIES, |d| {
                let (state, client) = (&state, &client);
                let until =
                    crate::store::now() + chrono::Duration::from_std(claim_for).unwrap_or_default();
                let span = tracing::info_span!(
                    "webhook",
                    tenant_id = %d.endpoint.tenant_id,
                    endpoint_id = %d.endpoint.id,
                    delivery_id = %d.delivery.id,
                );
                async move {
                    match state.store.claim_delivery(&d.delivery, until).await {
                        Ok(true) => attempt(state, client, d).await,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot claim a webhook delivery");
                        }
                    }
                }
                .instrument(span)
            })
            .await;
    }
}

async fn attempt(state: &AppState, client: &reqwest::Client, d: DueDelivery) {
    let started = Instant::now();
    let outcome = send(state, client, &d).await;
    let ms = started.elapsed().as_millis() as i64;
    let cfg = &state.config;
    let result = match outcome {
        Ok(code) => {
            let waited = (crate::store::now() - d.delivery.created_at)
                .num_milliseconds()
                .max(0) as f64
                / 1000.0;
            state.metrics.webhook_latency.observe(waited);
            state
                .metrics
                .webhook_attempts
                .with_label_values(&["delivered"])
                .inc();
            state
                .store
                .delivered(&d.delivery, code, ms)
                .await
                .map(|_| ())
        }
        Err((code, error)) => {
            state
                .metrics
                .webhook_attempts
                .with_label_values(&["failed"])
                .inc();
            let delay = retry_delay(
                d.delivery.attempts as u32,
                cfg.webhook_retry_base,
                cfg.webhook_retry_max,
            );
            let retry_at =
                crate::store::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            let give_up_at = d.delivery.created_at
                + chrono::Duration::from_std(cfg.webhook_retry_for).unwrap_or_default();
            let retry_at = (retry_at <= give_up_at).then_some(retry_at);
            tracing::info!(
                endpoint_id = %d.endpoint.id,
                webhook_id = %d.delivery.webhook_id,
                attempt = d.delivery.attempts + 1,
                error = %error,
                giving_up = retry_at.is_none(),
                "webhook attempt failed"
            );
            match state
                .store
                .failed_attempt(
                    &d.delivery,
                    code,
                    &error,
                    ms,
                    retry_at,
                    chrono::Duration::from_std(cfg.webhook_disable_after).unwrap_or_default(),
                )
                .await
            {
                Ok(true) => {
                    tracing::warn!(endpoint_id = %d.endpoint.id, tenant_id = %d.endpoint.tenant_id, "webhook endpoint disabled after failing too long");
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(webhook_id = %d.delivery.webhook_id, error = %e, "cannot record a webhook attempt; it will be retried");
    }
}

/// One attempt: the status code on success, or the code and why not.
async fn send(
    state: &AppState,
    client: &reqwest::Client,
    d: &DueDelivery,
) -> Result<i32, (Option<i32>, String)> {
    let url =
        check_url(&d.endpoint.url, state.config.webhook_allow_private).map_err(|e| (None, e))?;
    if !state.config.webhook_allow_private {
        resolves_publicly(&url).await.map_err(|e| (None, e))?;
    }
    let secret = open_secret(state, d)
        .await
        .map_err(|e| (None, e.to_string()))?;
    let body = &body(state, d).await.map_err(|e| (None, e))?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(&secret, &d.delivery.webhook_id, timestamp, body)
        .ok_or((None, "the endpoint's secret is malformed".to_string()))?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.delivery.webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| (None, describe(&e)))?;
    let code = resp.status().as_u16() as i32;
    if resp.status().is_success() {
        Ok(code)
    } else {
        Err((Some(code), format!("HTTP {code}")))
    }
}

/// What to send for a delivery: its payload, with what names or quotes
/// someone opened with its bot's key (it is never stored opened).
async fn body(state: &AppState, d: &DueDelivery) -> Result<String, String> {
    let payload = &d.delivery.payload;
    if !crate::store::is_sealed(payload) {
        return Ok(payload.clone());
    }
    let bot_id = d.delivery.bot_id.as_deref().unwrap_or_default();
    let bot = state
        .store
        .bot(bot_id)
        .await
        .map_err(|e| format!("cannot read the event's bot: {e}"))?
        .ok_or("the event's bot was erased")?;
    let key = state
        .keys
        .existing_bot_key(&bot)
        .await
        .map_err(|e| format!("the bot's data key is not available: {e}"))?;
    crate::store::open_payload(payload, bot_id, key.as_ref())
        .map_err(|e| format!("the event does not open: {e}"))
}

/// A transport error as an operator wants to read it (no URL secrets:
/// endpoint URLs carry no credentials).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        let mut s = e.to_string();
        s.truncate(300);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let s = new_secret();
        assert!(s.starts_with("whsec_") && STANDARD.decode(&s[6..]).unwrap().len() == 24);
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/",
            "https://[::1]/",
            "https://169.254.169.254/latest",
            "https://user:pw@example.com/",
            "https://localhost/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    #[test]
    fn retries_back_off_with_jitter_and_a_cap() {
        let (base, max) = (Duration::from_secs(5), Duration::from_secs(3600));
        for attempt in 0..30 {
            let d = retry_delay(attempt, base, max);
            let ceiling = base.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
    }
}
