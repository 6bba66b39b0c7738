//! TLS for every server and for the calls between services: a certificate and key in PEM
//! files turn TLS on, and are read again when the files change (Kubernetes rotates a mounted
//! secret in place), without a restart; a client CA makes the server require client
//! certificates it signed (mTLS); a CA makes this process call its peers over TLS, showing
//! its own certificate when it has one.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the certificate files are read again for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where this process's TLS material is, from flags or `RAPPORT_TLS_*` variables.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Certificate chain (PEM) the server presents; with --tls-key, serves TLS only. It is
    /// also the certificate this process shows the peers it calls.
    #[arg(long, env = "RAPPORT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that must have signed the certificates clients present: mTLS.
    #[arg(long, env = "RAPPORT_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// CA (PEM) trusted when calling peers, which are then called over TLS.
    #[arg(long, env = "RAPPORT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(path, e))
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates_in(path, &read(path)?)
}

/// The certificates of the PEM text `pem`, read from `path`.
fn certificates_in(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The one cryptography provider, named rather than guessed: other crates in the process
/// enable rustls with their own choice.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key, ready to sign handshakes.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    certified_key_in((cert, &read(cert)?), (key, &read(key)?))
}

/// [`certified_key`] of PEM texts already read (each with the path it came from).
fn certified_key_in(
    (cert, cert_pem): (&Path, &[u8]),
    (key, key_pem): (&Path, &[u8]),
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates_in(cert, cert_pem)?;
    let der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| file_error(key, format!("not a PEM private key: {e}")))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| file_error(key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display())))?;
    Ok(certified)
}

/// The server's certificate, replaced when its files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| Arc::clone(&k))
    }
}

/// Reads the certificate files every [`RELOAD_EVERY`] and serves their new content once
/// it is whole and valid (a half-written pair keeps the previous one in use).
async fn follow(cert: PathBuf, key: PathBuf, current: Arc<Current>) {
    let contents = || (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
    let mut seen = contents();
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let now = contents();
        if now == seen {
            continue;
        }
        let loaded = match &now {
            (Some(c), Some(k)) => certified_key_in((&cert, c), (&key, k)),
            _ => certified_key(&cert, &key),
        };
        match loaded {
            Ok(k) => {
                if let Ok(mut slot) = current.0.write() {
                    *slot = Arc::new(k);
                }
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                seen = now;
            }
            Err(error) => {
                tracing::warn!(%error, "TLS certificate files changed but do not load; serving the previous certificate")
            }
        }
    }
}

