//! Admin bearer tokens: hashed with SHA-256, compared in constant time.
//!
//! A node accepts `authorization: Bearer <token>` when the token's hash is
//! the bootstrap token's (read from `admin_token_file`, generated on first
//! start) or one of the admin token hashes in the replicated state
//! ([`crate::state::MeshState::admin_tokens`]). Tokens themselves are never
//! stored or logged; only [`TokenHash`]es (64 lowercase hex digits) are.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom as _;

use crate::state::TokenHash;

/// The shortest token accepted from a token file.
pub const MIN_TOKEN_LEN: usize = 16;

/// Random bytes in a generated token (hex-encoded: twice as many
/// characters).
pub const GENERATED_TOKEN_BYTES: usize = 32;

/// Checks admin bearer tokens against the bootstrap token and a set of
/// extra token hashes.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    bootstrap: TokenHash,
    extra: Vec<TokenHash>,
}

/// Why a request's admin credentials were refused. The messages are safe
/// to return to the client: they say nothing about valid tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error("missing admin token: send the header \"authorization: Bearer <token>\"")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("malformed authorization header: expected \"Bearer <token>\"")]
    Malformed,
    /// The token matches no admin token.
    #[error("invalid admin token")]
    Invalid,
}

/// The bootstrap token as read (or generated) from `admin_token_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The token's hash.
    pub hash: TokenHash,
    /// The file it came from.
    pub path: PathBuf,
    /// True when this call generated it and wrote the file.
    pub created: bool,
}

