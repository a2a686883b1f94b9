//! Secrets that can come from a file as well as a flag or variable
//! (`--database-url-file`, `--redis-url-file`, `--join-token-file`): a
//! mounted secret (Kubernetes, a Vault Agent sink) instead of an
//! environment variable every process of the pod can read.

use std::path::Path;

use anyhow::{Context, bail};

/// The secret given directly, or read from `file` (surrounding whitespace
/// trimmed, so a trailing newline does not count). Both at once is an
/// error; so is an empty file. A missing file is `None` when `optional`
/// (a worker's join token, needed only until it has enrolled).
pub(crate) fn secret(
    direct: Option<&str>,
    file: Option<&Path>,
    flag: &str,
    optional: bool,
) -> anyhow::Result<Option<String>> {
    match (direct, file) {
        (Some(_), Some(_)) => bail!("--{flag} and --{flag}-file: give one"),
        (Some(v), None) => Ok(Some(v.to_string())),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let text = match std::fs::read_to_string(path) {
                Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                read => read.with_context(|| format!("--{flag}-file {}", path.display()))?,
            };
            let value = text.trim();
            if value.is_empty() {
                bail!("--{flag}-file {}: the file is empty", path.display());
            }
            Ok(Some(value.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_flags_or_files() {
        let dir = std::env::temp_dir().join(format!("attache-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        std::fs::write(&file, "postgres://u:p@db/attache\n").unwrap();
        assert_eq!(
            secret(None, Some(&file), "database-url", false)
                .unwrap()
                .as_deref(),
            Some("postgres://u:p@db/attache"),
            "read, trailing newline trimmed"
        );
        assert_eq!(
            secret(Some("x"), None, "database-url", false)
                .unwrap()
                .as_deref(),
            Some("x")
        );
        assert!(secret(Some("x"), Some(&file), "database-url", false).is_err());
        let missing = dir.join("absent");
        assert!(secret(None, Some(&missing), "database-url", false).is_err());
        assert_eq!(
            secret(None, Some(&missing), "join-token", true).unwrap(),
            None
        );
        std::fs::write(&file, " \n").unwrap();
        let empty = secret(None, Some(&file), "join-token", true).unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        assert_eq!(secret(None, None, "join-token", true).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
