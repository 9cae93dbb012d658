//! The collector's HTTP API (axum), in Cloudify 5.0.5's shapes.
//!
//! - `PUT  /api/v3.1/cluster-status/{manager|db|broker}/{node_id}`: reports ([`crate::ingest`]).
//! - `GET  /api/v3.1/cluster-status[?summary=true]`: the roll-up; summary answers 500 on Fail.
//! - `GET  /api/v3.1/managers`, `/brokers`, `/db-nodes`: Cloudify list shapes, each with the
//!   keys 5.0.5's `cfy` reads; never empty (the collector stands in for a type with no node).
//! - `DELETE /api/v3.1/managers/{hostname}`: `cfy cluster remove`; forgets that manager node.
//! - `GET  /api/v3.1/status`, `/api/v3.1/maintenance`, `/api/v3.1/version`, `/api/version`:
//!   what `cfy` 5.0.5 reads around `cfy status` and `cfy profiles use`.
//! - `GET  /api/v3.1/ok`: readiness for load balancers; no credentials, no data.
//! - `GET  /metrics` (Prometheus, [`crate::metrics`]), `GET /api/v3.1/history`
//!   ([`crate::history`]) and `GET /api/v3.1/events` (SSE, [`crate::events`]): readers only.
//! - `GET  /` (the status page, [`crate::page`]), `/ui/app.js`, `/ui/app.css`: readers only;
//!   `/ui` and `/ui/` redirect to `/`.
//!
//! Readers authenticate with an admin token (`API-Authentication-Token`) or HTTP Basic
//! against the store's users. Reporter tokens may read only `/managers` (agents refresh
//! their manager list from it), and the manager reporter token `/status` too (as in 5.0.5,
//! where the manager reporter reports its own `/status`). A `/managers` answer to a token
//! carries the token's role in [`sr_protocol::ROLE_HEADER`], from which `configure` infers
//! the node type. Every error is JSON `{"message", "error_code"}` like Cloudify's REST errors.
//!
//! Bounds an outsider meets here (see docs/security.md):
//! - a report body counts against the in-flight body budget while it is read
//!   ([`BudgetedBody`]); past the budget the answer is 503 at once, counted;
//! - an early refusal of a report within `max_body_bytes` first reads and discards the
//!   rest of the body under [`DRAIN_DEADLINE`], so the stream ends cleanly (curl 7.88
//!   over HTTP/2 fails with exit 92 on an answer that resets the upload); nothing of it
//!   is kept;
//! - failed HTTP Basic logins are throttled per source ([`crate::app::LoginThrottle`]),
//!   counted and logged once per period, and an unknown user costs one argon2
//!   verification like a wrong password, so timing does not tell users apart.

use crate::app::{App, BoundCounters};
use crate::error::ApiError;
use crate::rollup::rfc3339_ms;
use crate::store::Role;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use sr_protocol::view::{ListKind, NodeList, NodeListItem};
use sr_protocol::{NodeStatus, NodeType};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 1024;

/// A refused report's body is read and discarded before the answer (up to
/// `max_body_bytes`) for at most this long.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// The peer address of the connection a request came on, set by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Who is asking: the request's headers and the connection's source address.
struct Caller {
    headers: HeaderMap,
    peer: IpAddr,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            headers: parts.headers.clone(),
            peer: peer_ip(&parts.extensions),
        })
    }
}

