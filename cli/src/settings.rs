//! Turns the global options and the environment into what a connection
//! needs: the server URL, the token, TLS material. Files are read here, so
//! a missing token file or a bad CA fails before anything is sent.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::args::GlobalArgs;
use crate::client::{ConnectOptions, RetryPolicy, TlsFiles};
use crate::error::Error;

/// Builds the connection options. `env` looks variables up (the process
/// environment in `main`, a table in tests).
pub fn connect_options(
    global: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectOptions, Error> {
    let server = global.server.trim_end_matches('/').to_string();
    let tls = if server.starts_with("https://") {
        Some(tls_files(global)?)
    } else if server.starts_with("http://") {
        if global.ca.is_some() || global.cert.is_some() {
            return Err(Error::usage(format!(
                "--ca and --cert are for https:// servers, but --server is {server} (plaintext)"
            )));
        }
        None
    } else {
        return Err(Error::usage(format!(
            "invalid --server {server:?}: use http://HOST:PORT (plaintext, insecure clusters) or https://HOST:PORT"
        )));
    };
    Ok(ConnectOptions {
        server,
        token: token(global.token_file.as_deref(), env)?,
        tls,
        call_timeout: global.call_timeout,
        connect_timeout: Duration::from_secs(5).min(global.call_timeout),
        retry: RetryPolicy::default(),
    })
}

/// The admin token: `--token-file`, else `VANTAGE_TOKEN`, else
/// `VANTAGE_TOKEN_FILE`, else none.
pub fn token(
    token_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Error> {
    if let Some(path) = token_file {
        return read_token(path, "--token-file").map(Some);
    }
    if let Some(token) = env("VANTAGE_TOKEN").filter(|t| !t.trim().is_empty()) {
        return check_token(token.trim(), "VANTAGE_TOKEN").map(|()| Some(token.trim().to_string()));
    }
    if let Some(path) = env("VANTAGE_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return read_token(Path::new(&path), "VANTAGE_TOKEN_FILE").map(Some);
    }
    Ok(None)
}

fn read_token(path: &Path, what: &'static str) -> Result<String, Error> {
    let file_error = |reason: String| Error::File { what, path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error("the file is empty; it should hold the admin token".into()));
    }
    check_token(token, what)?;
    Ok(token.to_string())
}

/// A token goes into an HTTP header: visible ASCII only.
fn check_token(token: &str, what: &str) -> Result<(), Error> {
    if token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{what}: the admin token contains spaces or non-ASCII characters; it must be one printable ASCII word"
        )))
    }
}

fn tls_files(global: &GlobalArgs) -> Result<TlsFiles, Error> {
    let ca_pem = match &global.ca {
        Some(path) => {
            let pem = read_file(path, "--ca")?;
            let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
                Error::File { what: "--ca", path: path.display().to_string(), reason: e.to_string() }
            })?;
            if certs.is_empty() {
                return Err(Error::File {
                    what: "--ca",
                    path: path.display().to_string(),
                    reason: "no PEM certificate in the file".into(),
                });
            }
            Some(pem)
        }
        None => None,
    };
    let identity = match (&global.cert, &global.key) {
        (Some(cert), Some(key)) => Some((read_file(cert, "--cert")?, read_file(key, "--key")?)),
        _ => None,
    };
    Ok(TlsFiles { ca_pem, identity })
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::File {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    fn temp_file(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    #[test]
    fn token_precedence_is_flag_then_env_value_then_env_file() {
        let flag_file = temp_file("from-flag\n");
        let env_file = temp_file("from-env-file");
        let env_file_path = env_file.path().to_str().unwrap();
        let all = env(&[("VANTAGE_TOKEN", "from-env"), ("VANTAGE_TOKEN_FILE", env_file_path)]);
        assert_eq!(token(Some(flag_file.path()), &all).unwrap().as_deref(), Some("from-flag"));
        assert_eq!(token(None, &all).unwrap().as_deref(), Some("from-env"));
        let file_only = env(&[("VANTAGE_TOKEN_FILE", env_file_path)]);
        assert_eq!(token(None, &file_only).unwrap().as_deref(), Some("from-env-file"));
        assert_eq!(token(None, &env(&[])).unwrap(), None);
    }

    #[test]
    fn unusable_tokens_are_refused_before_sending() {
        let empty = temp_file("\n");
        let err = token(Some(empty.path()), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("the file is empty"), "{err}");
        let err = token(None, &env(&[("VANTAGE_TOKEN", "two words")])).unwrap_err();
        assert!(err.to_string().contains("printable ASCII"), "{err}");
        let err = token(Some(Path::new("/nonexistent/token")), &env(&[])).unwrap_err();
        assert!(err.to_string().starts_with("--token-file /nonexistent/token: "), "{err}");
    }
}
