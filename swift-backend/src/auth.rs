//! Authentication: Swift v1 (tempauth / swauth style) and Keystone v3, and the token
//! cache shared by every fork of a [`crate::SwiftClient`].
//!
//! ## Token lifecycle
//! One [`AuthState`] is shared (behind an `Arc`) by all forks, i.e. by all worker threads
//! and their runtimes, so a mount holds one token, not one per worker.
//!
//! * A token is refreshed *proactively* once less than `max(10% of its lifetime, 60 s)`
//!   remains (the margin is capped at half the lifetime so that short-lived test tokens do
//!   not refresh on every request). In that window the token is still valid: one request
//!   refreshes (whoever wins a `try_lock`) while the others carry on with the old token.
//! * When there is no valid token (first use, expiry, or a 401 invalidated it), requests
//!   queue on one async mutex; the first does the refresh and the rest find the new token
//!   when they get the lock. If that refresh failed, the waiters get a copy of its error
//!   instead of each retrying: no refresh storms against Keystone.
//! * A 401 from Swift invalidates the token *that request used* (compared by generation, so
//!   a 401 on an old token does not throw away a newer one) and the request is repeated
//!   once (see [`crate::client`]).
//!
//! The async mutex is `tokio::sync::Mutex`, which does not depend on a particular runtime:
//! forks living on different current-thread runtimes can wait on it.
//!
//! Times are kept as `Instant`s (monotonic); Keystone's wall-clock `expires_at` is turned
//! into a remaining duration at the moment the token arrives.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::client::SwiftClient;
use crate::error::{Result, SwiftError};

/// How to obtain a token and storage URL.
#[derive(Clone)]
pub enum AuthConfig {
    /// Swift v1 auth (tempauth, swauth): `GET url` with `X-Auth-User` / `X-Auth-Key`.
    TempAuth {
        /// e.g. `http://127.0.0.1:8080/auth/v1.0`
        url: String,
        /// e.g. `test:tester`
        user: String,
        key: String,
    },
    /// Keystone v3: password auth scoped to a project (user and project domains by name),
    /// or application-credential auth when `application_credential` is set (then `user`,
    /// `password` and the project fields are not sent: the credential carries its scope).
    Keystone {
        /// e.g. `http://127.0.0.1:5000/v3`; `/v3` is appended when missing.
        auth_url: String,
        user: String,
        password: String,
        user_domain: String,
        project: String,
        project_domain: String,
        /// Catalog region to use (matched against `region_id` and `region`); `None` takes
        /// the first object-store endpoint with the right interface.
        region: Option<String>,
        /// `public`, `internal` or `admin`.
        interface: String,
        /// `(id, secret)` of an application credential.
        application_credential: Option<(String, String)>,
    },
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfig::TempAuth { url, user, .. } => f
                .debug_struct("TempAuth")
                .field("url", url)
                .field("user", user)
                .field("key", &REDACTED)
                .finish(),
            AuthConfig::Keystone {
                auth_url,
                user,
                user_domain,
                project,
                project_domain,
                region,
                interface,
                application_credential,
                ..
            } => f
                .debug_struct("Keystone")
                .field("auth_url", auth_url)
                .field("user", user)
                .field("password", &REDACTED)
                .field("user_domain", user_domain)
                .field("project", project)
                .field("project_domain", project_domain)
                .field("region", region)
                .field("interface", interface)
                .field(
                    "application_credential",
                    &application_credential
                        .as_ref()
                        .map(|(id, _)| (id.as_str(), REDACTED)),
                )
                .finish(),
        }
    }
}

impl AuthConfig {
    /// Who we authenticate as, for error messages.
    pub fn user_label(&self) -> String {
        match self {
            AuthConfig::TempAuth { user, .. } => user.clone(),
            AuthConfig::Keystone {
                application_credential: Some((id, _)),
                ..
            } => format!("application-credential:{id}"),
            AuthConfig::Keystone {
                user, user_domain, ..
            } => format!("{user} (domain {user_domain})"),
        }
    }