/// The source address; a request that did not come through the server (in-process
/// tests) counts as one unspecified source.
fn peer_ip(ext: &http::Extensions) -> IpAddr {
    ext.get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/api/v3.1/cluster-status/{node_type}/{node_id}",
            put(put_report),
        )
        .route("/api/v3.1/cluster-status", get(get_cluster_status))
        .route(
            "/api/v3.1/managers",
            get(|s, h| list(s, h, NodeType::Manager)),
        )
        .route(
            "/api/v3.1/brokers",
            get(|s, h| list(s, h, NodeType::Broker)),
        )
        .route("/api/v3.1/db-nodes", get(|s, h| list(s, h, NodeType::Db)))
        .route("/api/v3.1/managers/{hostname}", delete(remove_manager))
        .route("/api/v3.1/status", get(get_status))
        .route("/api/v3.1/maintenance", get(get_maintenance))
        .route("/api/v3.1/version", get(get_version))
        // The 5.0.5 client's `get_version()` asks the unversioned path.
        .route("/api/version", get(get_version))
        .route("/api/v3.1/ok", get(get_ok))
        .route("/metrics", get(get_metrics))
        .route("/api/v3.1/history", get(get_history))
        .route("/api/v3.1/events", get(get_events))
        .route("/api/v3.1/maintenance-windows", get(list_maintenance))
        .route(
            "/api/v3.1/maintenance-windows/{target}",
            put(put_maintenance).delete(delete_maintenance),
        )
        // The status page (crate::page): the readers' auth, with a browser's 401.
        .route("/", get(|s, c| page(s, c, crate::page::Asset::Index)))
        .route(
            "/ui/app.js",
            get(|s, c| page(s, c, crate::page::Asset::Script)),
        )
        .route(
            "/ui/app.css",
            get(|s, c| page(s, c, crate::page::Asset::Style)),
        )
        .route("/ui", get(|| async { crate::page::to_root() }))
        .route("/ui/", get(|| async { crate::page::to_root() }))
        .merge(crate::tier2::api::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint")
        })
        .with_state(app)
}

async fn put_report(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let Ok(Path((node_type, node_id))) = path else {
        app.metrics
            .report(started.elapsed(), Some("invalid_node_id"));
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_node_id",
            "node type or node id is not valid UTF-8",
        )
        .into_response();
    };
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let (parts, body) = req.into_parts();
    let declared = declared_length(&parts.headers);
    let (budgeted, state) = BudgetedBody::new(body, budget_for(&app, declared), &app);
    // Boxed: the ingest future is several KB, and axum and tower move this handler's
    // future by value a few times; a pointer is cheaper to move (collector-bench --count).
    let answer = Box::pin(crate::ingest::handle(
        &app,
        &node_type,
        &node_id,
        parts.uri.path(),
        &parts.headers,
        Body::new(budgeted),
        peer,
    ))
    .await;
    let (code, refusal) = match answer {
        Ok(v) => {
            app.metrics.report(started.elapsed(), None);
            return (StatusCode::OK, v).into_response();
        }
        Err(e) => (e.code(), e.into_response()),
    };
    let (rest, over_budget) = state.take();
    if over_budget {
        BoundCounters::bump(&app.bounds.counters.bodies_refused_busy);
    }
    if let Some(rest) = rest {
        // Not a body already over the limit: the limit is what we read at most.
        let limit = app.cfg.max_body_bytes;
        let within = declared.is_none_or(|n| n <= limit as u64)
            && refusal.status() != StatusCode::PAYLOAD_TOO_LARGE;
        if within {
            drain(rest, limit, DRAIN_DEADLINE.min(app.cfg.body_read_timeout)).await;
        }
    }
    app.metrics.report(
        started.elapsed(),
        Some(if over_budget { "server_busy" } else { code }),
    );
    if over_budget {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "too many report bodies are being received at once; retry shortly",
        )
        .retry_after(1)
        .into_response();
    }
    refusal
}

/// The request's `Content-Length`, if it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Bytes a report's body costs the in-flight budget: its declared length, or the body
/// limit when undeclared. A declared length over the limit costs nothing: ingest refuses
/// it before reading a byte.
fn budget_for(app: &App, declared: Option<u64>) -> u32 {
    let limit = app.cfg.max_body_bytes as u64;
    match declared {
        Some(n) if n > limit => 0,
        Some(n) => n as u32,
        None => limit as u32,
    }
}

/// Reads and discards what is left of a refused report's body, up to `max` bytes and
/// `deadline`, so that its stream ends with the client's last byte rather than a reset.
/// Nothing is kept.
async fn drain(mut body: Body, max: usize, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > max {
                break;
            }
        }
    })
    .await;
}

/// A report body that takes its share of the in-flight budget when first read (after
/// ingest's header checks, so a refused request never holds any) and gives it back when
/// the request ends. Shares its state with [`put_report`], which gets the unread rest
/// back after a refusal, to drain it.
struct BudgetedBody {
    state: BodyState,
}

