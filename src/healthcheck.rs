//! The `--healthcheck` client: GETs our own `/healthz` (the image has no shell or curl).

use std::sync::Arc;
use std::time::Duration;

/// GETs `/healthz` at `target` (the local exporter) and returns the status line: the
/// `--healthcheck` probe for images without curl. Over TLS the server certificate is not
/// verified: the probe only talks to its own process on loopback and sends nothing secret.
pub fn probe(target: std::net::SocketAddr, tls: bool) -> Result<String, String> {
    use std::io::{Read, Write};

    let timeout = Duration::from_secs(3);
    let stream = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("{target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    if tls {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate))
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::IpAddress(target.ip().into());
        let connection =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(connection, stream);
        tls.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let _ = tls.take(4096).read_to_end(&mut response);
    } else {
        let mut stream = stream;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        stream
            .take(4096)
            .read_to_end(&mut response)
            .map_err(|e| e.to_string())?;
    }
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Accepts any server certificate: only for [`probe`] of our own process on loopback.
#[derive(Debug)]
struct AnyServerCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
