//! The `/api/tier2/v1` routes (docs/protocol.md, section 4): summaries in, and the
//! clusters and heal history out to admin readers. Merged into [`crate::api::router`].

use crate::api::PeerAddr;
use crate::app::App;
use crate::error::ApiError;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/tier2/v1/clusters", get(list))
        .route(
            "/api/tier2/v1/clusters/{name}",
            get(one).put(put_summary).delete(forget),
        )
        .route("/api/tier2/v1/heal-history", get(heal_history))
}

fn peer(req: &http::request::Parts) -> IpAddr {
    req.extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

async fn reader(app: &App, parts: &http::request::Parts) -> Result<&'static str, ApiError> {
    crate::api::require_admin(app, &parts.headers, peer(parts)).await?;
    if app.tier2.fleet.is_none() {
        return Err(super::ingest::Refusal::NoFleet.to_error());
    }
    Ok("ok")
}

async fn put_summary(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    match super::ingest::handle(&app, &name, &parts.headers, body).await {
        Ok(v) => {
            if let Some(f) = &app.tier2.fleet {
                f.count_summary("accepted");
            }
            (StatusCode::OK, Json(v)).into_response()
        }
        Err(r) => {
            let e = r.to_error();
            if let Some(f) = &app.tier2.fleet {
                f.count_summary(e.code);
            }
            e.into_response()
        }
    }
}

async fn list(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    reader(&app, &parts).await?;
    let f = app.tier2.fleet.as_ref().expect("reader checked");
    let views = f.views(crate::clock::now_ms());
    Ok(Json(serde_json::json!({ "clusters": views })).into_response())
}

async fn one(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    reader(&app, &parts).await?;
    let f = app.tier2.fleet.as_ref().expect("reader checked");
    let Some(e) = f.entry(&name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no summary from a cluster of that name",
        ));
    };
    let view = super::view::judge(
        &e.summary,
        e.received_ms,
        crate::clock::now_ms(),
        f.unreachable_after_ms(),
    );
    let mut v = serde_json::to_value(view).unwrap_or_default();
    v["cluster"] = name.into();
    v["summary"] = serde_json::to_value(&*e.summary).unwrap_or_default();
    Ok(Json(v).into_response())
}

/// Forgets a cluster: its row and pin go, so its next summary pins a key afresh (a
/// re-keyed tier-1 collector, or a cluster retired). Admin only.
async fn forget(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    reader(&app, &parts).await?;
    let f = app.tier2.fleet.as_ref().expect("reader checked");
    // Under the commit lock: a summary being committed cannot re-insert what is forgotten.
    let _one = f.commit.lock().await;
    let app2 = app.clone();
    let name2 = name.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        let f = app2.tier2.fleet.as_ref().expect("reader checked");
        f.store.forget(&app2.cfg.state_dir, &name2)
    })
    .await;
    let Ok(Ok(deleted)) = deleted else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the cluster could not be forgotten",
        ));
    };
    let in_memory = f
        .clusters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name)
        .is_some();
    if !(deleted || in_memory) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no summary from a cluster of that name",
        ));
    }
    tracing::info!(cluster = %name, "tier 2: cluster forgotten; its next summary pins a key afresh");
    Ok(Json(serde_json::json!({"status": "forgotten", "cluster": name})).into_response())
}

async fn heal_history(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    reader(&app, &parts).await?;
    let bad = |m: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            m.to_string(),
        )
    };
    if let Some(k) = q
        .keys()
        .find(|k| !["cluster", "node", "limit"].contains(&k.as_str()))
    {
        return Err(bad(&format!(
            "unknown parameter {:?}",
            k.chars().take(32).collect::<String>()
        )));
    }
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("limit must be 1-1000"))?,
    };
    let cluster = q.get("cluster").cloned();
    let node = q.get("node").cloned();
    if cluster.as_ref().is_some_and(|c| c.len() > 128)
        || node.as_ref().is_some_and(|n| n.len() > 128)
    {
        return Err(bad("cluster and node are at most 128 bytes"));
    }
    let app2 = app.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let f = app2.tier2.fleet.as_ref().expect("reader checked");
        f.store.heal_history(
            &app2.cfg.state_dir,
            cluster.as_deref(),
            node.as_deref(),
            limit,
        )
    })
    .await;
    match rows {
        Ok(Ok(items)) => Ok(Json(serde_json::json!({ "items": items })).into_response()),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the heal history could not be read",
        )),
    }
}