#[derive(Clone)]
struct BodyState(Arc<Mutex<BodyInner>>);

struct BodyInner {
    body: Option<Body>,
    ended: bool,
    cost: u32,
    budget: Arc<tokio::sync::Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    over_budget: bool,
}

/// The body could not be read: the in-flight budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("request-body budget spent")]
struct OverBudget;

impl BudgetedBody {
    fn new(body: Body, cost: u32, app: &App) -> (BudgetedBody, BodyState) {
        let state = BodyState(Arc::new(Mutex::new(BodyInner {
            body: Some(body),
            ended: false,
            cost,
            budget: app.bounds.body_bytes.clone(),
            permit: None,
            over_budget: false,
        })));
        (
            BudgetedBody {
                state: state.clone(),
            },
            state,
        )
    }
}

impl BodyState {
    fn lock(&self) -> std::sync::MutexGuard<'_, BodyInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After ingest: the unread rest of the body (if any), and whether the budget refused it.
    fn take(&self) -> (Option<Body>, bool) {
        let mut inner = self.lock();
        let rest = if inner.ended { None } else { inner.body.take() };
        (rest, inner.over_budget)
    }
}

impl hyper::body::Body for BudgetedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let mut inner = self.state.lock();
        if inner.permit.is_none() && inner.cost > 0 {
            match inner.budget.clone().try_acquire_many_owned(inner.cost) {
                Ok(p) => inner.permit = Some(p),
                Err(_) => {
                    inner.over_budget = true;
                    return Poll::Ready(Some(Err(OverBudget.into())));
                }
            }
        }
        let Some(body) = inner.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            inner.ended = true;
        }
        polled.map_err(Into::into)
    }
}

/// Who is reading.
enum Reader {
    /// An admin token (`Some(Role::Admin)`) or a store user (`None`): may read everything.
    Admin(Option<Role>),
    /// A reporter token of this role: may read only `/managers`.
    Reporter(Role),
}

async fn authenticate(app: &App, caller: &Caller) -> Result<Reader, ApiError> {
    let headers = &caller.headers;
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized_error", m);
    if let Some(token) = headers.get(sr_protocol::TOKEN_HEADER) {
        let role = token
            .to_str()
            .ok()
            .and_then(|t| app.mem.role_of(t))
            .ok_or_else(|| unauthorized("invalid or revoked token"))?;
        return Ok(if role == Role::Admin {
            Reader::Admin(Some(role))
        } else {
            Reader::Reporter(role)
        });
    }
    let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
        return Err(unauthorized(
            "credentials required: API-Authentication-Token or HTTP Basic",
        ));
    };
    let bad = || unauthorized("invalid username or password");
    let encoded = auth
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix("Basic "))
        .ok_or_else(bad)?;
    if encoded.len() > 1024 {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
    let fingerprint: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, decoded.as_bytes())
        .as_ref()
        .try_into()
        .map_err(|_| bad())?;
    {
        let cache = app.basic_ok.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .get(&fingerprint)
            .is_some_and(|t| t.elapsed() < BASIC_CACHE_TTL)
        {
            return Ok(Reader::Admin(None));
        }
    }
    let throttle = &app.bounds.logins;
    if !throttle.may_try(caller.peer) {
        BoundCounters::bump(&app.bounds.counters.logins_throttled);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_login_failures",
            format!(
                "too many failed logins from this address; one more is allowed every {} s",
                crate::app::LOGIN_REFILL.as_secs()
            ),
        )
        .retry_after(crate::app::LOGIN_REFILL.as_secs()));
    }
    let phc = app.writer.user_hash(user.to_string()).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the collector's store is unavailable",
        )
    })?;
    // An unknown user is checked against a dummy hash: the same argon2 cost as a wrong
    // password, so the answer's timing does not say which user names exist.
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_phc().to_string());
    let _permit = app.argon_permits.acquire().await.map_err(|_| bad())?;
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || crate::store::verify_password(&phc, &password))
        .await
        .unwrap_or(false);
    if !(ok && known) {
        throttle.failed(caller.peer);
        BoundCounters::bump(&app.bounds.counters.login_failures);
        if let Some(held) = app.bounds.login_log.allow() {
            // Not the user name: operators type passwords into it by mistake.
            tracing::warn!(peer = %caller.peer, failures_since_last_line = held, "HTTP Basic login failed");
        }
        return Err(bad());
    }
    let mut cache = app.basic_ok.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= BASIC_CACHE_MAX {
        cache.retain(|_, t| t.elapsed() < BASIC_CACHE_TTL);
        if cache.len() >= BASIC_CACHE_MAX {
            cache.clear();
        }
    }
    cache.insert(fingerprint, Instant::now());
    Ok(Reader::Admin(None))
}

