//! Talking to registries through oci-client: which protocol a registry gets, credentials,
//! and turning the client's errors into messages that say what to do.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
pub use skiff_common::mirror::Mirror;
use skiff_common::vsock::EGRESS_UNREACHABLE;

/// How image references name Docker Hub.
const DOCKER_HUB: &str = "docker.io";

/// Registry settings of the agent, and its clients.
#[derive(Clone, Default)]
pub struct RegistryConfig {
    /// Registries (`host` or `host:port`) reached over plain http, besides loopback ones.
    pub insecure: Vec<String>,
    /// Docker Hub's mirrors, tried in order before Docker Hub itself (daemon.json's
    /// `registry-mirrors`).
    pub mirrors: Vec<Mirror>,
    /// Every registry request goes through this HTTP proxy (in the VM: the host's way out).
    pub proxy: Option<String>,
    /// How long a registry may stay silent mid-answer before the request fails (and a layer
    /// download is tried again).
    pub read_timeout: Duration,
    /// One client per registry and credentials, kept so that connections and tokens are
    /// reused: a re-pull of an unchanged tag then costs one manifest request.
    clients: Arc<Mutex<HashMap<String, Client>>>,
    /// The registries (and credentials) whose `/v2/` answered without a token challenge: a
    /// manifest request goes to them straight, without asking `/v2/` again (a re-pull of an
    /// unchanged tag is then one request). Forgotten on a 401.
    tokenless: Arc<Mutex<HashSet<String>>>,
    /// The client of skiff's own transfers, kept so that its connections are reused.
    transfers: Arc<OnceLock<reqwest::Client>>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("insecure", &self.insecure)
            .field("mirrors", &self.mirrors)
            // The proxy's address carries the VM's token as its credentials.
            .field("proxy", &self.proxy.as_ref().map(|_| "(the host's egress)"))
            .finish()
    }
}

impl RegistryConfig {
    pub fn new(insecure: Vec<String>) -> Self {
        RegistryConfig {
            insecure,
            mirrors: Vec::new(),
            proxy: None,
            read_timeout: Duration::from_secs(60),
            clients: Arc::default(),
            tokenless: Arc::default(),
            transfers: Arc::default(),
        }
    }

    /// Docker talks plain http to loopback registries and to the ones listed as insecure.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = host_part(registry);
        let loopback = host == "localhost"
            || host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        loopback
            || self.insecure.iter().any(|r| r == registry || r == host)
            || self
                .mirrors
                .iter()
                .any(|m| m.insecure && m.host == registry)
    }

    /// Where to look for an image of `registry`, in order: Docker Hub's mirrors first (docker
    /// uses mirrors for Docker Hub only), then the registry itself.
    pub fn sources(&self, registry: &str) -> Vec<String> {
        let mut out = Vec::new();
        if registry == DOCKER_HUB {
            out.extend(self.mirrors.iter().map(|m| m.host.clone()));
        }
        out.push(registry.to_string());
        out
    }

    /// A client of its own (for checking credentials without touching the cached ones).
    pub fn new_client(&self, registry: &str) -> Client {
        let protocol = if self.is_insecure(registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(self.read_timeout),
            max_concurrent_download: 8,
            http_proxy: self.proxy.clone(),
            https_proxy: self.proxy.clone(),
            ..Default::default()
        })
    }

    /// The cached client for a registry and these credentials; `true` when it is new.
    pub fn client_for(&self, registry: &str, auth: &RegistryAuth) -> (Client, bool) {
        let key = client_key(registry, auth);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return (c.clone(), false);
        }
        let c = self.new_client(registry);
        clients.insert(key, c.clone());
        (c, true)
    }
}

/// Which cached client and tokenless mark belong to a registry and credentials (hashed:
/// the key is not a secret's copy).
fn client_key(registry: &str, auth: &RegistryAuth) -> String {
    let who = match auth {
        RegistryAuth::Anonymous => "anonymous".to_string(),
        RegistryAuth::Basic(u, p) => {
            format!("basic:{}", hex::encode(Sha256::digest(format!("{u}:{p}"))))
        }
        RegistryAuth::Bearer(t) => format!("bearer:{}", hex::encode(Sha256::digest(t))),
    };
    format!("{registry}|{who}")
}

