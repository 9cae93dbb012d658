//! The one type for passwords in probe configs.
//!
//! The inner string is private: outside this crate a `Secret` can be built and handed to
//! a probe, never read back; `Debug` prints a placeholder, so a config logged with `{:?}`
//! shows no password. Inside the crate, [`Secret::expose`] is called only where a client
//! library takes the password (HTTP Basic, the AMQP URI, the PostgreSQL login).

use serde::{Deserialize, Serialize};

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The password itself, for the client library that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "\"<redacted>\"");
    }
}