/// A PHC string no password matches, verified for unknown users (computed once, with
/// the same parameters as real users' hashes).
pub(crate) fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut secret = [0u8; 32];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        let salt = SaltString::encode_b64(&secret[..16]).expect("16 bytes encode as a salt");
        argon2::Argon2::default()
            .hash_password(&secret[16..], &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Admin readers only, for routes outside this file ([`crate::tier2::api`]).
pub(crate) async fn require_admin(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(), ApiError> {
    let caller = Caller {
        headers: headers.clone(),
        peer,
    };
    admin_only(app, &caller).await
}

async fn admin_only(app: &App, caller: &Caller) -> Result<(), ApiError> {
    admin_or(app, caller, None).await
}

/// Admins, and the reporter token of `reporter` if given.
async fn admin_or(app: &App, caller: &Caller, reporter: Option<Role>) -> Result<(), ApiError> {
    match authenticate(app, caller).await? {
        Reader::Admin(_) => Ok(()),
        Reader::Reporter(role) if Some(role) == reporter => Ok(()),
        Reader::Reporter(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_error",
            "reporter tokens may not read this endpoint",
        )),
    }
}

async fn get_cluster_status(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            "malformed query string",
        ));
    };
    let summary = match query.get("summary").map(|s| s.to_ascii_lowercase()) {
        None => false,
        Some(s) if s == "true" => true,
        Some(s) if s == "false" => false,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_parameters_error",
                "summary must be true or false",
            ))
        }
    };
    // Cached bytes at most 100 ms old (crate::view_cache), gzipped when the client asks.
    let gzip = !summary
        && caller
            .headers
            .get(http::header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(crate::view_cache::accepts_gzip);
    let view = app.view_cache.get(&app, gzip).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "roll-up failed",
        )
    })?;
    if summary {
        let code = if view.status == NodeStatus::Fail {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        return Ok((
            code,
            Json(serde_json::json!({"status": view.status, "services": {}})),
        )
            .into_response());
    }
    let json = HeaderValue::from_static("application/json");
    let vary = (
        http::header::VARY,
        HeaderValue::from_static("accept-encoding"),
    );
    Ok(if gzip {
        let gz = HeaderValue::from_static("gzip");
        let headers = [
            (http::header::CONTENT_TYPE, json),
            (http::header::CONTENT_ENCODING, gz),
            vary,
        ];
        (headers, view.gzip()).into_response()
    } else {
        (
            [(http::header::CONTENT_TYPE, json), vary],
            view.json.clone(),
        )
            .into_response()
    })
}

