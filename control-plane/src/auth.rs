//! API keys, console session tokens and join tokens: random secrets shown
//! once, stored as SHA-256.
//!
//! Keys look like `atk_<id>_<secret>`. The id finds the row; the secret's
//! hash is compared in constant time. A key that does not exist costs the
//! same hash and comparison as one that does, so response time says nothing
//! about which keys exist. Failures say only "invalid API key". Keys that
//! authenticated are kept in memory until a change could take their right
//! away ([`crate::credentials`]).

use attache_tenant_policy::Role;
use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credentials::Credentials;
use crate::entity::api_key;
use crate::store::{Store, now};

const KEY_PREFIX: &str = "atk";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A valid API key: the tenant, role and membership it speaks for.
#[derive(Debug, Clone)]
pub(crate) struct KeyHolder {
    pub tenant_id: String,
    pub role: Role,
    pub key_id: String,
    pub member_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid API key")]
    Invalid,
    #[error("the console session is missing, expired or signed out")]
    Session,
    #[error("policy: {0}")]
    Policy(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A freshly minted key: the row to store and the plaintext to show once.
pub(crate) fn mint_api_key(
    tenant_id: &str,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    issued_by: Option<(&str, Option<&str>)>,
) -> (api_key::Model, String) {
    let id = random_hex(ID_BYTES);
    let secret = random_hex(SECRET_BYTES);
    let model = api_key::Model {
        id: id.clone(),
        tenant_id: tenant_id.to_string(),
        name: name.to_string(),
        secret_hash: hash_secret(&secret),
        role: role.as_str().to_string(),
        created_at: now(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
        created_by: issued_by.map(|(actor, _)| actor.to_string()),
        member_id: issued_by.and_then(|(_, m)| m.map(str::to_string)),
    };
    (model, format!("{KEY_PREFIX}_{id}_{secret}"))
}

fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == 2 * ID_BYTES
        && secret.len() == 2 * SECRET_BYTES
        && id
            .bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_hexdigit());
    ok.then_some((id, secret))
}

/// Resolves an `Authorization` header value to the key's holder. A key
/// issued by a member works only while the membership lasts, and only while
/// the member could still issue a key of that role. A key that authenticated
/// is kept in `kept` (see [`Credentials`]) until a change could take its
/// right away; a wrong secret for a kept key is checked against the
/// database, as any other failure is.
pub(crate) async fn authenticate_key(
    store: &Store,
    kept: &Credentials,
    header: Option<&str>,
) -> Result<KeyHolder, AuthError> {
    let key = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let (id, secret) = split_key(key).unwrap_or(("", ""));
    let presented = hash_secret(secret);
    let same = |stored: &str| -> bool { presented.as_bytes().ct_eq(stored.as_bytes()).into() };
    // The generation before the row: a row read before a change is never
    // kept past it.
    let generation = if id.is_empty() {
        None
    } else {
        kept.generation().await
    };
    let hit = generation
        .and_then(|g| kept.get(id, g))
        .filter(|k| same(&k.row.secret_hash));
    let from_kept = hit.is_some();
    let row = match hit {
        Some(k) => Some(k.row),
        None if id.is_empty() => None,
        None => store.api_key(id).await?,
    };
    // Compare against a fixed all-zero hash when there is no row, so both paths do
    // the same work.
    let stored = row
        .as_ref()
        .map(|r| r.secret_hash.as_str())
        .unwrap_or("0000000000000000000000000000000000000000000000000000000000000000");
    let matches = same(stored);
    let mut row = match row {
        Some(r) if matches && !id.is_empty() => r,
        _ => return Err(AuthError::Invalid),
    };
    let at = now();
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= at) {
        return Err(AuthError::Invalid);
    }
    let role = Role::parse(&row.role).ok_or(AuthError::Invalid)?;
    // A kept key passed this under the same generation: no membership has
    // changed since.
    if let Some(member_id) = row.member_id.as_ref().filter(|_| !from_kept) {
        let member = store.member(member_id).await?.ok_or(AuthError::Invalid)?;
        let held = Role::parse(&member.role).ok_or(AuthError::Invalid)?;
        if member.tenant_id != row.tenant_id || !(held == role || held.may_assign(role)) {
            return Err(AuthError::Invalid);
        }
    }
    // `last_used_at` is kept to the minute: most requests need no write.
    if row
        .last_used_at
        .is_none_or(|used| at - used >= chrono::Duration::seconds(60))
    {
        store.touch_api_key(&row.id, at).await?;
        row.last_used_at = Some(at);
        kept.touched(&row.id, at);
    }
    let holder = KeyHolder {
        tenant_id: row.tenant_id.clone(),
        role,
        key_id: row.id.clone(),
        member_id: row.member_id.clone(),
    };
    if let (false, Some(g)) = (from_kept, generation) {
        kept.keep(row, g);
    }
    Ok(holder)
}

const SESSION_PREFIX: &str = "acs";

/// A new console session token: the cookie value, and the id to store (its
/// hash).
pub(crate) fn mint_session_token() -> (String, String) {
    let secret = random_hex(SECRET_BYTES);
    let id = hash_secret(&secret);
    (format!("{SESSION_PREFIX}_{secret}"), id)
}

/// The stored id of a presented session token, if it is well formed.
pub(crate) fn session_id(token: &str) -> Option<String> {
    let secret = token.strip_prefix(SESSION_PREFIX)?.strip_prefix('_')?;
    let ok = secret.len() == 2 * SECRET_BYTES && secret.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| hash_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_hash_to_the_stored_value() {
        let (row, key) = mint_api_key("t", "ci", Role::Developer, None, None);
        let (id, secret) = split_key(&key).unwrap();
        assert_eq!(id, row.id);
        assert_eq!(hash_secret(secret), row.secret_hash);
        assert!(!row.secret_hash.contains(secret));
    }

    #[test]
    fn session_tokens_hash_to_their_id_and_nothing_else_parses() {
        let (token, id) = mint_session_token();
        assert_eq!(session_id(&token), Some(id.clone()));
        assert!(!token.contains(&id));
        for bad in [
            "",
            "acs_",
            &token[..token.len() - 1],
            &token.replace("acs_", "atk_"),
            &format!("{token}0"),
        ] {
            assert_eq!(session_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let (_, key) = mint_api_key("t", "ci", Role::Developer, None, None);
        for bad in [
            "",
            "atk_",
            "atk__",
            &key[..key.len() - 1],
            &key.replace("atk_", "xyz_"),
            &format!("{key}0"),
            &key.replace('a', "ä"),
        ] {
            assert!(split_key(bad).is_none(), "{bad}");
        }
    }
}