    /// The URL we send the auth request to.
    pub fn endpoint(&self) -> String {
        match self {
            AuthConfig::TempAuth { url, .. } => url.clone(),
            AuthConfig::Keystone { auth_url, .. } => {
                let base = auth_url.trim_end_matches('/');
                if base.ends_with("/v3") {
                    format!("{base}/auth/tokens")
                } else {
                    format!("{base}/v3/auth/tokens")
                }
            }
        }
    }

    fn auth_error(&self, reason: impl Into<String>) -> SwiftError {
        SwiftError::Auth {
            user: self.user_label(),
            url: self.endpoint(),
            reason: reason.into(),
        }
    }
}

/// A token and where to use it.
pub(crate) struct Token {
    /// `X-Auth-Token` value, marked sensitive so it never shows in debug output.
    pub value: HeaderValue,
    /// Account URL, e.g. `http://host:8080/v1/AUTH_test` (no trailing slash).
    pub storage_url: String,
    /// Refresh proactively from this point on.
    pub refresh_at: Instant,
    /// Do not use after this point.
    pub expires: Instant,
    /// Increases with every token obtained; lets a 401 invalidate only the token it saw.
    pub generation: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &REDACTED)
            .field("storage_url", &self.storage_url)
            .field("generation", &self.generation)
            .finish()
    }
}

/// What an auth request returns.
struct Grant {
    token: String,
    storage_url: String,
    lifetime: Duration,
}

/// Token cache shared by all forks of a client.
pub(crate) struct AuthState {
    config: AuthConfig,
    storage_url_override: Option<String>,
    current: Mutex<Option<Arc<Token>>>,
    /// Held by the one task doing a refresh.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Refreshes started so far; a waiter compares it to learn a refresh happened.
    refresh_seq: AtomicU64,
    /// The error of the last refresh, with its sequence number.
    last_failure: Mutex<Option<(u64, SwiftError)>>,
    generation: AtomicU64,
}

/// How long before expiry to refresh: `max(lifetime / 10, 60 s)`, but at most half the
/// lifetime (a 30 s token refreshes after 15 s, not on every request).
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .max(Duration::from_secs(60))
        .min(lifetime / 2)
}

