//! `[tier2]` (a tier-1 collector pushes its cluster's summary) and `[fleet]` (a tier-2
//! collector keeps every cluster's and heals), parsed strictly then checked with every
//! error reported at once, as the rest of `collector.toml`.

use crate::alerts::config::{check_url, read_secret, Secret};
use crate::config::{int_in, secs_in};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const MAX_URLS: usize = 8;
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CLUSTERS: usize = 1000;
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(30);
/// The seed's policy: at most one heal per node per 600 s.
pub const DEFAULT_HEAL_INTERVAL: Duration = Duration::from_secs(600);
pub const DEFAULT_HEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// `[tier2]` on a tier-1 collector.
#[derive(Debug, Clone, PartialEq)]
pub struct PushConfig {
    pub cluster: String,
    pub urls: Vec<String>,
    /// The CA every `https://` tier-2 URL must chain to (nothing else is trusted).
    pub ca_path: Option<PathBuf>,
    pub token: Secret,
    pub token_file: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_retries: u32,
}

/// `[fleet]` on a tier-2 collector.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// No summary for this long: the cluster is Unreachable and never healed.
    pub unreachable_after: Duration,
    pub max_clusters: usize,
    pub max_summary_bytes: usize,
    pub heal: Option<HealConfig>,
}

/// `[fleet.heal]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealConfig {
    /// A node silent this long (by its cluster's summary) is healed.
    pub silent_after: Duration,
    /// At most one heal per node per this long.
    pub interval: Duration,
    pub timeout: Duration,
    pub action: HealAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealAction {
    /// argv, run without a shell; `SR_CLUSTER`, `SR_NODE`, `SR_REASON` in its environment.
    Command(Vec<String>),
    /// POSTed JSON, signed as alert webhooks are.
    Webhook {
        url: String,
        ca_path: Option<PathBuf>,
        secret: Secret,
        secret_file: PathBuf,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    cluster: Option<String>,
    urls: Option<Vec<String>>,
    ca_path: Option<PathBuf>,
    token_file: Option<PathBuf>,
    interval_secs: Option<f64>,
    timeout_secs: Option<f64>,
    max_retries: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    unreachable_after_secs: Option<f64>,
    max_clusters: Option<i64>,
    max_summary_bytes: Option<i64>,
    heal: Option<RawHeal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeal {
    silent_after_secs: Option<f64>,
    interval_secs: Option<f64>,
    timeout_secs: Option<f64>,
    command: Option<Vec<String>>,
    webhook_url: Option<String>,
    ca_path: Option<PathBuf>,
    secret_file: Option<PathBuf>,
}

/// An `https://` URL needs a CA; the CA must be readable.
fn check_ca_for(errs: &mut Vec<String>, table: &str, url: &http::Uri, ca: &Option<PathBuf>) {
    if url.scheme_str() == Some("https") && ca.is_none() {
        errs.push(format!(
            "{table}: an https:// URL needs ca_path: the CA its certificate chains to"
        ));
    }
}

/// Checks `[tier2]`; every problem goes to `errs`.
pub fn validate_push(errs: &mut Vec<String>, raw: Option<RawPush>) -> Option<PushConfig> {
    let raw = raw?;
    let t = "[tier2]";
    let cluster = match raw.cluster {
        Some(c) if sr_protocol::summary::valid_cluster_name(&c) => c,
        Some(c) => {
            errs.push(format!(
                "{t} cluster {:?} must be 1-64 of A-Z a-z 0-9 . _ -",
                c.chars().take(64).collect::<String>()
            ));
            String::new()
        }
        None => {
            errs.push(format!(
                "{t} cluster is required: this cluster's name at tier 2"
            ));
            String::new()
        }
    };
    let urls = raw.urls.unwrap_or_default();
    if urls.is_empty() || urls.len() > MAX_URLS {
        errs.push(format!(
            "{t} urls must list 1 to {MAX_URLS} tier-2 collectors"
        ));
    }
    if let Some(ca) = &raw.ca_path {
        if let Err(e) = sr_tls::roots_from(ca) {
            errs.push(format!("{t} ca_path {}: {e}", ca.display()));
        }
    }
    let mut checked = Vec::new();
    for u in urls.iter().take(MAX_URLS) {
        match check_url(u) {
            Ok(uri) => {
                check_ca_for(errs, t, &uri, &raw.ca_path);
                if uri.path() != "/" && !uri.path().is_empty() {
                    errs.push(format!(
                        "{t} urls: {u:?} must be a base URL (scheme, host, port), no path"
                    ));
                }
                checked.push(u.trim_end_matches('/').to_string());
            }
            Err(e) => errs.push(format!("{t} urls: {e}")),
        }
    }
    if checked
        .iter()
        .enumerate()
        .any(|(i, u)| checked[..i].contains(u))
    {
        errs.push(format!("{t} urls lists one URL twice"));
    }
    let token_file = raw.token_file.unwrap_or_default();
    let token = if token_file.as_os_str().is_empty() {
        errs.push(format!(
            "{t} token_file is required: a tier-2 token of role \"cluster\""
        ));
        None
    } else {
        read_secret(errs, &format!("{t} token_file"), &token_file)
    };
    if token
        .as_ref()
        .is_some_and(|s| std::str::from_utf8(s.expose()).is_err())
    {
        errs.push(format!("{t} token_file does not hold a text token"));
    }
    let cfg = PushConfig {
        cluster,
        urls: checked,
        ca_path: raw.ca_path,
        token: token.unwrap_or_else(|| Secret::new(Vec::new())),
        token_file,
        interval: secs_in(
            errs,
            "[tier2] interval_secs",
            raw.interval_secs,
            DEFAULT_INTERVAL,
            1.0,
            3600.0,
        ),
        timeout: secs_in(
            errs,
            "[tier2] timeout_secs",
            raw.timeout_secs,
            DEFAULT_TIMEOUT,
            0.1,
            120.0,
        ),
        max_retries: int_in(
            errs,
            "[tier2] max_retries",
            raw.max_retries,
            DEFAULT_MAX_RETRIES as usize,
            0..=20,
        ) as u32,
    };
    Some(cfg)
}

/// Checks `[fleet]`; every problem goes to `errs`.
pub fn validate_fleet(errs: &mut Vec<String>, raw: Option<RawFleet>) -> Option<FleetConfig> {
    let raw = raw?;
    let heal = raw.heal.map(|h| validate_heal(errs, h));
    Some(FleetConfig {
        unreachable_after: secs_in(
            errs,
            "[fleet] unreachable_after_secs",
            raw.unreachable_after_secs,
            DEFAULT_UNREACHABLE_AFTER,
            1.0,
            86_400.0,
        ),
        max_clusters: int_in(
            errs,
            "[fleet] max_clusters",
            raw.max_clusters,
            DEFAULT_MAX_CLUSTERS,
            1..=100_000,
        ),
        max_summary_bytes: int_in(
            errs,
            "[fleet] max_summary_bytes",
            raw.max_summary_bytes,
            sr_protocol::summary::DEFAULT_MAX_SUMMARY_BYTES,
            1024..=4 << 20,
        ),
        heal,
    })
}

fn validate_heal(errs: &mut Vec<String>, raw: RawHeal) -> HealConfig {
    let t = "[fleet.heal]";
    let action = match (raw.command, raw.webhook_url) {
        (Some(argv), None) => {
            if argv.is_empty() || argv.len() > 64 || argv.iter().any(|a| a.contains('\0')) {
                errs.push(format!(
                    "{t} command must be 1-64 arguments without NUL bytes (argv, no shell)"
                ));
            } else if !std::path::Path::new(&argv[0]).is_absolute() {
                errs.push(format!(
                    "{t} command[0] {:?} must be an absolute path (no PATH search)",
                    argv[0].chars().take(128).collect::<String>()
                ));
            }
            if raw.ca_path.is_some() || raw.secret_file.is_some() {
                errs.push(format!(
                    "{t} ca_path and secret_file belong to webhook_url, not command"
                ));
            }
            HealAction::Command(argv)
        }
        (None, Some(url)) => {
            match check_url(&url) {
                Ok(uri) => check_ca_for(errs, t, &uri, &raw.ca_path),
                Err(e) => errs.push(format!("{t} webhook_url: {e}")),
            }
            if let Some(ca) = &raw.ca_path {
                if let Err(e) = sr_tls::roots_from(ca) {
                    errs.push(format!("{t} ca_path {}: {e}", ca.display()));
                }
            }
            let secret_file = raw.secret_file.unwrap_or_default();
            let secret = if secret_file.as_os_str().is_empty() {
                errs.push(format!(
                    "{t} webhook_url needs secret_file (the HMAC key of its signature)"
                ));
                None
            } else {
                read_secret(errs, &format!("{t} secret_file"), &secret_file)
            };
            HealAction::Webhook {
                url,
                ca_path: raw.ca_path,
                secret: secret.unwrap_or_else(|| Secret::new(Vec::new())),
                secret_file,
            }
        }
        _ => {
            errs.push(format!("{t} needs exactly one of command or webhook_url"));
            HealAction::Command(Vec::new())
        }
    };
    HealConfig {
        silent_after: secs_in(
            errs,
            "[fleet.heal] silent_after_secs",
            raw.silent_after_secs,
            DEFAULT_SILENT_AFTER,
            1.0,
            86_400.0,
        ),
        interval: secs_in(
            errs,
            "[fleet.heal] interval_secs",
            raw.interval_secs,
            DEFAULT_HEAL_INTERVAL,
            1.0,
            7.0 * 86_400.0,
        ),
        timeout: secs_in(
            errs,
            "[fleet.heal] timeout_secs",
            raw.timeout_secs,
            DEFAULT_HEAL_TIMEOUT,
            0.1,
            3600.0,
        ),
        action,
    }
}

/// The `[tier2]` and `[fleet]` tables as `collector init`'s file writes them (empty when unset).
pub fn to_toml(push: &Option<PushConfig>, fleet: &Option<FleetConfig>) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let p = |p: &std::path::Path| q(&p.display().to_string());
    let mut out = String::new();
    if let Some(c) = push {
        out.push_str("\n# Push this cluster's summary to tier-2 collectors.\n[tier2]\n");
        out.push_str(&format!("cluster = {}\n", q(&c.cluster)));
        let urls: Vec<String> = c.urls.iter().map(|u| q(u)).collect();
        out.push_str(&format!("urls = [{}]\n", urls.join(", ")));
        if let Some(ca) = &c.ca_path {
            out.push_str(&format!("ca_path = {}\n", p(ca)));
        }
        out.push_str(&format!("token_file = {}\n", p(&c.token_file)));
        out.push_str(&format!(
            "interval_secs = {}\ntimeout_secs = {}\nmax_retries = {}\n",
            c.interval.as_secs_f64(),
            c.timeout.as_secs_f64(),
            c.max_retries
        ));
    }
    if let Some(f) = fleet {
        out.push_str("\n# Tier 2: keep every cluster's summary.\n[fleet]\n");
        out.push_str(&format!(
            "unreachable_after_secs = {}\nmax_clusters = {}\nmax_summary_bytes = {}\n",
            f.unreachable_after.as_secs_f64(),
            f.max_clusters,
            f.max_summary_bytes
        ));
        if let Some(h) = &f.heal {
            out.push_str(&format!(
                "\n[fleet.heal]\nsilent_after_secs = {}\ninterval_secs = {}\ntimeout_secs = {}\n",
                h.silent_after.as_secs_f64(),
                h.interval.as_secs_f64(),
                h.timeout.as_secs_f64()
            ));
            match &h.action {
                HealAction::Command(argv) => {
                    let a: Vec<String> = argv.iter().map(|s| q(s)).collect();
                    out.push_str(&format!("command = [{}]\n", a.join(", ")));
                }
                HealAction::Webhook {
                    url,
                    ca_path,
                    secret_file,
                    ..
                } => {
                    out.push_str(&format!("webhook_url = {}\n", q(url)));
                    if let Some(ca) = ca_path {
                        out.push_str(&format!("ca_path = {}\n", p(ca)));
                    }
                    out.push_str(&format!("secret_file = {}\n", p(secret_file)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn errors(extra: &str) -> Vec<String> {
        let text = format!("state_dir = \"/tmp/x\"\nplain_http = true\n{extra}");
        match Config::from_toml(&text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = errors(
            "[tier2]\ncluster = \"a b\"\nurls = [\"https://t2:53333\", \"ftp://x\"]\ninterval_secs = 0\n\
             [fleet]\nmax_clusters = 0\n[fleet.heal]\ncommand = [\"heal.sh\"]\nwebhook_url = \"http://x\"\n",
        );
        let all = errs.join("\n");
        for want in [
            "[tier2] cluster",
            "needs ca_path",
            "ftp://x",
            "token_file is required",
            "interval_secs = 0",
            "max_clusters = 0",
            "exactly one of command or webhook_url",
        ] {
            assert!(all.contains(want), "{want} missing from:\n{all}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_and_a_command_needs_an_absolute_path() {
        assert!(errors("[fleet]\nunreachable_after = 3\n")[0].contains("unknown field"));
        assert!(
            errors("[fleet.heal]\ncommand = [\"/bin/true\"]\nshell = true\n")[0]
                .contains("unknown field")
        );
        let errs = errors("[fleet]\n[fleet.heal]\ncommand = [\"heal.sh\"]\n");
        assert!(errs[0].contains("absolute path"), "{errs:?}");
    }

    #[test]
    fn fleet_defaults_follow_the_seed_policy_and_round_trip() {
        let text = "state_dir = \"/tmp/x\"\nplain_http = true\n[fleet]\n[fleet.heal]\ncommand = [\"/bin/true\", \"x\"]\n";
        let cfg = Config::from_toml(text).unwrap();
        let f = cfg.fleet.as_ref().unwrap();
        let h = f.heal.as_ref().unwrap();
        assert_eq!(h.interval, super::DEFAULT_HEAL_INTERVAL);
        assert_eq!(f.unreachable_after, super::DEFAULT_UNREACHABLE_AFTER);
        assert_eq!(Config::from_toml(&cfg.to_toml()).unwrap(), cfg);
    }
}
