//! `KvStore` on a real etcd cluster (etcd-client / gRPC).
//!
//! Every call is bounded by the request timeout. Errors are classified so the runner
//! knows what is safe: a read can always be retried; a transaction whose connection broke
//! after it was sent is `Ambiguous` and is resolved by re-reading its writes, never by
//! blindly sending it again.
//!
//! **Dead members.** etcd-client balances requests over the endpoints with tonic's p2c
//! balancer, which keeps picking an endpoint whose connection is refused and fails the
//! request with "tcp connect error" instead of trying another (grpc-rust issue #2839). Such
//! a request never left this machine, so it is re-sent at once (to another pick of the
//! balancer, a few times within the request timeout) and, should it still fail, classified
//! `Unavailable`, never `Ambiguous`. `connect` checks each endpoint once and logs a warning
//! naming every one that does not answer; it fails only when none does.

use super::kv::*;
use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, TlsOptions,
    Txn, TxnOp, TxnOpResponse,
};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
    endpoints: String,
    request_timeout: Duration,
    /// Attempts of one request whose connection is refused (see the module doc).
    connect_attempts: u32,
}

impl EtcdKv {
    /// Connects to the cluster. Fails within `dial_timeout` when no endpoint answers.
    pub async fn connect(opts: &EtcdOptions) -> Result<Self, KvError> {
        let endpoints = opts.endpoints.join(",");
        let mut co = ConnectOptions::new()
            .with_connect_timeout(opts.dial_timeout)
            .with_timeout(opts.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if let (Some(u), Some(p)) = (&opts.username, &opts.password) {
            co = co.with_user(u.clone(), p.clone());
        }
        if opts.ca_file.is_some() || opts.cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &opts.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    KvError::Other(format!("reading etcd CA file {}: {e}", ca.display()))
                })?;
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
            }
            if let (Some(c), Some(k)) = (&opts.cert_file, &opts.key_file) {
                let cert = std::fs::read(c).map_err(|e| {
                    KvError::Other(format!("reading etcd client cert {}: {e}", c.display()))
                })?;
                let key = std::fs::read(k).map_err(|e| {
                    KvError::Other(format!("reading etcd client key {}: {e}", k.display()))
                })?;
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            co = co.with_tls(tls);
        }
        if opts.endpoints.len() > 1 {
            warn_unreachable(&opts.endpoints, &co, opts.dial_timeout).await;
        }
        let connect = Client::connect(opts.endpoints.clone(), Some(co));
        let client = match tokio::time::timeout(opts.dial_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(classify(&endpoints, e, false)),
            Err(_) => {
                return Err(KvError::Unavailable {
                    endpoints,
                    reason: format!("no member answered within {:?}", opts.dial_timeout),
                })
            }
        };
        let connect_attempts = 2 * opts.endpoints.len() as u32 + 1;
        let kv = EtcdKv {
            client,
            endpoints,
            request_timeout: opts.dial_timeout,
            connect_attempts,
        };
        // Connecting is lazy: prove a member answers. A maintenance status needs no key
        // permission: with etcd auth, the user may be allowed only `<prefix>/` (a read of
        // any other key, as this probe once did, fails with "permission denied"). Bad
        // credentials already failed above (the client authenticates when it connects).
        kv.bounded(
            || {
                let mut mc = kv.client.maintenance_client();
                async move { mc.status().await }
            },
            false,
        )
        .await?;
        Ok(EtcdKv {
            request_timeout: opts.request_timeout,
            ..kv
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one request (`call` makes it; it is made again only after a refused
    /// connection, when nothing was sent) within the request timeout.
    async fn bounded<T, F, Fut>(&self, mut call: F, is_write: bool) -> Result<T, KvError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let mut attempt = 1;
        loop {
            match tokio::time::timeout_at(deadline, call()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if is_connect_error(&e) && attempt < self.connect_attempts => {
                    tracing::debug!(error = %e, attempt, "an etcd endpoint refused the connection; trying another");
                    attempt += 1;
                    // the balancer's next pick; a short pause so a burst does not spin
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                Ok(Err(e)) => return Err(classify(&self.endpoints, e, is_write)),
                Err(_) if is_write => {
                    return Err(KvError::Ambiguous {
                        endpoints: self.endpoints.clone(),
                        reason: format!("no reply within {:?}", self.request_timeout),
                    })
                }
                Err(_) => {
                    return Err(KvError::Timeout {
                        endpoints: self.endpoints.clone(),
                        after: self.request_timeout,
                    })
                }
            }
        }
    }
}

/// Whether the request failed while connecting to an endpoint (so it was never sent).
fn is_connect_error(e: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(s) = e else {
        return false;
    };
    if s.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(err) = cur {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        cur = err.source();
    }
    // tonic keeps the source; the message is hyper-util's for a failed TCP connect
    s.message().starts_with("tcp connect error")
}

/// Connects to each endpoint alone and logs a warning naming every one that does not
/// answer a status request within `within` (all at once, so this costs at most `within`).
async fn warn_unreachable(endpoints: &[String], co: &ConnectOptions, within: Duration) {
    let checks = endpoints.iter().map(|ep| {
        let co = co.clone();
        async move {
            let probe = async {
                let mut c = Client::connect([ep.as_str()], Some(co)).await?;
                c.status().await
            };
            let err = match tokio::time::timeout(within, probe).await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {within:?}"),
            };
            tracing::warn!(
                endpoint = %ep,
                error = %err,
                "etcd endpoint {ep} is not answering; using the other endpoints (requests are balanced over all \
                 of them, and this one is used again once it answers)"
            );
        }
    });
    futures::future::join_all(checks).await;
}

fn classify(endpoints: &str, e: etcd_client::Error, is_write: bool) -> KvError {
    use etcd_client::Error as E;
    use tonic::Code;
    let endpoints = endpoints.to_string();
    match e {
        // Refused while connecting: nothing was sent, so even a write is not ambiguous.
        ref e if is_connect_error(e) => KvError::Unavailable {
            endpoints,
            reason: e.to_string(),
        },
        E::GRpcStatus(s) => {
            let msg = s.message().to_string();
            if msg.contains("database space exceeded") || msg.contains("NOSPACE") {
                return KvError::NoSpace;
            }
            if msg.contains("too many operations") || msg.contains("request is too large") {
                return KvError::TooLarge(msg);
            }
            // a wrong user or password comes back as InvalidArgument
            if msg.contains("authentication failed") || msg.contains("user name not found") {
                return KvError::Auth(msg);
            }
            match s.code() {
                Code::Unauthenticated | Code::PermissionDenied => KvError::Auth(msg),
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted => {
                    if is_write {
                        KvError::Ambiguous {
                            endpoints,
                            reason: format!("{:?}: {msg}", s.code()),
                        }
                    } else {
                        KvError::Unavailable {
                            endpoints,
                            reason: format!("{:?}: {msg}", s.code()),
                        }
                    }
                }
                Code::ResourceExhausted => KvError::TooLarge(msg),
                _ => KvError::Other(format!("{:?}: {msg}", s.code())),
            }
        }
        // A transport error happens before the request is on the wire.
        E::TransportError(t) => KvError::Unavailable {
            endpoints,
            reason: t.to_string(),
        },
        E::IoError(io) => KvError::Unavailable {
            endpoints,
            reason: io.to_string(),
        },
        other => KvError::Other(other.to_string()),
    }
}

fn to_etcd_cmp(c: &Cmp) -> Compare {
    match c {
        Cmp::ModRev { key, rev } => Compare::mod_revision(key.clone(), CompareOp::Equal, *rev),
        // Over a range the compare must hold for every key; with no key it is checked
        // against an empty record (create_revision 0), so it proves emptiness.
        Cmp::RangeEmpty { start, end } => {
            Compare::create_revision(start.clone(), CompareOp::Equal, 0).with_range(end.clone())
        }
    }
}

fn to_etcd_op(w: &Write) -> TxnOp {
    match w {
        Write::Put { key, value, lease } => {
            let opts = if *lease != 0 {
                Some(PutOptions::new().with_lease(*lease))
            } else {
                None
            };
            TxnOp::put(key.clone(), value.clone(), opts)
        }
        Write::Delete { key } => TxnOp::delete(key.clone(), None),
        Write::DeleteRange { start, end } => TxnOp::delete(
            start.clone(),
            Some(DeleteOptions::new().with_range(end.clone())),
        ),
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        mod_rev: kv.mod_revision(),
    }
}

#[async_trait]
impl KvStore for EtcdKv {
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<KeyValue>>, i64), KvError> {
        if keys.len() == 1 {
            let resp = self
                .bounded(
                    || {
                        let (mut kvc, key) = (self.client.kv_client(), keys[0].clone());
                        async move { kvc.get(key, None).await }
                    },
                    false,
                )
                .await?;
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            return Ok((vec![resp.kvs().first().map(kv_of)], rev));
        }
        // One read-only transaction: one round trip, one consistent revision.
        let ops: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
        let t = Txn::new().and_then(ops);
        let resp = self
            .bounded(
                || {
                    let (mut kvc, t) = (self.client.kv_client(), t.clone());
                    async move { kvc.txn(t).await }
                },
                false,
            )
            .await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut out = Vec::with_capacity(keys.len());
        for r in resp.op_responses() {
            match r {
                TxnOpResponse::Get(g) => out.push(g.kvs().first().map(kv_of)),
                _ => {
                    return Err(KvError::Other(
                        "unexpected response in read transaction".into(),
                    ))
                }
            }
        }
        if out.len() != keys.len() {
            return Err(KvError::Other("short read transaction response".into()));
        }
        Ok((out, rev))
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, bool), KvError> {
        let mut opts = GetOptions::new().with_range(end.to_vec());
        if limit > 0 {
            opts = opts.with_limit(limit as i64);
        }
        let resp = self
            .bounded(
                || {
                    let (mut kvc, opts) = (self.client.kv_client(), opts.clone());
                    async move { kvc.get(start.to_vec(), Some(opts)).await }
                },
                false,
            )
            .await?;
        Ok((resp.kvs().iter().map(kv_of).collect(), resp.more()))
    }

    async fn txn(&self, txn: &TxnRequest) -> Result<TxnOutcome, KvError> {
        let t = Txn::new()
            .when(txn.compares.iter().map(to_etcd_cmp).collect::<Vec<_>>())
            .and_then(txn.writes.iter().map(to_etcd_op).collect::<Vec<_>>());
        let resp = self
            .bounded(
                || {
                    let (mut kvc, t) = (self.client.kv_client(), t.clone());
                    async move { kvc.txn(t).await }
                },
                true,
            )
            .await?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        })
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<i64, KvError> {
        let resp = self
            .bounded(
                || {
                    let mut lc = self.client.lease_client();
                    async move { lc.grant(ttl_secs, None).await }
                },
                false,
            )
            .await?;
        Ok(resp.id())
    }

    async fn lease_keep_alive(&self, lease: i64) -> Result<i64, KvError> {
        let call = || {
            let mut lc = self.client.lease_client();
            async move {
                let (mut keeper, mut stream) = lc.keep_alive(lease).await?;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(r) => Ok(r.ttl()),
                    None => Ok(0),
                }
            }
        };
        self.bounded(call, false).await
    }

    async fn lease_revoke(&self, lease: i64) -> Result<(), KvError> {
        let call = || {
            let mut lc = self.client.lease_client();
            async move { lc.revoke(lease).await }
        };
        self.bounded(call, false).await.map(|_| ())
    }

    fn describe(&self) -> String {
        format!("etcd {}", self.endpoints)
    }
}