impl AuthState {
    pub fn new(config: AuthConfig, storage_url_override: Option<String>) -> Self {
        AuthState {
            config,
            storage_url_override,
            current: Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            refresh_seq: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Number of auth requests made so far (refreshes, including failed ones).
    pub fn refresh_count(&self) -> u64 {
        self.refresh_seq.load(Ordering::SeqCst)
    }

    /// A valid token, refreshing it if needed (see the module docs for the protocol).
    pub async fn token(&self, client: &SwiftClient) -> Result<Arc<Token>> {
        let cached = self.current.lock().clone();
        if let Some(t) = cached {
            let now = Instant::now();
            if now < t.refresh_at {
                return Ok(t);
            }
            if now < t.expires {
                // Still valid: refresh in the background of this one request only.
                if let Ok(_guard) = self.refresh_lock.try_lock() {
                    let newer = self.current.lock().clone();
                    if let Some(n) = newer {
                        if n.generation != t.generation {
                            return Ok(n);
                        }
                    }
                    match self.refresh(client).await {
                        Ok(n) => return Ok(n),
                        Err(e) => {
                            tracing::warn!(error = %e, "proactive token refresh failed; using the current token");
                            return Ok(t);
                        }
                    }
                }
                return Ok(t);
            }
        }
        let seen = self.refresh_seq.load(Ordering::SeqCst);
        let _guard = self.refresh_lock.lock().await;
        if let Some(t) = self.current.lock().clone() {
            if Instant::now() < t.expires {
                return Ok(t);
            }
        }
        if self.refresh_seq.load(Ordering::SeqCst) != seen {
            if let Some((_, e)) = self.last_failure.lock().clone() {
                return Err(e);
            }
        }
        self.refresh(client).await
    }

    /// Drops the token of generation `generation` after Swift answered 401 to it.
    pub fn invalidate(&self, generation: u64) {
        let mut cur = self.current.lock();
        if cur.as_ref().is_some_and(|t| t.generation == generation) {
            *cur = None;
        }
    }

    /// Test hook: makes the cached token look expired, forcing a refresh on next use.
    pub fn expire_now(&self) {
        let mut cur = self.current.lock();
        if let Some(t) = cur.as_ref() {
            let now = Instant::now();
            *cur = Some(Arc::new(Token {
                value: t.value.clone(),
                storage_url: t.storage_url.clone(),
                refresh_at: now,
                expires: now,
                generation: t.generation,
            }));
        }
    }

    /// Test hook: replaces the cached token's value with garbage, keeping its expiry, so
    /// the next request gets a 401 from Swift.
    pub fn corrupt(&self) {
        let mut cur = self.current.lock();
        if let Some(t) = cur.as_ref() {
            let mut value = HeaderValue::from_static("AUTH_tk00000000000000000000000000bogus");
            value.set_sensitive(true);
            *cur = Some(Arc::new(Token {
                value,
                storage_url: t.storage_url.clone(),
                refresh_at: t.refresh_at,
                expires: t.expires,
                generation: t.generation,
            }));
        }
    }

    /// Current storage URL, if a token was obtained.
    pub fn storage_url(&self) -> Option<String> {
        self.current.lock().as_ref().map(|t| t.storage_url.clone())
    }

    async fn refresh(&self, client: &SwiftClient) -> Result<Arc<Token>> {
        let seq = self.refresh_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        let res = match &self.config {
            AuthConfig::TempAuth { url, user, key } => {
                v1_auth(&self.config, client, url, user, key).await
            }
            AuthConfig::Keystone { .. } => keystone_auth(&self.config, client).await,
        };
        match res {
            Ok(grant) => {
                let storage_url = self
                    .storage_url_override
                    .clone()
                    .unwrap_or(grant.storage_url)
                    .trim_end_matches('/')
                    .to_string();
                let mut value = HeaderValue::from_str(&grant.token)
                    .map_err(|_| self.config.auth_error("token is not a valid header value"))?;
                value.set_sensitive(true);
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                let token = Arc::new(Token {
                    value,
                    storage_url,
                    refresh_at: started + grant.lifetime - refresh_margin(grant.lifetime),
                    expires: started + grant.lifetime,
                    generation,
                });
                tracing::debug!(
                    user = %self.config.user_label(),
                    lifetime_s = grant.lifetime.as_secs(),
                    generation,
                    storage_url = %token.storage_url,
                    "obtained Swift token"
                );
                *self.current.lock() = Some(token.clone());
                *self.last_failure.lock() = None;
                Ok(token)
            }
            Err(e) => {
                *self.last_failure.lock() = Some((seq, e.clone()));
                Err(e)
            }
        }
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn status_reason(status: StatusCode, body: &Bytes) -> String {
    let mut s = status.as_u16().to_string();
    if let Some(r) = status.canonical_reason() {
        s.push(' ');
        s.push_str(r);
    }
    // Keystone explains itself in {"error": {"message": ...}}.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v
            .pointer("/error/message")
            .and_then(serde_json::Value::as_str)
        {
            s.push_str(": ");
            s.push_str(&crate::client::one_line(m, 200));
        }
    }
    s
}

/// Swift v1 auth: `GET /auth/v1.0` → `X-Storage-Url`, `X-Auth-Token`,
/// `X-Auth-Token-Expires` (seconds; assumed one hour when absent).
async fn v1_auth(
    cfg: &AuthConfig,
    client: &SwiftClient,
    url: &str,
    user: &str,
    key: &str,
) -> Result<Grant> {
    let mut headers = HeaderMap::new();
    let hv = |s: &str| {
        HeaderValue::from_str(s)
            .map_err(|_| cfg.auth_error("user or key contains characters not allowed in a header"))
    };
    headers.insert("x-auth-user", hv(user)?);
    let mut k = hv(key)?;
    k.set_sensitive(true);
    headers.insert("x-auth-key", k);
    let (status, h, body) = client
        .raw_request(Method::GET, url, headers, Bytes::new())
        .await?;
    if !status.is_success() {
        return Err(cfg.auth_error(status_reason(status, &body)));
    }
    let token = header_str(&h, "x-auth-token")
        .or_else(|| header_str(&h, "x-storage-token"))
        .ok_or_else(|| cfg.auth_error("response has no X-Auth-Token"))?;
    let storage_url = header_str(&h, "x-storage-url")
        .ok_or_else(|| cfg.auth_error("response has no X-Storage-Url"))?;
    let lifetime = header_str(&h, "x-auth-token-expires")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(3600));
    Ok(Grant {
        token: token.to_string(),
        storage_url: storage_url.to_string(),
        lifetime,
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    #[serde(default)]
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    url: String,
}

/// Keystone v3 `POST /v3/auth/tokens`; token in `X-Subject-Token`, storage URL from the
/// `object-store` catalog entry.
async fn keystone_auth(cfg: &AuthConfig, client: &SwiftClient) -> Result<Grant> {
    let AuthConfig::Keystone {
        user,
        password,
        user_domain,
        project,
        project_domain,
        region,
        interface,
        application_credential,
        ..
    } = cfg
    else {
        return Err(SwiftError::Config("not a Keystone config".into()));
    };
    let body = match application_credential {
        Some((id, secret)) => serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret}
                }
            }
        }),
        None => serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": user,
                            "domain": {"name": user_domain},
                            "password": password
                        }
                    }
                },
                "scope": {
                    "project": {"name": project, "domain": {"name": project_domain}}
                }
            }
        }),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let url = cfg.endpoint();
    let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| cfg.auth_error(e.to_string()))?);
    let (status, h, resp) = client
        .raw_request(Method::POST, &url, headers, body)
        .await?;
    if !status.is_success() {
        let mut reason = status_reason(status, &resp);
        if application_credential.is_none() {
            reason.push_str(&format!(
                " (scope: project {project:?} in domain {project_domain:?})"
            ));
        }
        return Err(cfg.auth_error(reason));
    }
    let token = header_str(&h, "x-subject-token")
        .ok_or_else(|| cfg.auth_error("response has no X-Subject-Token"))?
        .to_string();
    let parsed: TokenResponse = serde_json::from_slice(&resp)
        .map_err(|e| cfg.auth_error(format!("unparsable token response: {e}")))?;
    let storage_url = pick_endpoint(&parsed.token.catalog, interface, region.as_deref())
        .map_err(|e| cfg.auth_error(e))?;
    let lifetime = match parse_rfc3339(&parsed.token.expires_at) {
        Some(at) => match at.duration_since(SystemTime::now()) {
            Ok(d) if d > Duration::from_secs(1) => d,
            _ => {
                tracing::warn!(expires_at = %parsed.token.expires_at,
                    "Keystone token already expired by our clock (clock skew?); assuming 60 s");
                Duration::from_secs(60)
            }
        },
        None => {
            return Err(cfg.auth_error(format!(
                "unparsable expires_at {:?}",
                parsed.token.expires_at
            )))
        }
    };
    Ok(Grant {
        token,
        storage_url,
        lifetime,
    })
}