impl TlsArgs {
    /// The server's acceptor, or `None` when TLS is off. Starts following the certificate
    /// files (on the current Tokio runtime).
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let current = Arc::new(Current(RwLock::new(Arc::new(certified_key(cert, key)?))));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.tls_client_ca {
            Some(ca) => {
                let verifier = Arc::new(ClientCa(RwLock::new(client_verifier(ca, &read(ca)?)?)));
                tokio::spawn(follow_client_ca(ca.clone(), verifier.clone()));
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio::spawn(follow(cert.clone(), key.clone(), current));
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// How this process calls its peers: over TLS trusting `--tls-ca` (showing its own
    /// certificate when it has one), or `None` for plaintext.
    pub fn client(&self) -> Option<ClientTls> {
        self.tls_ca.as_ref().map(|ca| ClientTls {
            ca: ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        })
    }
}

/// The files of a client's TLS, read again when they change: peers are called with the
/// certificate on disk now, not the one of the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    ca: PathBuf,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl ClientTls {
    /// The configuration of the files as they are now.
    pub fn load(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        client_config(&self.ca, self.cert.as_deref(), self.key.as_deref())
    }

    /// What the files hold now, to tell when they changed.
    pub fn contents(&self) -> Vec<Option<Vec<u8>>> {
        [Some(&self.ca), self.cert.as_ref(), self.key.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::read(p).ok())
            .collect()
    }
}

/// The verifier of client certificates signed by the CA of `path` (PEM text `pem`).
fn client_verifier(
    path: &Path,
    pem: &[u8],
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates_in(path, pem)? {
        roots.add(c).map_err(|e| file_error(path, e))?;
    }
    Ok(WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?)
}

/// The client CA's verifier, replaced when the CA file changes.
#[derive(Debug)]
struct ClientCa(RwLock<Arc<dyn rustls::server::danger::ClientCertVerifier>>);

impl ClientCa {
    fn current(
        &self,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, rustls::Error> {
        self.0
            .read()
            .map(|v| Arc::clone(&v))
            .map_err(|_| rustls::Error::General("client CA being replaced".into()))
    }
}

impl rustls::server::danger::ClientCertVerifier for ClientCa {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // The hints live in the verifier being replaced; clients show the one certificate
        // they have without them.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.current()
            .map(|v| v.supported_verify_schemes())
            .unwrap_or_default()
    }
}

/// Reads the client CA every [`RELOAD_EVERY`] and verifies with its new content once it
/// loads (a half-written file keeps the previous CA in force).
async fn follow_client_ca(path: PathBuf, current: Arc<ClientCa>) {
    let mut seen = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let now = std::fs::read(&path).ok();
        if now == seen {
            continue;
        }
        let loaded = match &now {
            Some(pem) => client_verifier(&path, pem),
            None => read(&path).and_then(|pem| client_verifier(&path, &pem)),
        };
        match loaded {
            Ok(verifier) => {
                if let Ok(mut slot) = current.0.write() {
                    *slot = verifier;
                }
                tracing::info!(ca = %path.display(), "TLS client CA reloaded");
                seen = now;
            }
            Err(error) => {
                tracing::warn!(%error, "TLS client CA changed but does not load; verifying with the previous one")
            }
        }
    }
}

/// A client's TLS: trusting `ca`, showing `cert` with `key` when both are given (mTLS).
pub fn client_config(
    ca: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    // Each file read once: checked here, so a bad one is named at start-up rather than
    // failing every handshake later.
    let ca_pem = read(ca)?;
    certificates_in(ca, &ca_pem)?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let (Some(cert), Some(key)) = (cert, key) {
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        certified_key_in((cert, &cert_pem), (key, &key_pem))?;
        config = config.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(config)
}

/// TLS of outgoing HTTPS calls (webhooks): the public roots every browser trusts, and
/// `extra_ca` for endpoints inside the organisation.
pub fn web_client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        for c in certificates(ca)? {
            roots.add(c).map_err(|e| file_error(ca, e))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// TLS of a command-line client, from flags or the `RAPPORT_TLS_*` variables a service's
/// pod already has.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// CA (PEM) to trust: call the servers over TLS.
    #[arg(long, global = true, env = "RAPPORT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to show servers that require one (mTLS).
    #[arg(long, global = true, env = "RAPPORT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// An endpoint for `addr` (`host:port` or a URL): https with these settings when a CA
    /// is given, the address as it is otherwise.
    pub fn endpoint(&self, addr: &str) -> anyhow::Result<tonic::transport::Endpoint> {
        let Some(ca) = &self.tls_ca else {
            let uri = if addr.contains("://") {
                addr.to_owned()
            } else {
                format!("http://{addr}")
            };
            return Ok(tonic::transport::Endpoint::from_shared(uri)?);
        };
        let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{rest}"))?;
        let config = client_config(ca, self.tls_cert.as_deref(), self.tls_key.as_deref())?;
        Ok(endpoint.tls_config(config)?)
    }
}

/// Connections accepted on `listener` once their TLS handshake succeeded; handshakes run
/// side by side, so a slow or hostile client holds up no other. A failed handshake is the
/// client's business (a plaintext client, an unknown certificate): logged at debug level.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl tokio_stream::Stream<Item = std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake refused"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
