//! TLS for the main listener (rustls from PEM, h2 by ALPN) and the dev CA behind `gateway certs`.
//!
//! # Invariants
//! Pingora panics on a PEM it cannot load, so [`check_pem_pair`] runs at config load and the
//! listener is only built from files that passed it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Why the dev certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the parameters.
    #[error("cannot generate the certificate")]
    Generate(#[source] rcgen::Error),
    /// The output folder or a file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where [`write_dev_certs`] put its files.
#[derive(Debug, Clone)]
pub struct DevCertPaths {
    /// The dev CA certificate: trust this one in the OS or browser.
    pub ca_cert: PathBuf,
    /// The CA's private key (kept so more certificates can be issued; never commit it).
    pub ca_key: PathBuf,
    /// The `localhost` / `127.0.0.1` / `::1` certificate, signed by the CA.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Checks that `cert` holds a PEM certificate chain and `key` the matching private key, as the
/// listener will need them. The message names the file and the problem.
pub fn check_pem_pair(cert: &Path, key: &Path) -> Result<(), String> {
    for file in [cert, key] {
        if !file.exists() {
            return Err(missing_pem(file, cert, key));
        }
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{} and {} do not form a usable pair: {e}", cert.display(), key.display()))?;
    Ok(())
}

/// File name of the localhost certificate `gateway certs` writes.
pub const DEV_CERT: &str = "localhost.pem";
/// File name of its private key.
pub const DEV_KEY: &str = "localhost-key.pem";

/// The message for a certificate or key file that does not exist; for the dev pair
/// (`DIR/localhost.pem`, `DIR/localhost-key.pem`) it says how to make it.
fn missing_pem(file: &Path, cert: &Path, key: &Path) -> String {
    let dir = cert.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dev_pair = cert.file_name() == Some(DEV_CERT.as_ref())
        && key.file_name() == Some(DEV_KEY.as_ref())
        && key.parent() == cert.parent();
    if dev_pair {
        format!(
            "{} does not exist; run `gateway certs --out {}` to make a development certificate",
            file.display(),
            dir.display()
        )
    } else {
        format!("{} does not exist", file.display())
    }
}

/// Writes a dev CA and a certificate for `localhost`, `127.0.0.1` and `::1` into `dir`
/// (`ca.pem`, `ca-key.pem`, `localhost.pem`, `localhost-key.pem`; keys mode 0600).
pub fn write_dev_certs(dir: &Path) -> Result<DevCertPaths, TlsError> {
    let now = OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("gateway development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = now - Duration::days(1);
    ca_params.not_after = now + Duration::days(3650);
    let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(TlsError::Generate)?;

    let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let mut leaf = CertificateParams::new(sans).map_err(TlsError::Generate)?;
    leaf.distinguished_name = name("localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::days(1);
    // Browsers cap leaf lifetimes at 398 days.
    leaf.not_after = now + Duration::days(397);
    let leaf_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).map_err(TlsError::Generate)?;

    fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    let paths = DevCertPaths {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        cert: dir.join(DEV_CERT),
        key: dir.join(DEV_KEY),
    };
    write(&paths.ca_cert, &ca.pem(), false)?;
    write(&paths.ca_key, &ca_key_pem, true)?;
    write(&paths.cert, &leaf_cert.pem(), false)?;
    write(&paths.key, &leaf_key.serialize_pem(), true)?;
    Ok(paths)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "gateway dev");
    dn
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write { path: path.to_owned(), source };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 });
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_passes_the_listener_check_and_a_mismatch_does_not() {
        let dir = std::env::temp_dir().join(format!("gw-tls-{}", std::process::id()));
        let p = write_dev_certs(&dir).unwrap();
        check_pem_pair(&p.cert, &p.key).unwrap();
        let e = check_pem_pair(&p.cert, &p.ca_key).unwrap_err();
        assert!(e.contains("do not form a usable pair"), "{e}");
        let e = check_pem_pair(&p.key, &p.key).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }
}