/// Chooses the object-store endpoint for `interface` and `region` (matched against
/// `region_id` or `region`; `None` takes the first). The error lists what the catalog
/// offers, because "no endpoint" alone sends people guessing region names.
fn pick_endpoint(
    catalog: &[CatalogEntry],
    interface: &str,
    region: Option<&str>,
) -> std::result::Result<String, String> {
    let found = catalog
        .iter()
        .filter(|e| e.kind == "object-store")
        .flat_map(|e| e.endpoints.iter())
        .find(|ep| {
            ep.interface == interface
                && region.is_none_or(|r| {
                    ep.region_id.as_deref() == Some(r) || ep.region.as_deref() == Some(r)
                })
        });
    if let Some(ep) = found {
        return Ok(ep.url.clone());
    }
    let mut listing = Vec::new();
    for e in catalog {
        for ep in &e.endpoints {
            listing.push(format!(
                "{} {} {} {}",
                e.kind,
                ep.interface,
                ep.region_id
                    .as_deref()
                    .or(ep.region.as_deref())
                    .unwrap_or("-"),
                ep.url
            ));
        }
    }
    let listing = if listing.is_empty() {
        "nothing (empty catalog)".to_string()
    } else {
        listing.join("; ")
    };
    Err(format!(
        "no object-store endpoint with interface {interface:?} in region {}; the catalog has: {listing}",
        region.map_or("(any)".to_string(), |r| format!("{r:?}")),
    ))
}

