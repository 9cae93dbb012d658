//! TLS and HTTPS plumbing shared by every binary role.
//!
//! Invariants:
//! - The crypto provider is always passed explicitly (ring); nothing here calls
//!   `ClientConfig::builder()`, which would depend on a process-wide default.
//! - A client trusts **only** the CA file it is given: no system roots, no webpki roots.
//! - TLS 1.2 and 1.3 only.
//! - Every HTTP exchange made through [`HttpsClient`] has a deadline and a body limit.

pub mod client;
pub mod pki;
pub mod quickack;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

pub use client::{Acks, HttpsClient, Response};
/// Re-exported so callers can hold a config without depending on rustls themselves.
pub use rustls::ClientConfig as TlsClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} is not a valid PEM certificate: {detail}")]
    BadCertificate { path: String, detail: String },
    #[error("{path} holds no usable PEM private key")]
    BadKey { path: String },
    #[error("CA certificate in {path} expired at {not_after}")]
    Expired { path: String, not_after: String },
    #[error("CA certificate in {path} is not valid before {not_before}")]
    NotYetValid { path: String, not_before: String },
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// The one crypto provider the project uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process default, for crates that build configs internally
/// (tokio-postgres-rustls helpers, lapin). Safe to call more than once.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Longest PEM file accepted (a CA bundle, a certificate chain or a key): a large system
/// bundle is ~250 KiB, so 1 MiB leaves room while a symlink to `/dev/zero` is refused.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Every certificate and key file goes through the one bounded reader: regular files
/// only (a FIFO would block `validate` forever) and at most [`MAX_PEM_BYTES`].
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    sr_fsutil::read_bounded(path, MAX_PEM_BYTES).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        source: e.into(),
    })
}

/// Reads every certificate in a PEM file; an empty or non-PEM file is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    parse_certs(&bytes, &path.display().to_string())
}

pub fn parse_certs(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: origin.to_string(),
        });
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c).map_err(|e| TlsError::BadCertificate {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
    }
    Ok(certs)
}

/// Checks that every certificate in a CA file is within its validity window at `now`
/// (Unix seconds). The clock is passed in so tests are deterministic.
pub fn check_validity(path: &Path, certs: &[CertificateDer<'_>], now: i64) -> Result<(), TlsError> {
    for c in certs {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(c).map_err(|e| TlsError::BadCertificate {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        let v = parsed.validity();
        if v.not_after.timestamp() < now {
            return Err(TlsError::Expired {
                path: path.display().to_string(),
                not_after: v.not_after.to_string(),
            });
        }
        if v.not_before.timestamp() > now {
            return Err(TlsError::NotYetValid {
                path: path.display().to_string(),
                not_before: v.not_before.to_string(),
            });
        }
    }
    Ok(())
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::BadKey {
        path: path.display().to_string(),
    })
}

/// A root store holding only the certificates of `ca_path`.
pub fn roots_from(ca_path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A client identity (certificate chain and key) for mutual TLS, e.g. Patroni's
/// `verify_client: required` or etcd's `--client-cert-auth`.
pub struct ClientIdentity<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// A client config that trusts only `ca_path`, offering h2 and http/1.1.
pub fn client_config(
    ca_path: &Path,
    identity: Option<ClientIdentity<'_>>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots_from(ca_path)?);
    let mut cfg = match identity {
        Some(id) => builder.with_client_auth_cert(load_certs(id.cert)?, load_key(id.key)?)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A client config that trusts no CA at all: for plain-HTTP endpoints, where an
/// `https://` URL must then fail verification rather than trust anything.
pub fn trust_nothing_config() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// A server config from a certificate chain and key, offering h2 and http/1.1.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert_path)?, load_key(key_path)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
