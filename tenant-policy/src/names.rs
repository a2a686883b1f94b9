//! What a tenant name, a region name and a worker pool's name may be. They
//! end up in URLs, logs, bucket names and certificates, so they are kept to
//! a safe alphabet.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must be 1 to {max} characters")]
    Length { what: &'static str, max: usize },
    #[error(
        "{what} may contain only lowercase letters, digits and '-', and must start with a letter"
    )]
    Alphabet { what: &'static str },
}

pub fn validate_tenant_name(name: &str) -> Result<(), NameError> {
    check("tenant name", name, 63)
}

pub fn validate_region(region: &str) -> Result<(), NameError> {
    check("region", region, 32)
}

/// A dedicated tenant's worker pool, as its join tokens and its workers'
/// certificates name it.
pub fn validate_pool(pool: &str) -> Result<(), NameError> {
    check("pool", pool, 32)
}

fn check(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() || s.len() > max {
        return Err(NameError::Length { what, max });
    }
    let starts_with_letter = s.as_bytes()[0].is_ascii_lowercase();
    let alphabet = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !starts_with_letter || !alphabet || s.ends_with('-') {
        return Err(NameError::Alphabet { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["acme", "eu-west-1", "a", "local", "t0"] {
            assert!(validate_tenant_name(ok).is_ok(), "{ok}");
            assert!(validate_region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "1acme",
            "acme-",
            "ac me",
            "acme_1",
            "ümlaut",
            &"a".repeat(64),
        ] {
            assert!(validate_tenant_name(bad).is_err(), "{bad}");
        }
        assert!(validate_region(&"a".repeat(33)).is_err());
        assert!(validate_pool("acme-pool").is_ok());
        assert!(validate_pool("Acme").is_err());
        assert!(validate_pool(&"a".repeat(33)).is_err());
    }
}