/// Parses RFC 3339 / ISO 8601 timestamps as Keystone writes them
/// (`2026-11-25T04:09:45.000000Z`, also `+00:00` offsets).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut n: u64 = 0;
        for (i, c) in frac[..digits].bytes().enumerate() {
            if i < 9 {
                n = n * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            n *= 10;
        }
        nanos = n;
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "" | "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let t = parse_rfc3339("2026-11-25T04:09:45.000000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_579_785
        );
        let t2 = parse_rfc3339("2026-11-25T05:09:45.5+01:00").unwrap();
        assert_eq!(
            t2.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_795_579_785_500)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-11-25T04:09:45.Z",
            "2026-11-25T04:09:45+0100",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn margin() {
        assert_eq!(
            refresh_margin(Duration::from_secs(86_400)),
            Duration::from_secs(8_640)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3_600)),
            Duration::from_secs(360)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
    }

    fn ep(interface: &str, region: &str, url: &str) -> Endpoint {
        Endpoint {
            interface: interface.into(),
            region_id: Some(region.into()),
            region: Some(region.into()),
            url: url.into(),
        }
    }

    #[test]
    fn endpoint_choice() {
        let catalog = vec![
            CatalogEntry {
                kind: "identity".into(),
                endpoints: vec![ep("public", "RegionOne", "http://ks")],
            },
            CatalogEntry {
                kind: "object-store".into(),
                endpoints: vec![
                    ep("internal", "RegionOne", "http://int1"),
                    ep("public", "RegionOne", "http://pub1"),
                    ep("public", "RegionTwo", "http://pub2"),
                ],
            },
        ];
        assert_eq!(
            pick_endpoint(&catalog, "public", None).unwrap(),
            "http://pub1"
        );
        assert_eq!(
            pick_endpoint(&catalog, "public", Some("RegionTwo")).unwrap(),
            "http://pub2"
        );
        assert_eq!(
            pick_endpoint(&catalog, "internal", Some("RegionOne")).unwrap(),
            "http://int1"
        );
        let err = pick_endpoint(&catalog, "admin", Some("RegionOne")).unwrap_err();
        assert!(
            err.contains("object-store internal RegionOne http://int1"),
            "{err}"
        );
        assert!(err.contains("identity public RegionOne http://ks"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let ks = AuthConfig::Keystone {
            auth_url: "http://ks/v3".into(),
            user: "u".into(),
            password: "hunter2".into(),
            user_domain: "Default".into(),
            project: "p".into(),
            project_domain: "Default".into(),
            region: None,
            interface: "public".into(),
            application_credential: Some(("id1".into(), "s3cret".into())),
        };
        let d = format!("{ks:?}");
        assert!(
            !d.contains("hunter2") && !d.contains("s3cret") && d.contains("id1"),
            "{d}"
        );
        let v1 = AuthConfig::TempAuth {
            url: "http://h/auth/v1.0".into(),
            user: "test:tester".into(),
            key: "testing".into(),
        };
        let d = format!("{v1:?}");
        assert!(!d.contains("testing\"") && d.contains("test:tester"), "{d}");
        assert_eq!(ks.endpoint(), "http://ks/v3/auth/tokens");
    }
}