/// What a capped manifest request gave.
pub enum CappedManifest {
    /// The body, whole and within the limit, and its digest.
    Got(bytes::Bytes, String),
    /// The registry answered something else than 2xx, or could not be reached: the caller
    /// asks again through oci-client, whose errors say what went wrong in the usual words.
    Unanswered,
}

/// `GET` a manifest reading at most `limit` bytes of it.
///
/// Why not oci-client's `pull_manifest_raw`: it reads the whole body into memory before the
/// caller sees its size, so a registry could make the agent hold a manifest of any size. This
/// request refuses a `Content-Length` over the limit before reading, and stops reading at
/// the limit when the length is unknown or a lie. The bearer token comes from oci-client's
/// own challenge flow (`Client::auth`).
pub async fn fetch_manifest_capped(
    cfg: &RegistryConfig,
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    auth: &RegistryAuth,
    accept: &[&str],
    limit: usize,
    what: &str,
) -> anyhow::Result<CappedManifest> {
    use anyhow::bail;
    let registry = reference.resolve_registry();
    let key = client_key(registry, auth);
    let tokenless = || cfg.tokenless.lock().unwrap_or_else(|e| e.into_inner());
    // oci-client's auth asks `/v2/` every time; a registry that gave no token once is asked
    // again only when it answers 401.
    let token = if tokenless().contains(&key) {
        None
    } else if matches!(auth, RegistryAuth::Anonymous) && open_to_anonymous(cfg, registry).await {
        // Asked with our own request, not oci-client's auth: that would put the registry in
        // the client's credential store, and for a registry that hands out no token the
        // client then asks `/v2/` again before every blob (a round trip per layer).
        tokenless().insert(key.clone());
        None
    } else {
        match client
            .auth(reference, auth, oci_client::RegistryOperation::Pull)
            .await
        {
            Ok(None) => {
                tokenless().insert(key.clone());
                None
            }
            Ok(t) => t,
            Err(_) => return Ok(CappedManifest::Unanswered),
        }
    };
    let at = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    let (base, http) = transfer_client(cfg, registry)?;
    let url = format!("{base}{}/manifests/{at}", reference.repository());
    let req = OwnAuth::new(token, auth).apply(
        http.get(&url)
            .header(reqwest::header::ACCEPT, accept.join(", ")),
    );
    let Ok(mut res) = req.send().await else {
        return Ok(CappedManifest::Unanswered);
    };
    if !res.status().is_success() {
        if res.status() == reqwest::StatusCode::UNAUTHORIZED {
            tokenless().remove(&key);
        }
        return Ok(CappedManifest::Unanswered);
    }
    if let Some(len) = res.content_length().filter(|l| *l > limit as u64) {
        bail!("the manifest of {what} is {len} bytes, over the {limit} byte limit");
    }
    let header_digest = res
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("reading the manifest of {what}: {}", root_cause(&e)))?
    {
        if body.len() + chunk.len() > limit {
            bail!("the manifest of {what} is over the {limit} byte limit");
        }
        body.extend_from_slice(&chunk);
    }
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    // A digest the client asked for is the one that counts; otherwise the registry's claim
    // must hold too.
    let expected = reference.digest().map(str::to_string).or(header_digest);
    if let Some(e) = expected.filter(|e| e.starts_with("sha256:") && *e != digest) {
        bail!("the manifest of {what} does not match its digest: expected {e}, got {digest}");
    }
    Ok(CappedManifest::Got(body.freeze(), digest))
}

/// Whether the registry's `/v2/` answers an anonymous request with 2xx: no token to get.
async fn open_to_anonymous(cfg: &RegistryConfig, registry: &str) -> bool {
    let Ok((url, http)) = probe_client(cfg, registry) else {
        return false;
    };
    matches!(http.get(&url).send().await, Ok(res) if res.status().is_success())
}

/// The registry's `/v2/` URL and a client for a request of our own to it (a login check, a
/// push's first request), through the engine's proxy when it has one.
pub fn probe_client(
    cfg: &RegistryConfig,
    registry: &str,
) -> anyhow::Result<(String, reqwest::Client)> {
    let client = own_client(cfg)?.timeout(Duration::from_secs(30)).build()?;
    Ok((v2_url(cfg, registry), client))
}