async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    node_type: NodeType,
) -> Result<Response, ApiError> {
    let headers = &caller.headers;
    let token_role = match authenticate(&app, &caller).await? {
        Reader::Admin(role) => role,
        Reader::Reporter(role) if node_type == NodeType::Manager => Some(role),
        Reader::Reporter(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_error",
                "reporter tokens may read only /managers",
            ))
        }
    };
    let own = own_address(&app, headers);
    let mut items: Vec<NodeListItem> = app
        .mem
        .records()
        .into_iter()
        .filter(|r| r.node_type == node_type)
        .map(|r| {
            let version = r
                .latest
                .as_ref()
                .and_then(|l| l.body.extension.as_ref().map(|e| e.agent_version.clone()));
            let last_seen = r.latest.as_ref().and_then(|l| rfc3339_ms(l.received_ms));
            // A node that reached this collector over loopback is listed at the address
            // this reader reached it by: 127.0.0.1 would send a remote reporter to itself.
            let reported = r.latest.as_ref().and_then(|l| {
                let ext = l.body.extension.as_ref()?;
                ext.private_ip.as_deref()?.parse().ok()
            });
            let private_ip = match r.private_ip.as_deref().map(str::parse) {
                Some(Ok(stored)) => {
                    crate::ingest::listed_address(reported, Some(stored), own.clone())
                }
                _ => r.private_ip,
            };
            list_item(node_type, r.name, r.node_id, private_ip, version, last_seen)
        })
        .collect();
    items.sort_by(|a, b| (&a.name, &a.node_id).cmp(&(&b.name, &b.node_id)));
    if items.is_empty() {
        items.push(stand_in(&app, headers, node_type));
    }
    let mut resp = Json(NodeList::new(items)).into_response();
    // Only on /managers, the one list a reporter token may read: `configure` asks it.
    if let (Some(role), NodeType::Manager) = (token_role, node_type) {
        resp.headers_mut().insert(
            sr_protocol::ROLE_HEADER,
            HeaderValue::from_static(role.as_str()),
        );
    }
    Ok(resp)
}

/// 5.0.5's `GET /status` (v3.1): `OK` while every service is active, else `Fail`. Our
/// one service is the collector with its store writer.
async fn get_status(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_or(&app, &caller, Some(Role::Manager)).await?;
    let (status, service) = if app.writer.is_healthy() {
        ("OK", "Active")
    } else {
        ("Fail", "Inactive")
    };
    Ok(Json(serde_json::json!({
        "status": status,
        "services": {
            "Status Reporter Collector": {"status": service, "is_remote": false, "extra_info": {}}
        },
        "collector": counters_json(&app),
    })))
}

/// Ingest counters and what the bounds refused, in one object.
fn counters_json(app: &App) -> serde_json::Value {
    let mut all = app.mem.counters.json();
    if let Some(obj) = all.as_object_mut() {
        obj.extend(app.bounds.counters.json());
        // A gauge beside the counters: how much of the body budget requests hold now.
        let free = app.bounds.body_bytes.available_permits();
        obj.insert(
            "inflight_body_bytes".into(),
            app.cfg.max_inflight_body_bytes.saturating_sub(free).into(),
        );
    }
    all
}

/// `cfy status` reads this after `/status` and fails without it. The collector has no
/// maintenance mode: always `deactivated`.
async fn get_maintenance(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(&app, &caller).await?;
    Ok(Json(serde_json::json!({
        "status": "deactivated",
        "activated_at": null,
        "activation_requested_at": null,
        "remaining_executions": null,
        "requested_by": null,
    })))
}

async fn get_version(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    authenticate(&app, &caller).await?;
    // `cfy` 5.0.5 checks the manager version it talks to; we answer as the version we
    // are wire-compatible with and name ourselves in an extra key.
    Ok(Json(serde_json::json!({
        "edition": "community",
        "version": "5.0.5",
        "build": null,
        "date": null,
        "commit": null,
        "distribution": null,
        "distro_release": null,
        "status_reporter_version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `cfy cluster remove HOSTNAME`: forgets the manager node of that name, as
/// `status-reporter nodes forget` does (pin, latest report and replay state; transitions
/// stay). A manager that keeps reporting comes back with its next report, as in 5.0.5 a
/// removed manager that still runs re-registers. Answers the removed item.
async fn remove_manager(
    State(app): State<Arc<App>>,
    caller: Caller,
    hostname: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            "hostname must be 1-128 characters of [A-Za-z0-9._-]",
        )
    };
    let Ok(Path(hostname)) = hostname else {
        return Err(bad());
    };
    let valid = (1..=128).contains(&hostname.len())
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(bad());
    }
    let removed: Vec<_> = {
        let mut nodes = app.mem.lock();
        let keys: Vec<_> = nodes
            .map
            .iter()
            .filter(|((t, _), e)| *t == NodeType::Manager && e.name == hostname)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                nodes.dirty.remove(&k);
                nodes.map.remove(&k).map(|e| (k.1, e))
            })
            .collect()
    };
    let Some((node_id, entry)) = removed.into_iter().next() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("no manager node named {hostname} has reported"),
        ));
    };
    // A second connection, as the CLI's `nodes forget` uses: the flush task sees the
    // store change and reloads memory from it.
    let dir = app.cfg.state_dir.clone();
    let name = hostname.clone();
    let forgotten = tokio::task::spawn_blocking(move || {
        crate::store::Store::open(&dir)?.forget_node(&name, Some(NodeType::Manager))
    })
    .await;
    if !matches!(forgotten, Ok(Ok(_))) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the collector's store is unavailable",
        ));
    }
    tracing::info!(node = %hostname, %node_id, "manager node removed by a reader");
    let version = entry
        .latest
        .as_ref()
        .and_then(|l| l.body.extension.as_ref().map(|e| e.agent_version.clone()));
    let item = list_item(
        NodeType::Manager,
        entry.name,
        node_id,
        entry.private_ip,
        version,
        None,
    );
    Ok(Json(item).into_response())
}

