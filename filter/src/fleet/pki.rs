//! Certificates and TLS settings of the control plane: mutual TLS 1.3 over QUIC, every peer's
//! certificate checked against the operator's CA (chain, validity dates, key usage), the
//! manager's name checked by nodes, the node's name taken from its certificate's common name.
//!
//! `palisade manager init-ca` and `issue-cert` make a CA and certificates for operators who do
//! not have one; any CA works (ECDSA, RSA or Ed25519 keys).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol of the control plane.
pub const ALPN: &[u8] = b"palisade-fleet/1";

/// A CA's files: (certificate PEM, private key PEM).
pub fn init_ca(name: &str, days: i64) -> Result<(String, String), String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(days);
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Issues a certificate for `name` (a node's name, or the manager's DNS name or address), valid
/// for both ends of a TLS connection, from `not_before` to `not_after`. Returns (certificate
/// PEM, private key PEM).
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    name: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<(String, String), String> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("CA key: {e}"))?;
    let ca_params = CertificateParams::from_ca_cert_pem(ca_cert_pem)
        .map_err(|e| format!("CA certificate: {e}"))?;
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(|e| format!("CA certificate and key do not go together: {e}"))?;
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p = CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("{name}: not a usable name: {e}"))?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.signed_by(&key, &ca, &ca_key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The files a peer is configured with.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The operator's CA certificate (PEM; several allowed).
    pub ca: std::path::PathBuf,
    /// This peer's certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// This peer's private key (PEM).
    pub key: std::path::PathBuf,
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let v: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if v.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(v)
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut r = rustls::RootCertStore::empty();
    for c in certs(path)? {
        r.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(r)
}

impl Identity {
    fn chain_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        Ok((certs(&self.cert)?, key))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Idle timeout and keep-alive of control connections: a dead link is noticed in `idle`, and a
/// quiet one is kept open.
/// Windows bound what each connection buffers: nodes take bundles (1 MiB in flight), the
/// manager takes events (256 KiB per node in flight); each side keeps at most `window` of its
/// own unacknowledged data (a bundle pushed to a thousand nodes is not copied a thousand
/// times whole).
fn transport(idle: Duration, window: u32) -> Result<Arc<quinn::TransportConfig>, String> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(window.into());
    t.receive_window(window.into());
    t.send_window(window.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.max_concurrent_bidi_streams(1u32.into());
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).map_err(|e| e.to_string())?,
    ));
    t.keep_alive_interval(Some(idle / 4));
    Ok(Arc::new(t))
}

/// The manager's QUIC settings: its certificate, and client certificates required and checked
/// against the CA.
pub fn server_config(id: &Identity, idle: Duration) -> Result<quinn::ServerConfig, String> {
    let (chain, key) = id.chain_and_key()?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&id.ca)?),
        provider(),
    )
    .build()
    .map_err(|e| format!("{}: {e}", id.ca.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", id.cert.display()))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(cfg).map_err(|e| e.to_string())?;
    let mut s = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    s.transport_config(transport(idle, 256 << 10)?);
    Ok(s)
}

/// A node's QUIC settings: the manager checked against the CA, this node's certificate offered.
pub fn client_config(id: &Identity, idle: Duration) -> Result<quinn::ClientConfig, String> {
    let (chain, key) = id.chain_and_key()?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(&id.ca)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("{}: {e}", id.cert.display()))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(cfg).map_err(|e| e.to_string())?;
    let mut c = quinn::ClientConfig::new(Arc::new(crypto));
    c.transport_config(transport(idle, 1 << 20)?);
    Ok(c)
}

/// The common name of a peer's (already verified) certificate: the node's name.
pub fn peer_name(conn: &quinn::Connection) -> Option<String> {
    let id = conn.peer_identity()?;
    let chain = id.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let info = crate::app::x509::parse(chain.first()?.as_ref())?;
    info.subject
        .split(", ")
        .find_map(|a| a.strip_prefix("CN="))
        .map(str::to_string)
}

/// Parses `YYYY-MM-DD` as midnight UTC.
pub fn parse_date(s: &str) -> Option<time::OffsetDateTime> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc())
}
