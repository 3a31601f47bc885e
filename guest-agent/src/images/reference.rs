//! Docker's image reference rules: default registry docker.io, the `library/` namespace,
//! `:tag` defaulting to latest, `@sha256:…` digests, and the short "familiar" form users see.

use anyhow::{anyhow, Result};
use oci_client::Reference;

pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference with docker's normalization applied.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub inner: Reference,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.trim() != s {
            return Err(anyhow!("invalid reference format: {s:?}"));
        }
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            // Mirror docker: only the repository part must be lowercase, but a tag may
            // carry capitals; check the name part alone.
            let name_part = s.split('@').next().unwrap_or(s);
            let name_only = match name_part.rfind(':') {
                Some(i) if !name_part[i..].contains('/') => &name_part[..i],
                _ => name_part,
            };
            if name_only.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(anyhow!(
                    "invalid reference format: repository name ({name_only}) must be lowercase"
                ));
            }
        }
        let inner = Reference::try_from(s).map_err(|e| anyhow!("invalid reference format: {e}"))?;
        Ok(ImageRef { inner })
    }

    /// Registry plus repository, e.g. `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.inner.registry(), self.inner.repository())
    }

    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// `name:tag`, with the default tag when neither tag nor digest was given.
    pub fn tag_key(&self) -> Option<String> {
        match (self.inner.tag(), self.inner.digest()) {
            (Some(t), _) => Some(format!("{}:{t}", self.full_name())),
            (None, Some(_)) => None,
            (None, None) => Some(format!("{}:latest", self.full_name())),
        }
    }

    pub fn digest_key(&self) -> Option<String> {
        self.inner
            .digest()
            .map(|d| format!("{}@{d}", self.full_name()))
    }

    /// The name shown to users in progress lines: `busybox`, `127.0.0.1:5000/busybox`.
    pub fn familiar_name(&self) -> String {
        familiar(&self.full_name())
    }

    pub fn registry(&self) -> &str {
        self.inner.registry()
    }
}

/// Strip docker.io/ and docker.io/library/ the way docker displays names.
pub fn familiar(full: &str) -> String {
    if let Some(rest) = full.strip_prefix("docker.io/library/") {
        if !rest.contains('/') {
            return rest.to_string();
        }
    }
    if let Some(rest) = full.strip_prefix("docker.io/") {
        return rest.to_string();
    }
    full.to_string()
}

/// Split a stored `name:tag` key into name and tag (the tag follows the last ':' after the last '/').
pub fn split_tag_key(key: &str) -> (&str, &str) {
    let slash = key.rfind('/').unwrap_or(0);
    match key[slash..].rfind(':') {
        Some(i) => (&key[..slash + i], &key[slash + i + 1..]),
        None => (key, ""),
    }
}

/// True when a string can only be (a prefix of) an image ID.
pub fn looks_like_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalization() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.full_name(), "docker.io/library/busybox");
        assert_eq!(r.tag_key().unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");

        let r = ImageRef::parse("registry.example.com:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.full_name(), "registry.example.com:5000/team/app");
        assert_eq!(r.tag(), Some("v1"));

        let r = ImageRef::parse("user/app").unwrap();
        assert_eq!(r.full_name(), "docker.io/user/app");
        assert_eq!(r.familiar_name(), "user/app");

        let d = "sha256:a7b1d9f327b102f35a06c3c641d2cd74773e839c7ff68b6d00c2330f364d54d6";
        let r = ImageRef::parse(&format!("127.0.0.1:5000/busybox@{d}")).unwrap();
        assert_eq!(r.tag_key(), None);
        assert_eq!(
            r.digest_key().unwrap(),
            format!("127.0.0.1:5000/busybox@{d}")
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "a b",
            "busybox:",
            "busybox@sha256:xyz",
            "-x",
            " busybox",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ImageRef::parse("busybox:MixedCase").is_ok());
    }

    #[test]
    fn tag_keys_split_after_the_port() {
        assert_eq!(
            split_tag_key("127.0.0.1:5000/busybox:latest"),
            ("127.0.0.1:5000/busybox", "latest")
        );
        assert_eq!(
            split_tag_key("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox", "1.36")
        );
    }
}
