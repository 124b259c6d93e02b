//! The process's TLS client configuration: which roots it trusts and which protocols it
//! offers.
//!
//! Roots come from the platform trust store through `rustls-native-certs` (0.8 reads
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`; when either is set, only those locations are read,
//! as OpenSSL does). Where nothing usable is found — a scratch container without
//! `ca-certificates`, or a variable naming an unreadable file — the compiled-in webpki roots
//! are used instead, with a warning when the variables asked for something else. Reading the
//! store parses a few hundred kilobytes of PEM, so it happens once per process, at first use,
//! and every client shares the result.

use std::ffi::OsString;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_native_certs::CertificateResult;

const ENV_CERT_FILE: &str = "SSL_CERT_FILE";
const ENV_CERT_DIR: &str = "SSL_CERT_DIR";
/// Unreadable files logged one by one before the rest are only counted.
const PROBLEMS_LOGGED: usize = 8;

/// The application protocols a TLS client offers (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only: for WebSockets, which awc cannot open over HTTP/2.
    Http1Only,
    /// `h2` then `http/1.1`: for plain requests.
    H2AndHttp1,
}

impl Alpn {
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http1Only => vec![b"http/1.1".to_vec()],
            Alpn::H2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// Where root certificates were looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// `SSL_CERT_FILE` and/or `SSL_CERT_DIR`, as they were set.
    Environment(String),
    /// The platform's store (on Linux: the locations OpenSSL would use).
    Platform,
}

impl RootSource {
    /// The source `rustls-native-certs` reads for these variables' values.
    pub fn from_env(file: Option<OsString>, dir: Option<OsString>) -> RootSource {
        let mut set = Vec::new();
        if let Some(file) = file {
            set.push(format!("{ENV_CERT_FILE}={}", file.to_string_lossy()));
        }
        // Like the loader: a variable with no non-empty entry names no directory.
        if let Some(dir) =
            dir.filter(|d| std::env::split_paths(d).any(|p| !p.as_os_str().is_empty()))
        {
            set.push(format!("{ENV_CERT_DIR}={}", dir.to_string_lossy()));
        }
        if set.is_empty() {
            RootSource::Platform
        } else {
            RootSource::Environment(set.join(" "))
        }
    }
}

impl fmt::Display for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSource::Environment(vars) => f.write_str(vars),
            RootSource::Platform => f.write_str("the platform trust store"),
        }
    }
}

/// What loading the trust store came to.
#[derive(Debug)]
pub struct LoadedRoots {
    pub store: RootCertStore,
    pub looked_in: RootSource,
    /// Nothing usable was found where we looked: `store` holds the webpki roots.
    pub fell_back: bool,
    /// Certificates found but not usable as trust anchors.
    pub ignored: usize,
    /// Files or folders that could not be read, worded for the log.
    pub problems: Vec<String>,
}

impl LoadedRoots {
    /// Turns what the loader found in `looked_in` into a root store.
    pub fn from_found(found: CertificateResult, looked_in: RootSource) -> LoadedRoots {
        let mut store = RootCertStore::empty();
        let (_added, ignored) = store.add_parsable_certificates(found.certs);
        let fell_back = store.is_empty();
        if fell_back {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        LoadedRoots {
            store,
            looked_in,
            fell_back,
            ignored,
            problems: found.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// One line for the store, one warning per unreadable file (a few, then a count).
    fn log(&self) {
        for problem in self.problems.iter().take(PROBLEMS_LOGGED) {
            tracing::warn!(from = %self.looked_in, %problem, "TLS trust store: skipped");
        }
        if self.problems.len() > PROBLEMS_LOGGED {
            tracing::warn!(
                more = self.problems.len() - PROBLEMS_LOGGED,
                "TLS trust store: more unreadable certificate files"
            );
        }
        let roots = self.store.len();
        match (&self.looked_in, self.fell_back) {
            (_, false) => tracing::info!(
                roots,
                ignored = self.ignored,
                from = %self.looked_in,
                "TLS trust store loaded"
            ),
            (RootSource::Platform, true) => tracing::info!(
                roots,
                "TLS trust store: no platform store found, using the compiled-in webpki roots"
            ),
            (RootSource::Environment(_), true) => tracing::warn!(
                roots,
                from = %self.looked_in,
                "TLS trust store: no usable root certificate where the environment points, \
                 using the compiled-in webpki roots"
            ),
        }
    }
}

/// Reads the store the environment points at (see the module docs).
fn load() -> LoadedRoots {
    let looked_in = RootSource::from_env(
        std::env::var_os(ENV_CERT_FILE),
        std::env::var_os(ENV_CERT_DIR),
    );
    LoadedRoots::from_found(rustls_native_certs::load_native_certs(), looked_in)
}

/// The process's root store, loaded (and logged) on first use.
pub fn roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = load();
            loaded.log();
            Arc::new(loaded.store)
        })
        .clone()
}

/// A client configuration on `roots` offering `alpn`, with the one crypto provider compiled
/// in (ring) named explicitly, so it cannot depend on a process-wide default.
pub fn client_config(roots: Arc<RootCertStore>, alpn: Alpn) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.protocols();
    Ok(config)
}

/// The process's configuration for `alpn`, built once; `None` if rustls refused it (logged).
pub fn shared_config(alpn: Alpn) -> Option<Arc<ClientConfig>> {
    struct Configs {
        http1: Option<Arc<ClientConfig>>,
        h2: Option<Arc<ClientConfig>>,
    }
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        let roots = roots();
        let build = |alpn| match client_config(roots.clone(), alpn) {
            Ok(config) => Some(Arc::new(config)),
            Err(err) => {
                tracing::error!(%err, ?alpn, "TLS client configuration refused: https:// and wss:// will fail");
                None
            }
        };
        Configs {
            http1: build(Alpn::Http1Only),
            h2: build(Alpn::H2AndHttp1),
        }
    });
    match alpn {
        Alpn::Http1Only => configs.http1.clone(),
        Alpn::H2AndHttp1 => configs.h2.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    /// ISRG Root X2 (as quoted in rustls-native-certs' docs): a real self-signed root.
    const ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICGzCCAaGgAwIBAgIQQdKd0XLq7qeAwSxs6S+HUjAKBggqhkjOPQQDAzBPMQsw
CQYDVQQGEwJVUzEpMCcGA1UEChMgSW50ZXJuZXQgU2VjdXJpdHkgUmVzZWFyY2gg
R3JvdXAxFTATBgNVBAMTDElTUkcgUm9vdCBYMjAeFw0yMDA5MDQwMDAwMDBaFw00
MDA5MTcxNjAwMDBaME8xCzAJBgNVBAYTAlVTMSkwJwYDVQQKEyBJbnRlcm5ldCBT
ZWN1cml0eSBSZXNlYXJjaCBHcm91cDEVMBMGA1UEAxMMSVNSRyBSb290IFgyMHYw
EAYHKoZIzj0CAQYFK4EEACIDYgAEzZvVn4CDCuwJSvMWSj5cz3es3mcFDR0HttwW
+1qLFNvicWDEukWVEYmO6gbf9yoWHKS5xcUy4APgHoIYOIvXRdgKam7mAHf7AlF9
ItgKbppbd9/w+kHsOdx1ymgHDB/qo0IwQDAOBgNVHQ8BAf8EBAMCAQYwDwYDVR0T
AQH/BAUwAwEB/zAdBgNVHQ4EFgQUfEKWrt5LSDv6kviejM9ti6lyN5UwCgYIKoZI
zj0EAwMDaAAwZQIwe3lORlCEwkSHRhtFcP9Ymd70/aTSVaYgLXTWNLxBo1BfASdW
tL4ndQavEi51mI38AjEAi/V3bNTIZargCyzuFJ0nN6T5U6VR5CmD1/iQMVtCnwr1
/q4AaOeMSQ+2b1tbFfLn
-----END CERTIFICATE-----
";

    fn found(certs: Vec<CertificateDer<'static>>) -> CertificateResult {
        let mut result = CertificateResult::default();
        result.certs = certs;
        result
    }

    #[test]
    fn the_certificates_found_are_the_roots() {
        let root = CertificateDer::from_pem_slice(ROOT_PEM.as_bytes()).unwrap();
        let source = RootSource::Environment("SSL_CERT_FILE=ca.pem".into());
        let loaded = LoadedRoots::from_found(found(vec![root]), source.clone());
        assert_eq!(loaded.store.len(), 1);
        assert!(!loaded.fell_back);
        assert_eq!(loaded.looked_in, source);
        assert!(loaded.problems.is_empty());
    }

    #[test]
    fn no_store_falls_back_to_the_webpki_roots() {
        let loaded = LoadedRoots::from_found(found(Vec::new()), RootSource::Platform);
        assert!(loaded.fell_back);
        assert_eq!(loaded.store.len(), webpki_roots::TLS_SERVER_ROOTS.len());
    }

    #[test]
    fn garbage_is_ignored_and_an_unreadable_file_is_a_problem_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("no-such-dir-{}", std::process::id()));
        let missing = dir.join("ca.pem");
        let mut result = rustls_native_certs::load_certs_from_paths(Some(missing.as_path()), None);
        result
            .certs
            .push(CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]));
        let loaded = LoadedRoots::from_found(result, RootSource::Platform);
        assert_eq!(loaded.ignored, 1);
        assert!(loaded.fell_back, "nothing usable: webpki roots");
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].contains("ca.pem"),
            "the problem names the file: {:?}",
            loaded.problems
        );
        loaded.log();
    }

    #[test]
    fn the_environment_decides_where_to_look() {
        assert_eq!(RootSource::from_env(None, None), RootSource::Platform);
        assert_eq!(
            RootSource::from_env(None, Some(OsString::from(":"))),
            RootSource::Platform,
            "no directory named"
        );
        assert_eq!(
            RootSource::from_env(Some("/ca.pem".into()), Some("/certs".into())).to_string(),
            "SSL_CERT_FILE=/ca.pem SSL_CERT_DIR=/certs"
        );
    }

    #[test]
    fn websockets_offer_http1_only_and_requests_h2_first() {
        let roots = Arc::new(RootCertStore::empty());
        let ws = client_config(roots.clone(), Alpn::Http1Only).unwrap();
        assert_eq!(ws.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let https = client_config(roots, Alpn::H2AndHttp1).unwrap();
        assert_eq!(
            https.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