/// A list item of `node_type` with the keys 5.0.5 answers for it.
fn list_item(
    node_type: NodeType,
    name: String,
    node_id: String,
    private_ip: Option<String>,
    version: Option<String>,
    last_seen: Option<String>,
) -> NodeListItem {
    let kind = match node_type {
        NodeType::Manager => ListKind::Manager {
            edition: "community".into(),
            distribution: None,
            distro_release: None,
        },
        NodeType::Broker => ListKind::Broker {
            host: private_ip.clone(),
            port: None,
            is_external: false,
        },
        // `node` hosts are in no 5.0.5 list; the db shape is the closest should one be asked.
        NodeType::Db | NodeType::Node => ListKind::Db {
            host: private_ip.clone(),
            is_external: false,
        },
    };
    NodeListItem {
        id: node_id.clone(),
        hostname: name.clone(),
        name,
        node_id,
        networks: private_ip
            .iter()
            .map(|ip| ("default".to_string(), ip.clone()))
            .collect::<BTreeMap<_, _>>(),
        private_ip,
        public_ip: None,
        version,
        last_seen,
        placeholder: false,
        kind,
    }
}

/// The entry a list answers while no node of its type has reported: this collector, at
/// the address the reader reached it by (its listen address, or the request's `Host`
/// when it listens on every address). One identity for all three lists is 5.0.5's
/// all-in-one shape, which `cfy profiles use` accepts without a cluster profile.
fn stand_in(app: &App, headers: &HeaderMap, node_type: NodeType) -> NodeListItem {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "collector".to_string());
    let mut item = list_item(
        node_type,
        hostname.clone(),
        format!("collector-{hostname}"),
        own_address(app, headers),
        Some(env!("CARGO_PKG_VERSION").to_string()),
        None,
    );
    item.placeholder = true;
    item
}

/// The address this reader reached the collector by: its listen address, or the host of
/// the request's `Host` header when it listens on every address.
fn own_address(app: &App, headers: &HeaderMap) -> Option<String> {
    let listen = app.cfg.listen.ip();
    if !listen.is_unspecified() {
        return Some(listen.to_string());
    }
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .map(|a| {
            a.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        })
}

/// Ready while the writer thread runs and its last write succeeded: a collector that
/// cannot write answers 503 so a load balancer sends agents elsewhere.
async fn get_ok(State(app): State<Arc<App>>) -> Response {
    let problem = if !app.writer.is_alive() {
        "the collector's store writer has stopped"
    } else if !app.writer.writes_ok() {
        "the collector's last write to its store failed"
    } else {
        return (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response();
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        problem,
    )
    .into_response()
}

/// Prometheus metrics ([`crate::metrics`]), for readers only (admin token or HTTP Basic):
/// they name every node and its state, which is the view's information. Prometheus
/// scrapes with `basic_auth` and the collector's CA (docs/operations.md).
async fn get_metrics(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let app2 = app.clone();
    let text = off_thread("metrics encoding", move || {
        Ok(app2.metrics.encode(&app2, &app2.view()))
    })
    .await?;
    Ok((
        [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// Runs `f` on the blocking pool (store reads, the roll-up): its answer, or a 500 if it
/// panicked.
async fn off_thread<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{what} failed"),
        )
    })?
}

/// A reader's query as ordered pairs (the new endpoints check names and repeats themselves).
async fn reader_query(
    app: &App,
    caller: &Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    admin_only(app, caller).await?;
    query.map(|Query(pairs)| pairs).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            "malformed query string",
        )
    })
}