/// The registry's `/v2/` URL and a client for transfers of our own (a capped manifest read, a
/// streamed upload): no bound on the whole request, which may carry a large blob, but on each
/// wait for the peer.
pub fn transfer_client(
    cfg: &RegistryConfig,
    registry: &str,
) -> anyhow::Result<(String, reqwest::Client)> {
    let client = match cfg.transfers.get() {
        Some(c) => c.clone(),
        None => {
            let c = own_client(cfg)?.read_timeout(cfg.read_timeout).build()?;
            cfg.transfers.get_or_init(|| c).clone()
        }
    };
    Ok((v2_url(cfg, registry), client))
}

fn v2_url(cfg: &RegistryConfig, registry: &str) -> String {
    let scheme = if cfg.is_insecure(registry) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{registry}/v2/")
}

/// How skiff's own requests authenticate: with the token oci-client's challenge flow got
/// (`Client::auth`), or else with basic credentials.
pub enum OwnAuth {
    None,
    Bearer(String),
    Basic(String, String),
}

impl OwnAuth {
    pub fn new(token: Option<String>, auth: &RegistryAuth) -> OwnAuth {
        match (token, auth) {
            (Some(t), _) => OwnAuth::Bearer(t),
            (None, RegistryAuth::Basic(u, p)) => OwnAuth::Basic(u.clone(), p.clone()),
            (None, _) => OwnAuth::None,
        }
    }

    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            OwnAuth::None => req,
            OwnAuth::Bearer(t) => req.bearer_auth(t),
            OwnAuth::Basic(u, p) => req.basic_auth(u, Some(p)),
        }
    }
}

/// A client for the requests skiff makes itself rather than through oci-client, through the
/// engine's proxy when it has one.
fn own_client(cfg: &RegistryConfig) -> anyhow::Result<reqwest::ClientBuilder> {
    let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    Ok(match &cfg.proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy)?),
        None => builder,
    })
}

/// Check basic-auth credentials with `GET /v2/`. Token registries are checked by oci-client's
/// challenge flow instead; for them this returns Ok without a request of its own.
pub async fn check_basic(
    cfg: &RegistryConfig,
    registry: &str,
    auth: &AuthConfig,
) -> Result<(), String> {
    let (url, client) = probe_client(cfg, registry).map_err(|e| format!("{e:#}"))?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {registry}: {}", root_cause(&e)))?;
    let basic = res
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.to_ascii_lowercase().starts_with("basic"))
        .unwrap_or(false);
    if res.status() != reqwest::StatusCode::UNAUTHORIZED || !basic {
        return Ok(());
    }
    let res = client
        .get(&url)
        .basic_auth(&auth.username, Some(&auth.password))
        .send()
        .await
        .map_err(|e| format!("cannot reach {registry}: {}", root_cause(&e)))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err("unauthorized: incorrect username or password".into())
    }
}

fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(registry)
}

/// The body of docker's `X-Registry-Auth` header (base64url JSON) and of `POST /auth`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthConfig {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub username: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub password: String,
    #[serde(default, alias = "serveraddress", deserialize_with = "null_as_empty")]
    pub server_address: String,
    #[serde(default, alias = "identitytoken", deserialize_with = "null_as_empty")]
    pub identity_token: String,
    #[serde(default, alias = "registrytoken", deserialize_with = "null_as_empty")]
    pub registry_token: String,
}

/// Clients send the auth headers in base64, padded or not, URL-safe or not.
fn decode_header(value: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(value).ok())
}

/// Clients (bollard among them) send absent fields as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl AuthConfig {
    pub fn from_header(value: &str) -> Option<Self> {
        serde_json::from_slice(&decode_header(value)?).ok()
    }

    /// `X-Registry-Config` (a build's): credentials by registry.
    pub fn map_from_header(value: &str) -> std::collections::HashMap<String, AuthConfig> {
        decode_header(value)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn to_registry_auth(&self) -> RegistryAuth {
        if !self.registry_token.is_empty() {
            RegistryAuth::Bearer(self.registry_token.clone())
        } else if !self.username.is_empty() {
            RegistryAuth::Basic(self.username.clone(), self.password.clone())
        } else {
            RegistryAuth::Anonymous
        }
    }
}

/// What went wrong talking to a registry, in the words a user needs.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Other(String),
}

