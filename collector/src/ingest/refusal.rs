//! Why ingest refused a report: one typed variant per refusal, each mapping to the HTTP
//! status and `{message, error_code}` a Cloudify 5.0.5 manager would answer with.
//!
//! The steps return these instead of ready-made HTTP errors so that the pipeline can
//! branch on what happened (a key mismatch is flagged durably) without comparing strings.

use crate::error::ApiError;
use crate::store::Role;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sr_protocol::model::UnknownNodeType;
use sr_protocol::report::BodyError;
use sr_protocol::signing::SignatureError;
use sr_protocol::NodeType;

#[derive(Debug)]
pub enum Refusal {
    /// The declared `Content-Length` is over the limit (refused before reading).
    DeclaredTooLarge {
        declared: u64,
        limit: usize,
    },
    /// The body grew over the limit while being read.
    BodyTooLarge {
        limit: usize,
    },
    ContentLengthNotANumber,
    WrongContentType,
    MissingToken,
    UnknownToken,
    UnknownNodeType(UnknownNodeType),
    /// The token's role may not report as this node type.
    WrongRole {
        role: Role,
        node_type: NodeType,
    },
    InvalidNodeId,
    BodyTimeout,
    BodyUnreadable,
    SignatureNotAscii,
    BadSignature(SignatureError),
    /// Unsigned, and `allow_unsigned_legacy` is off.
    UnsignedNotAllowed,
    /// Unsigned, for a node that has a pinned key.
    UnsignedForPinnedNode,
    TooManyNodes {
        max_nodes: usize,
    },
    /// The token introduced `per_window` new node ids in its current window already.
    NewNodeBudget {
        per_window: usize,
        window_secs: u64,
        retry_after_secs: u64,
    },
    /// `admission = "approve"`: the report is held in the pending list, not in the view.
    /// Not an error for the node; 202 so the agent keeps its transitions and reports again.
    HeldForApproval,
    /// `admission = "approve"` and `max_pending` ids are held already.
    TooManyPending {
        max_pending: usize,
    },
    /// Signed by a key other than the one pinned for the node.
    KeyMismatch,
    /// From a boot of the node older than its current one, or opening a boot with a send
    /// time not later than one already accepted from the node.
    EarlierBoot,
    /// A signature that opens a boot (first contact, a new boot id) with a send time
    /// outside the window around the collector's receive time: a captured old report,
    /// or a node whose clock is wrong.
    StaleSignature {
        sent_at_ms: i64,
        received_ms: i64,
    },
    /// First contact with a key that `nodes forget` tombstoned and the operator has not
    /// named again.
    KeyForgotten {
        fingerprint: String,
    },
    /// First contact after `nodes forget --accept-key`, with a key of another fingerprint.
    KeyNotApproved {
        fingerprint: Option<String>,
        expected: String,
    },
    /// A `(boot_id, seq)` already accepted.
    SeqAlreadySeen {
        seq: u64,
        last: u64,
    },
    Undecodable(BodyError),
    EnvelopeDisagrees,
    BadNodeName,
    BadPrivateIp,
    StoreUnavailable,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        use Refusal::*;
        match self {
            DeclaredTooLarge { .. } | BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WrongContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MissingToken
            | UnknownToken
            | SignatureNotAscii
            | BadSignature(_)
            | UnsignedNotAllowed
            | UnsignedForPinnedNode => StatusCode::UNAUTHORIZED,
            WrongRole { .. } | KeyMismatch | KeyForgotten { .. } | KeyNotApproved { .. } => {
                StatusCode::FORBIDDEN
            }
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            TooManyNodes { .. } | TooManyPending { .. } => StatusCode::INSUFFICIENT_STORAGE,
            NewNodeBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
            HeldForApproval => StatusCode::ACCEPTED,
            EarlierBoot | SeqAlreadySeen { .. } | StaleSignature { .. } => StatusCode::CONFLICT,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ContentLengthNotANumber
            | UnknownNodeType(_)
            | InvalidNodeId
            | BodyUnreadable
            | Undecodable(_)
            | EnvelopeDisagrees
            | BadNodeName
            | BadPrivateIp => StatusCode::BAD_REQUEST,
        }
    }

    /// Cloudify's `error_code` (ours where 5.0.5 has none).
    pub fn code(&self) -> &'static str {
        use Refusal::*;
        match self {
            DeclaredTooLarge { .. } | BodyTooLarge { .. } => "payload_too_large",
            WrongContentType => "unsupported_media_type",
            MissingToken | UnknownToken => "unauthorized_error",
            UnknownNodeType(_) => "unknown_node_type",
            WrongRole { .. } => "forbidden_error",
            InvalidNodeId => "invalid_node_id",
            BodyTimeout => "request_timeout",
            SignatureNotAscii | BadSignature(_) => "invalid_signature",
            UnsignedNotAllowed | UnsignedForPinnedNode => "signature_required",
            TooManyNodes { .. } => "too_many_nodes",
            NewNodeBudget { .. } => "too_many_new_nodes",
            HeldForApproval => "pending_approval",
            TooManyPending { .. } => "too_many_pending_nodes",
            KeyMismatch => "key_mismatch",
            EarlierBoot | SeqAlreadySeen { .. } => "replayed_report",
            StaleSignature { .. } => "stale_signature",
            KeyForgotten { .. } => "key_forgotten",
            KeyNotApproved { .. } => "key_not_approved",
            StoreUnavailable => "store_unavailable",
            ContentLengthNotANumber
            | BodyUnreadable
            | Undecodable(_)
            | EnvelopeDisagrees
            | BadNodeName
            | BadPrivateIp => "bad_parameters_error",
        }
    }

    /// The message for the operator (never a token or a secret).
    pub fn message(&self) -> String {
        use Refusal::*;
        match self {
            DeclaredTooLarge { declared, limit } => {
                format!("report body of {declared} bytes exceeds the {limit}-byte limit")
            }
            BodyTooLarge { limit } => format!("report body exceeds the {limit}-byte limit"),
            ContentLengthNotANumber => "Content-Length is not a number".into(),
            WrongContentType => "Content-Type must be exactly application/json".into(),
            MissingToken => "missing API-Authentication-Token header".into(),
            UnknownToken => "invalid or revoked token".into(),
            UnknownNodeType(e) => e.to_string(),
            WrongRole { role, node_type } => {
                format!("a {role} token may not report as a {node_type} node")
            }
            InvalidNodeId => {
                "node_id must be 1-128 characters of [A-Za-z0-9._-] and not . or ..".into()
            }
            BodyTimeout => "report body not received in time".into(),
            BodyUnreadable => "report body could not be read".into(),
            SignatureNotAscii => "signature header is not ASCII".into(),
            BadSignature(e) => e.to_string(),
            UnsignedNotAllowed => {
                "unsigned reports are not accepted (allow_unsigned_legacy = false)".into()
            }
            UnsignedForPinnedNode => {
                "this node has a pinned key; unsigned reports are refused".into()
            }
            TooManyNodes { max_nodes } => {
                format!("the collector already tracks {max_nodes} nodes (max_nodes)")
            }
            NewNodeBudget {
                per_window,
                window_secs,
                retry_after_secs,
            } => format!(
                "this token introduced {per_window} new node ids in the last {window_secs} s (new_nodes_per_window); retry in {retry_after_secs} s"
            ),
            HeldForApproval => "new node held for an operator's approval (admission = \"approve\"): `status-reporter nodes pending`, then `nodes approve NODE_ID`".into(),
            TooManyPending { max_pending } => format!(
                "{max_pending} new nodes already wait for approval (max_pending); approve or reject some with `status-reporter nodes pending`"
            ),
            KeyMismatch => "report signed by a key other than the one pinned for this node; an operator must run `status-reporter nodes forget` to accept a new key".into(),
            EarlierBoot => "report from an earlier boot of this node".into(),
            StaleSignature {
                sent_at_ms,
                received_ms,
            } => format!(
                "signed send time ts={sent_at_ms} is {} s from the collector's clock; a first report and the first report of a boot must be sent within {} s (check the node's clock)",
                sent_at_ms.saturating_sub(*received_ms) / 1000,
                super::trust::SIGNATURE_WINDOW_MS / 1000
            ),
            KeyForgotten { fingerprint } => format!(
                "key {fingerprint} was forgotten by `nodes forget`; it is accepted again only with `status-reporter nodes forget NODE --accept-key {fingerprint}`"
            ),
            KeyNotApproved {
                fingerprint,
                expected,
            } => format!(
                "the operator approved only key {expected} for this node; this report is signed by {}",
                fingerprint.as_deref().unwrap_or("no key")
            ),
            SeqAlreadySeen { seq, last } => {
                format!("sequence {seq} already seen (last accepted {last})")
            }
            Undecodable(e) => e.to_string(),
            EnvelopeDisagrees => {
                "status_reporter.boot_id/seq disagree with the signature header".into()
            }
            BadNodeName => {
                "status_reporter.node_name must be non-empty without control or invisible formatting characters".into()
            }
            BadPrivateIp => "status_reporter.private_ip is not an IP address".into(),
            StoreUnavailable => "the collector could not store the report; retry later".into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let retry = match &r {
            Refusal::NewNodeBudget {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let e = ApiError::new(r.status(), r.code(), r.message());
        match retry {
            Some(secs) => e.retry_after(secs),
            None => e,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
