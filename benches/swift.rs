//! Swift data path: PUT and GET of 4 MiB objects (the default block size) at concurrency
//! 1, 4, 16 and 64, through `ringfs_swift::SwiftClient` ("ringfs") and through a plain
//! hyper client ("plain": no retries, no in-flight semaphore, no md5, no auth cache — the
//! baseline of what the local Swift can do), against the local services.
//!
//! One criterion iteration is one round of `c` objects (`c` × 4 MiB); a sample of `n`
//! iterations runs `c` tasks that each do `n` requests back to back (closed loop), so the
//! reported throughput is the aggregate bytes/s at that concurrency. ringfs and plain are
//! measured alternately per concurrency, and a ratio table is printed at the end.
//!
//! ringfs uses the client configuration from the `[swift]` section of the config file
//! (`verify_md5`, ...), i.e. what a mount would use, with `max_in_flight` and
//! `max_connections` raised to the highest concurrency so every row compares equal loads.

mod common;

use bytes::Bytes;
use common::{fmt_rate, ratio, short_criterion, Tally, MIB};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::stream::{self, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ringfs_engine::config::SwiftAuth;
use ringfs_swift::{ListEntry, SwiftClient};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const OBJ: usize = 4 << 20;
const CONCURRENCY: [usize; 4] = [1, 4, 16, 64];
/// Objects the GET benches read (uploaded once; as many as the highest concurrency).
const GET_SET: usize = 64;
/// The target of ringfs against the plain load.
const TARGET: f64 = 0.9;

static TALLY: LazyLock<Tally> = LazyLock::new(Tally::default);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Imp {
    Ringfs,
    Plain,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Ringfs => "ringfs",
            Imp::Plain => "plain",
        }
    }
}

/// The baseline: one hyper client and a tempauth token, nothing else. Its one concession
/// to reality: a 401 (the token vanished, e.g. memcached was restarted by a fault test
/// on a shared machine) re-authenticates and repeats that request once; there is no
/// other retry.
struct Plain {
    http: Client<HttpConnector, Full<Bytes>>,
    auth: (String, String, String),
    storage_url: String,
    /// (generation, token)
    token: RwLock<(u64, HeaderValue)>,
    refresh: tokio::sync::Mutex<()>,
}