impl RegistryError {
    /// `what` names the thing asked for, e.g. `manifest for 127.0.0.1:5000/busybox:nope`.
    pub fn from_oci(
        err: OciDistributionError,
        registry: &str,
        what: &str,
        had_credentials: bool,
    ) -> Self {
        let login_hint = if had_credentials {
            format!(
                "the registry refused the credentials; check them with `skiff login {registry}`"
            )
        } else {
            format!("the registry asks for credentials; run `skiff login {registry}` first")
        };
        match err {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                RegistryError::Unauthorized(format!("{what}: access denied: {login_hint}"))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                let msg = first.map(|e| e.message.clone()).unwrap_or_default();
                match first.map(|e| &e.code) {
                    Some(OciErrorCode::ManifestUnknown)
                    | Some(OciErrorCode::NameUnknown)
                    | Some(OciErrorCode::BlobUnknown)
                    | Some(OciErrorCode::NotFound) => {
                        RegistryError::NotFound(format!("{what} not found: {msg}"))
                    }
                    Some(OciErrorCode::Unauthorized) | Some(OciErrorCode::Denied) => {
                        RegistryError::Unauthorized(format!(
                            "pull access denied for {what}: {login_hint}"
                        ))
                    }
                    _ => RegistryError::Other(format!("registry {registry} refused {what}: {msg}")),
                }
            }
            OciDistributionError::ServerError { code: 404, .. }
            | OciDistributionError::ImageManifestNotFoundError(_) => {
                RegistryError::NotFound(format!("{what} not found: manifest unknown"))
            }
            // In skiff's VM: the host's proxy could not reach the registry.
            OciDistributionError::ServerError {
                code: 502, message, ..
            } if message.starts_with(EGRESS_UNREACHABLE) => {
                let cause = message
                    .trim()
                    .rsplit_once(": ")
                    .map_or(message.trim(), |(_, c)| c);
                RegistryError::Unreachable(format!(
                    "cannot reach registry {registry} from the host: {cause}; check the address and that the registry is up"
                ))
            }
            OciDistributionError::ServerError { code, message, .. } => {
                RegistryError::Other(format!(
                    "registry {registry} answered {code} for {what}: {}",
                    message.trim()
                ))
            }
            OciDistributionError::RequestError(e) => {
                if e.is_connect() || e.is_timeout() {
                    RegistryError::Unreachable(format!(
                        "cannot reach registry {registry}: {}; check the address and that the registry is up",
                        root_cause(&e)
                    ))
                } else {
                    RegistryError::Other(format!(
                        "fetching {what} from {registry}: {}",
                        root_cause(&e)
                    ))
                }
            }
            other => RegistryError::Other(format!("fetching {what} from {registry}: {other}")),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_use_http() {
        let c = RegistryConfig::new(vec!["registry.lan:5000".into()]);
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("127.8.9.1"));
        assert!(c.is_insecure("localhost:5001"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("registry.lan:5000"));
        assert!(!c.is_insecure("registry.lan:5001"));
        assert!(!c.is_insecure("docker.io"));
    }

    #[test]
    fn null_fields_are_accepted() {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","auth":null,"email":null,"serveraddress":"r:1","identitytoken":null}"#);
        let a = AuthConfig::from_header(&h).unwrap();
        assert_eq!(
            (a.username.as_str(), a.server_address.as_str()),
            ("u", "r:1")
        );
    }

    #[test]
    fn x_registry_auth_header_decodes() {
        assert!(AuthConfig::from_header("e30=")
            .map(|a| a.username.is_empty())
            .unwrap_or(false));
        let h = "eyJ1c2VybmFtZSI6InNraWZmIiwicGFzc3dvcmQiOiJza2lmZnBhc3MiLCJzZXJ2ZXJhZGRyZXNzIjoiMTI3LjAuMC4xOjUwMDEifQ==";
        let a = AuthConfig::from_header(h).unwrap();
        assert_eq!(a.username, "skiff");
        assert_eq!(a.password, "skiffpass");
        assert_eq!(a.server_address, "127.0.0.1:5001");
    }

    #[test]
    fn mirrors_serve_docker_hub_only() {
        let mut c = RegistryConfig::new(Vec::new());
        c.mirrors = vec![
            "http://mirror.lan:5000".parse().expect("valid"),
            "https://cache.example".parse().expect("valid"),
        ];
        assert_eq!(
            c.sources("docker.io"),
            ["mirror.lan:5000", "cache.example", "docker.io"]
        );
        assert_eq!(c.sources("ghcr.io"), ["ghcr.io"]);
        assert!(c.is_insecure("mirror.lan:5000"));
        assert!(!c.is_insecure("cache.example"));
    }
}