/// Stored transitions, filtered ([`crate::history`]), for readers only.
async fn get_history(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let pairs = reader_query(&app, &caller, query).await?;
    let filter = crate::history::parse(&pairs, crate::clock::now_ms())?;
    let app2 = app.clone();
    let answer = off_thread("history read", move || {
        crate::history::answer(&app2, &filter)
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// Transitions as Server-Sent Events ([`crate::events`]), for readers only.
async fn get_events(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let pairs = reader_query(&app, &caller, query).await?;
    crate::events::open(app, &pairs, &caller.headers).await
}

/// The active maintenance windows ([`crate::maintenance`]), for readers only.
async fn list_maintenance(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let app2 = app.clone();
    let rows = off_thread("maintenance read", move || {
        app2.history
            .with(&app2, |s| s.maintenance(crate::clock::now_ms()))
            .map_err(|_| store_unavailable())
    })
    .await?;
    let items: Vec<_> = rows.iter().map(maintenance_item).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

fn store_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the collector's store is unavailable",
    )
}

fn maintenance_item(r: &crate::store::MaintenanceRow) -> serde_json::Value {
    serde_json::json!({
        "target": r.target,
        "reason": r.reason,
        "by": r.by,
        "since": rfc3339_ms(r.since_ms),
        "until": r.until_ms.and_then(rfc3339_ms),
    })
}

/// `maintenance on`: sets the window on a node or service type (admin only).
async fn put_maintenance(
    State(app): State<Arc<App>>,
    caller: Caller,
    target: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let target = target.map(|Path(t)| t).unwrap_or_default();
    let now = crate::clock::now_ms();
    let row = crate::maintenance::parse_put(&target, &body, now)?;
    let app2 = app.clone();
    let stored = row.clone();
    off_thread("maintenance write", move || {
        app2.history
            .with(&app2, |s| s.set_maintenance(&stored, now))
            .map_err(|_| store_unavailable())
    })
    .await?;
    // Its event is committed: wake the event streams.
    app.writer.commits.send_modify(|n| *n += 1);
    app.mem.note_change();
    tracing::info!(target = %row.target, by = %row.by, until_ms = ?row.until_ms, "maintenance on");
    Ok(Json(maintenance_item(&row)).into_response())
}

/// `maintenance off`: ends the window on a node or service type (admin only).
async fn delete_maintenance(
    State(app): State<Arc<App>>,
    caller: Caller,
    target: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    admin_only(&app, &caller).await?;
    let target = target.map(|Path(t)| t).unwrap_or_default();
    if !crate::maintenance::valid_target(&target) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            crate::maintenance::target_error(),
        ));
    }
    let app2 = app.clone();
    let t2 = target.clone();
    let removed = off_thread("maintenance write", move || {
        app2.history
            .with(&app2, |s| s.clear_maintenance(&t2, crate::clock::now_ms()))
            .map_err(|_| store_unavailable())
    })
    .await?;
    app.writer.commits.send_modify(|n| *n += 1);
    app.mem.note_change();
    match removed {
        Some(row) => {
            tracing::info!(target = %row.target, "maintenance off");
            Ok(Json(maintenance_item(&row)).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("{target} is not in maintenance"),
        )),
    }
}

/// A file of the status page ([`crate::page`]), for readers only; a refusal carries what a
/// browser needs to ask for a login.
async fn page(State(app): State<Arc<App>>, caller: Caller, which: crate::page::Asset) -> Response {
    match admin_only(&app, &caller).await {
        Ok(()) => crate::page::asset(which),
        Err(e) => crate::page::challenge(e.into_response()),
    }
}