impl Plain {
    async fn connect(auth_url: &str, user: &str, key: &str, storage_url: Option<String>) -> Plain {
        let mut conn = HttpConnector::new();
        // Same socket options as ringfs' client, so the comparison is about the client.
        conn.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(conn);
        let auth = (auth_url.to_string(), user.to_string(), key.to_string());
        let (token, url) = Self::authenticate(&http, &auth).await;
        Plain {
            http,
            auth,
            storage_url: storage_url.unwrap_or(url),
            token: RwLock::new((0, token)),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Swift v1 auth (tempauth): `GET auth_url` with `X-Auth-User` / `X-Auth-Key`.
    async fn authenticate(
        http: &Client<HttpConnector, Full<Bytes>>,
        (url, user, key): &(String, String, String),
    ) -> (HeaderValue, String) {
        let req = Request::get(url)
            .header("x-auth-user", user)
            .header("x-auth-key", key)
            .body(Full::new(Bytes::new()))
            .expect("auth request");
        let resp = http.request(req).await.expect("plain auth request");
        assert!(
            resp.status().is_success(),
            "plain auth: HTTP {}",
            resp.status()
        );
        let h = resp.headers();
        let token = h.get("x-auth-token").expect("X-Auth-Token").clone();
        let url = h
            .get("x-storage-url")
            .expect("X-Storage-Url")
            .to_str()
            .expect("storage url")
            .trim_end_matches('/')
            .to_string();
        (token, url)
    }

    /// Replaces the token generation `seen` (once, however many callers saw it fail).
    async fn reauth(&self, seen: u64) {
        let _g = self.refresh.lock().await;
        if self.token.read().unwrap().0 != seen {
            return;
        }
        let (token, _) = Self::authenticate(&self.http, &self.auth).await;
        *self.token.write().unwrap() = (seen + 1, token);
    }

    /// Sends `method url` with `body`; repeats once after re-authenticating on a 401.
    async fn send(&self, method: Method, url: &str, body: &Bytes) -> Response<Incoming> {
        for _ in 0..2 {
            let (gen, token) = self.token.read().unwrap().clone();
            let mut req = Request::builder()
                .method(method.clone())
                .uri(url)
                .header("x-auth-token", token);
            if method == Method::PUT {
                req = req.header(http::header::CONTENT_TYPE, "application/octet-stream");
            }
            let req = req.body(Full::new(body.clone())).expect("request");
            let resp = self.http.request(req).await.expect("plain request");
            if resp.status() != StatusCode::UNAUTHORIZED {
                return resp;
            }
            resp.into_body().collect().await.expect("401 body");
            self.reauth(gen).await;
        }
        panic!("plain {method} {url}: 401 after re-authenticating");
    }

    fn url(&self, container: &str, name: &str) -> String {
        format!("{}/{container}/{name}", self.storage_url)
    }

    async fn put(&self, container: &str, name: &str, body: Bytes) {
        let resp = self
            .send(Method::PUT, &self.url(container, name), &body)
            .await;
        let status = resp.status();
        resp.into_body().collect().await.expect("PUT response body");
        assert_eq!(status, StatusCode::CREATED, "plain PUT {name}");
    }

    async fn get(&self, container: &str, name: &str) -> Bytes {
        let url = self.url(container, name);
        let resp = self.send(Method::GET, &url, &Bytes::new()).await;
        assert_eq!(resp.status(), StatusCode::OK, "plain GET {name}");
        resp.into_body()
            .collect()
            .await
            .expect("GET body")
            .to_bytes()
    }
}

struct Ctx {
    ringfs: SwiftClient,
    plain: Plain,
    container: String,
    body: Bytes,
    verify_md5: bool,
}

impl Ctx {
    async fn one(&self, imp: Imp, op: Op, c: usize, worker: usize, k: u64) {
        match op {
            Op::Put => {
                // Each worker overwrites its own object: bounded space, no listing growth.
                let name = format!("put/{}/{c}/{worker}", imp.name());
                match imp {
                    Imp::Ringfs => {
                        self.ringfs
                            .put_object(&self.container, &name, self.body.clone(), self.verify_md5)
                            .await
                            .expect("ringfs PUT");
                    }
                    Imp::Plain => {
                        self.plain
                            .put(&self.container, &name, self.body.clone())
                            .await
                    }
                }
            }
            Op::Get => {
                let name = format!("get/{}", (worker + k as usize * c) % GET_SET);
                let data = match imp {
                    Imp::Ringfs => self
                        .ringfs
                        .get_object(&self.container, &name)
                        .await
                        .expect("ringfs GET"),
                    Imp::Plain => self.plain.get(&self.container, &name).await,
                };
                assert_eq!(data.len(), OBJ, "GET {name}: short body");
            }
        }
    }
}

/// `c` tasks, each doing `per_task` requests back to back; wall time of the whole round.
async fn closed_loop(ctx: &Arc<Ctx>, imp: Imp, op: Op, c: usize, per_task: u64) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|w| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for k in 0..per_task {
                    ctx.one(imp, op, c, w, k).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    start.elapsed()
}

fn pattern(len: usize) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

async fn setup() -> Arc<Ctx> {
    let mut cfg = common::config();
    // Each row compares the two clients at the same concurrency: the mount's in-flight
    // cap (`swift.max_in_flight`, 32 by default) would hold ringfs to 32 in the 64 row
    // while the plain load sends 64.
    let top = CONCURRENCY[CONCURRENCY.len() - 1];
    cfg.swift.max_in_flight = cfg.swift.max_in_flight.max(top);
    cfg.swift.max_connections = cfg.swift.max_connections.max(top);
    let s = &cfg.swift;
    if s.auth != SwiftAuth::TempAuth {
        panic!("benches/swift.rs: the plain baseline speaks Swift v1 auth only; run against tempauth services");
    }
    let ringfs = ringfs_engine::setup::connect_swift(&cfg)
        .await
        .expect("ringfs Swift client");
    let plain = Plain::connect(
        &s.auth_url,
        &s.user,
        s.key.expose(),
        (!s.storage_url.is_empty()).then(|| s.storage_url.clone()),
    )
    .await;
    let container = s.container_for(&common::unique("swift"));
    ringfs
        .create_container(&container)
        .await
        .expect("create container");
    let ctx = Arc::new(Ctx {
        ringfs,
        plain,
        container,
        body: pattern(OBJ),
        verify_md5: s.verify_md5,
    });
    // The objects the GET benches read.
    stream::iter(0..GET_SET)
        .for_each_concurrent(8, |i| {
            let ctx = ctx.clone();
            async move {
                ctx.ringfs
                    .put_object(&ctx.container, &format!("get/{i}"), ctx.body.clone(), true)
                    .await
                    .expect("upload GET object");
            }
        })
        .await;
    eprintln!(
        "swift bench: container {} at {}; ringfs client: max_in_flight {}, max_connections {}, verify_md5 on PUT {} (GET checks the CRC-32 stored at upload)",
        ctx.container,
        ctx.ringfs.storage_url().unwrap_or_default(),
        ctx.ringfs.config().max_in_flight,
        ctx.ringfs.config().max_connections,
        ctx.verify_md5,
    );
    ctx
}

async fn cleanup(ctx: &Ctx) {
    let names: Vec<String> = match ctx.ringfs.list_all(&ctx.container, None, None).await {
        Ok(entries) => entries
            .iter()
            .filter_map(|e| match e {
                ListEntry::Object { .. } => Some(e.name().to_string()),
                _ => None,
            })
            .collect(),
        Err(e) => {
            eprintln!("swift bench cleanup: listing {}: {e}", ctx.container);
            return;
        }
    };
    stream::iter(names)
        .for_each_concurrent(16, |n| async move {
            if let Err(e) = ctx.ringfs.delete_object(&ctx.container, &n).await {
                eprintln!("swift bench cleanup: delete {n}: {e}");
            }
        })
        .await;
    if let Err(e) = ctx.ringfs.delete_container(&ctx.container).await {
        eprintln!(
            "swift bench cleanup: delete container {}: {e}",
            ctx.container
        );
    }
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

static CTX: OnceLock<Arc<Ctx>> = OnceLock::new();

fn ctx() -> Arc<Ctx> {
    CTX.get_or_init(|| runtime().block_on(setup())).clone()
}

fn id(op: Op, imp: Imp, c: usize) -> String {
    format!("{}/{}/{c}", op.name(), imp.name())
}

fn bench_op(cr: &mut Criterion, op: Op) {
    let rt = runtime();
    let mut g = cr.benchmark_group(format!("swift_{}_4MiB", op.name()));
    g.sampling_mode(SamplingMode::Flat);
    for c in CONCURRENCY {
        g.throughput(Throughput::Bytes((c * OBJ) as u64));
        for imp in [Imp::Ringfs, Imp::Plain] {
            let mut primed = false;
            g.bench_with_input(BenchmarkId::new(imp.name(), c), &c, |b, &c| {
                let ctx = ctx();
                if !primed {
                    // One untimed round: open the connections, fill caches.
                    rt.block_on(closed_loop(&ctx, imp, op, c, 1));
                    primed = true;
                }
                b.to_async(rt).iter_custom(|iters| {
                    let ctx = ctx.clone();
                    async move {
                        let took = closed_loop(&ctx, imp, op, c, iters).await;
                        TALLY.add(&id(op, imp, c), (iters as usize * c * OBJ) as f64, took);
                        took
                    }
                });
            });
        }
    }
    g.finish();
}

/// The client-side CPU ringfs adds per object, which the plain baseline does not do: one
/// md5 and one CRC-32 of 4 MiB on PUT (md5 with `verify_md5`), one CRC-32 on GET.
fn bench_md5(cr: &mut Criterion) {
    use md5::{Digest, Md5};
    let body = pattern(OBJ);
    let mut g = cr.benchmark_group("swift_md5_4MiB");
    g.throughput(Throughput::Bytes(OBJ as u64));
    g.bench_function("md5", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(Md5::digest(std::hint::black_box(&body[..])));
            }
            let took = start.elapsed();
            TALLY.add("md5", (iters as usize * OBJ) as f64, took);
            took
        })
    });
    g.bench_function("crc32", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(crc32fast::hash(std::hint::black_box(&body[..])));
            }
            let took = start.elapsed();
            TALLY.add("crc32", (iters as usize * OBJ) as f64, took);
            took
        })
    });
    g.finish();
}

