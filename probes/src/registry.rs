//! The one list of probe kinds. A probe is configured as a `[[probes]]` table whose
//! `kind` picks the variant; unknown kinds and unknown keys are errors.

use crate::Probe;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeConfig {
    Tcp(crate::tcp::Config),
}

impl ProbeConfig {
    /// Every problem with this probe's settings, prefixed with its kind.
    pub fn validate(&self) -> Vec<String> {
        let (kind, errors) = match self {
            ProbeConfig::Tcp(c) => ("tcp", c.validate()),
        };
        errors.into_iter().map(|e| format!("probe {kind}: {e}")).collect()
    }
}

/// Builds the probe instance for one config entry.
pub fn build(cfg: &ProbeConfig) -> Box<dyn Probe> {
    match cfg {
        ProbeConfig::Tcp(c) => Box::new(crate::tcp::TcpProbe::new(c.clone())),
    }
}
