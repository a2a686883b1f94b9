//! Rate limits every replica shares: the generic cell rate algorithm
//! (GCRA) as one Redis script, so a tenant's burst is N in all, not N per
//! replica. The clock is Redis's own (`TIME`), so replicas' clocks need not
//! agree. One key per limit and tenant, expiring once the tenant is back
//! to a full burst.

use std::sync::LazyLock;
use std::time::Duration;

use super::RedisLink;
use super::redis_link::CALL_TIMEOUT;

/// KEYS[1]: the limit's key for one tenant. ARGV[1]: milliseconds per
/// request at the sustained rate; ARGV[2]: the burst. Returns 0 when the
/// request may go, else how many milliseconds until one may.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return 0
",
    )
});

/// Takes one request of `limit` for `tenant` in Redis: `Ok` with the
/// answer, or `Err` when Redis cannot answer now (the caller falls back on
/// its own bucket).
pub(crate) async fn take(
    link: &RedisLink,
    limit: &str,
    tenant: &str,
    per_second: f64,
    burst: u32,
) -> Result<Result<(), Duration>, ()> {
    let Some(mut conn) = link.connection() else {
        return Err(());
    };
    let interval_ms = 1000.0 / per_second;
    let mut invocation = GCRA.prepare_invoke();
    invocation
        .key(link.name(&format!("limit:{limit}:{tenant}")))
        .arg(interval_ms)
        .arg(burst.max(1));
    let invocation = invocation.invoke_async::<i64>(&mut conn);
    match tokio::time::timeout(CALL_TIMEOUT / 4, invocation).await {
        Ok(Ok(0)) => Ok(Ok(())),
        Ok(Ok(wait_ms)) => Ok(Err(Duration::from_millis(wait_ms.max(1) as u64))),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "shared rate limit unavailable");
            Err(())
        }
        Err(_) => Err(()),
    }
}