fn benches(cr: &mut Criterion) {
    bench_op(cr, Op::Put);
    bench_op(cr, Op::Get);
    bench_md5(cr);
}

fn summary() {
    println!();
    if let Some(r) = TALLY.rate("md5") {
        println!(
            "md5 of one 4 MiB object on this machine: {:.1} ms ({:.0} MiB/s), paid by ringfs on every PUT (verify_md5)",
            OBJ as f64 / r * 1e3,
            r / MIB
        );
    }
    if let Some(r) = TALLY.rate("crc32") {
        println!(
            "CRC-32 of one 4 MiB object: {:.2} ms ({:.0} MiB/s), paid on every PUT and GET",
            OBJ as f64 / r * 1e3,
            r / MIB
        );
    }
    println!("swift summary (median MiB/s of the timed calls, warm-up included; target ringfs/plain >= {TARGET:.2})");
    println!(
        "{:<4} {:>4} {:>14} {:>14} {:>8}  target",
        "op", "c", "ringfs MiB/s", "plain MiB/s", "ratio"
    );
    for op in [Op::Put, Op::Get] {
        for c in CONCURRENCY {
            let r = TALLY.rate(&id(op, Imp::Ringfs, c));
            let p = TALLY.rate(&id(op, Imp::Plain, c));
            if r.is_none() && p.is_none() {
                continue;
            }
            let verdict = match (r, p) {
                (Some(r), Some(p)) if p > 0.0 => {
                    if r / p >= TARGET {
                        "met"
                    } else {
                        "MISSED"
                    }
                }
                _ => "-",
            };
            println!(
                "{:<4} {:>4} {:>14} {:>14} {:>8}  {verdict}",
                op.name(),
                c,
                fmt_rate(r, MIB, ""),
                fmt_rate(p, MIB, ""),
                ratio(r, p)
            );
        }
    }
}

fn main() {
    let mut cr = short_criterion(Duration::from_secs(4));
    benches(&mut cr);
    cr.final_summary();
    summary();
    if let Some(ctx) = CTX.get() {
        runtime().block_on(cleanup(ctx));
    }
}