/// Why the bootstrap token could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file exists but could not be read.
    #[error("admin_token_file {path:?}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Others may read or write the file.
    #[error(
        "admin_token_file {path:?} is accessible to other users (mode {mode:04o}): run `chmod 600 {path:?}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds only whitespace.
    #[error("admin_token_file {path:?} is empty: put a token in it, or delete it to have one generated")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token is too short to be a secret.
    #[error(
        "admin_token_file {path:?}: the token has {len} characters, at least {MIN_TOKEN_LEN} are required"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The token's length.
        len: usize,
    },
    /// The token cannot travel in an HTTP header.
    #[error(
        "admin_token_file {path:?}: the token must be one line of visible ASCII characters without spaces"
    )]
    NotHeaderSafe {
        /// The file.
        path: PathBuf,
    },
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Writing a generated token failed.
    #[error("admin_token_file {path:?}: cannot write it: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl AdminAuth {
    /// Accepts the token with this hash (the bootstrap token).
    pub fn new(bootstrap: TokenHash) -> AdminAuth {
        AdminAuth { bootstrap, extra: Vec::new() }
    }

    /// Also accepts these hashes (the replicated admin tokens), replacing
    /// any given before.
    pub fn with_tokens(mut self, hashes: impl IntoIterator<Item = TokenHash>) -> AdminAuth {
        self.extra = hashes.into_iter().collect();
        self
    }

    /// Checks an `authorization` header value against the bootstrap token
    /// and the hashes given to [`AdminAuth::with_tokens`].
    pub fn check(&self, header_value: Option<&str>) -> Result<(), AuthError> {
        self.check_with(header_value, &self.extra)
    }

    /// Like [`AdminAuth::check`], with `extra` hashes instead of the stored
    /// ones: for checking against the current replicated state without
    /// copying it, e.g.
    /// `auth.check_with(header, state.admin_tokens().values().map(|t| &t.token_hash))`.
    pub fn check_with<'a>(
        &self,
        header_value: Option<&str>,
        extra: impl IntoIterator<Item = &'a TokenHash>,
    ) -> Result<(), AuthError> {
        let token = bearer_token(header_value)?;
        let presented = token_hash_hex(token);
        // Compare against every hash without stopping early, so the time
        // taken says nothing about which (if any) matched.
        let mut matched = hex_eq(&presented, &self.bootstrap.0);
        for hash in extra {
            matched |= hex_eq(&presented, &hash.0);
        }
        if matched {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// The SHA-256 of `token` as 64 lowercase hex digits: the form
/// [`TokenHash`] stores.
pub fn token_hash_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.as_ref() {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// [`token_hash_hex`] as a [`TokenHash`].
pub fn token_hash(token: &str) -> TokenHash {
    TokenHash(token_hash_hex(token))
}

/// A new random token: [`GENERATED_TOKEN_BYTES`] bytes from the system's
/// CSPRNG, hex-encoded.
pub fn generate_token() -> Result<String, TokenFileError> {
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| TokenFileError::Random)?;
    Ok(bytes
        .iter()
        .flat_map(|b| [HEX_DIGITS[usize::from(b >> 4)], HEX_DIGITS[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect())
}

/// Reads the bootstrap token from `path` (surrounding whitespace trimmed),
/// or, when the file does not exist, generates one and writes it there with
/// mode 0600. Refuses a file others can access, an empty file, a token
/// shorter than [`MIN_TOKEN_LEN`] and one that cannot travel in a header.
///
/// Creation is atomic: the token is written to a temporary file that is
/// then hard-linked into place, so nodes sharing one file on first start
/// agree on one token and never read a half-written file.
pub fn load_or_create_bootstrap_token(path: &Path) -> Result<BootstrapToken, TokenFileError> {
    match read_token_file(path) {
        Ok(hash) => return Ok(BootstrapToken { hash, path: path.to_path_buf(), created: false }),
        Err(TokenFileError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = generate_token()?;
    if create_token_file(path, &token)? {
        Ok(BootstrapToken { hash: token_hash(&token), path: path.to_path_buf(), created: true })
    } else {
        // Someone else created it between our read and our link.
        let hash = read_token_file(path)?;
        Ok(BootstrapToken { hash, path: path.to_path_buf(), created: false })
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The token from `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(header_value: Option<&str>) -> Result<&str, AuthError> {
    let value = header_value.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Constant-time equality of two hex strings of the same length (a length
/// mismatch is not secret: every hash has 64 digits).
fn hex_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn read_token_file(path: &Path) -> Result<TokenHash, TokenFileError> {
    let read_error = |source| TokenFileError::Read { path: path.to_path_buf(), source };
    let meta = fs::metadata(path).map_err(read_error)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(TokenFileError::Exposed { path: path.to_path_buf(), mode });
    }
    let text = fs::read_to_string(path).map_err(read_error)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: path.to_path_buf() });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenFileError::NotHeaderSafe { path: path.to_path_buf() });
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenFileError::TooShort { path: path.to_path_buf(), len: token.len() });
    }
    Ok(token_hash(token))
}

/// Writes `token` to `path` unless it exists; returns false when it did.
fn create_token_file(path: &Path, token: &str) -> Result<bool, TokenFileError> {
    let write_error = |source| TokenFileError::Write { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = generate_token()?;
    let temp = dir.join(format!(".{file_name}.{}.tmp", &suffix[..12]));
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(write_error)?;
    let written = file.write_all(format!("{token}\n").as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(write_error(e)),
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth::new(token_hash("bootstrap-token-0123456789"))
            .with_tokens([token_hash("replicated-token-abcdefgh")])
    }

    #[test]
    fn token_hash_matches_the_sha256_test_vector_and_the_state_form() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(token_hash_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(token_hash("anything").validate().is_ok());
    }

    #[test]
    fn check_accepts_the_bootstrap_and_extra_tokens() {
        let auth = auth();
        assert_eq!(auth.check(Some("Bearer bootstrap-token-0123456789")), Ok(()));
        assert_eq!(auth.check(Some("bearer replicated-token-abcdefgh")), Ok(()));
        assert_eq!(auth.check(Some("  BEARER   bootstrap-token-0123456789  ")), Ok(()));
    }

    #[test]
    fn check_refuses_bad_headers_and_tokens() {
        let auth = auth();
        let cases: &[(Option<&str>, AuthError)] = &[
            (None, AuthError::Missing),
            (Some(""), AuthError::Malformed),
            (Some("Bearer"), AuthError::Malformed),
            (Some("Bearer "), AuthError::Malformed),
            (Some("Basic dXNlcjpwYXNz"), AuthError::Malformed),
            (Some("bootstrap-token-0123456789"), AuthError::Malformed),
            (Some("Bearer two words"), AuthError::Malformed),
            (Some("Bearer bootstrap-token-012345678"), AuthError::Invalid),
            (Some("Bearer BOOTSTRAP-TOKEN-0123456789"), AuthError::Invalid),
        ];
        for (header, expected) in cases {
            assert_eq!(auth.check(*header), Err(expected.clone()), "{header:?}");
        }
    }

    #[test]
    fn check_with_uses_the_given_hashes_instead_of_the_stored_ones() {
        let auth = auth();
        let current = [token_hash("added-later-token-xyz")];
        assert_eq!(auth.check_with(Some("Bearer added-later-token-xyz"), &current), Ok(()));
        assert_eq!(
            auth.check_with(Some("Bearer replicated-token-abcdefgh"), &current),
            Err(AuthError::Invalid)
        );
        assert_eq!(auth.check_with(Some("Bearer bootstrap-token-0123456789"), &[]), Ok(()));
    }

    #[test]
    fn a_missing_token_file_is_generated_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let first = load_or_create_bootstrap_token(&path).unwrap();
        assert!(first.created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let token = fs::read_to_string(&path).unwrap();
        let token = token.trim();
        assert_eq!(token.len(), 2 * GENERATED_TOKEN_BYTES);
        assert_eq!(first.hash, token_hash(token));
        let second = load_or_create_bootstrap_token(&path).unwrap();
        assert!(!second.created);
        assert_eq!(second.hash, first.hash);
        AdminAuth::new(second.hash).check(Some(&format!("Bearer {token}"))).unwrap();
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("admin.token")]);
    }

    #[test]
    fn bad_token_files_are_refused_with_a_message_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let cases: &[(&str, u32, &str)] = &[
            ("  \n", 0o600, "is empty: put a token in it, or delete it to have one generated"),
            ("short\n", 0o600, "the token has 5 characters, at least 16 are required"),
            ("has a space in the token\n", 0o600, "must be one line of visible ASCII characters"),
            ("0123456789abcdef0123\n", 0o644, "is accessible to other users (mode 0644): run `chmod 600"),
        ];
        for (contents, mode, expected) in cases {
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            let error = load_or_create_bootstrap_token(&path).unwrap_err().to_string();
            assert!(error.starts_with(&format!("admin_token_file {path:?}")), "{error}");
            assert!(error.contains(expected), "{error}");
        }
        fs::write(&path, "  0123456789abcdef0123  \n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let token = load_or_create_bootstrap_token(&path).unwrap();
        assert_eq!(token.hash, token_hash("0123456789abcdef0123"));
    }
}
