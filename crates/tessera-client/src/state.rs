//! The client's disk state: token, document, high-water mark, instance id.
//!
//! One JSON file, written atomically (temporary file, fsync, rename, fsync of
//! the directory) with mode 0600, and only with documents that passed
//! verification. On load the document is verified again (signature and token
//! binding; freshness is judged by the verdict), so a file edited by hand
//! proves nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_protocol::{Timestamp, TokenFingerprint};

use crate::error::Error;

/// File name inside the state directory.
pub const STATE_FILE: &str = "tessera-state.json";
const FORMAT: &str = "tessera-client-state/1";
/// Larger state files are refused unread (a document is at most 16 KiB).
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// What is kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskState {
    /// Always `tessera-client-state/1`.
    pub format: String,
    /// The installation's id.
    pub instance_id: String,
    /// The license token in use. Secret: the file is 0600.
    pub token: Option<String>,
    /// Fingerprint of the token the configuration gave when this was written;
    /// tells a token changed in the configuration from one activated at run time.
    pub configured: Option<TokenFingerprint>,
    /// The newest verified document for `token`.
    pub document: Option<String>,
    /// max(every accepted `iat`, the local clock as last seen while running).
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub high_water_mark: Option<Timestamp>,
}

impl DiskState {
    /// A fresh state with this instance id.
    #[must_use]
    pub fn new(instance_id: String) -> Self {
        Self {
            format: FORMAT.to_owned(),
            instance_id,
            token: None,
            configured: None,
            document: None,
            high_water_mark: None,
        }
    }
}

impl DiskState {
    /// Parse a state file's bytes (size, JSON, format tag). What it holds
    /// is trusted only after the client verifies its document again.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<DiskState, String> {
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(format!(
                "{} bytes, over the {MAX_STATE_BYTES}-byte limit",
                bytes.len()
            ));
        }
        let state: DiskState =
            serde_json::from_slice(bytes).map_err(|e| format!("not a state file: {e}"))?;
        if state.format != FORMAT {
            return Err(format!(
                "format {:?}, expected {FORMAT}",
                state.format.chars().take(64).collect::<String>()
            ));
        }
        Ok(state)
    }
}

/// The `state_load` fuzz target's body (`fuzz/`), here so the committed
/// corpus replays as a test: what parses, stores back and parses the same.
#[doc(hidden)]
pub fn fuzz_state_load(data: &[u8]) -> bool {
    let Ok(state) = DiskState::parse(data) else {
        return false;
    };
    let again = serde_json::to_vec(&state).expect("a parsed state encodes");
    assert_eq!(DiskState::parse(&again).as_ref(), Ok(&state));
    true
}

/// The state file of a directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// The state file in `dir` (created on first write, mode 0700).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Read the state; `Ok(None)` when there is none yet.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file exists but cannot be read or parsed.
    pub fn load(&self) -> Result<Option<DiskState>, Error> {
        let path = self.path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::storage("cannot read", &path, &e)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::storage("cannot read", &path, &e))?
            .len();
        if len > MAX_STATE_BYTES {
            return Err(Error::Storage(format!(
                "{} is {len} bytes, over the {MAX_STATE_BYTES}-byte limit",
                path.display()
            )));
        }
        let bytes = fs::read(&path).map_err(|e| Error::storage("cannot read", &path, &e))?;
        DiskState::parse(&bytes)
            .map(Some)
            .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))
    }

    /// Write the state atomically, mode 0600.
    ///
    /// # Errors
    /// [`Error::Storage`]; the previous file is then intact.
    pub fn store(&self, state: &DiskState) -> Result<(), Error> {
        write_atomically(
            &self.dir,
            STATE_FILE,
            &serde_json::to_vec_pretty(state).unwrap_or_default(),
        )
    }

    /// The nonces of the offline activation requests this installation
    /// made (docs/PROTOCOL.md §25), newest last; none when there is no file.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file exists but cannot be read or parsed.
    pub fn offline_requests(&self) -> Result<Vec<String>, Error> {
        let path = self.dir.join(OFFLINE_REQUESTS_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<OfflineRequests>(&bytes)
                .map(|r| r.nonces)
                .map_err(|e| Error::Storage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::storage("cannot read", &path, &e)),
        }
    }

    /// Keep `nonce` with the earlier requests' (the last 16): a response
    /// answering any of them may be imported, days later, after restarts.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file cannot be written.
    pub fn add_offline_request(&self, nonce: &str) -> Result<(), Error> {
        let mut nonces = self.offline_requests()?;
        nonces.push(nonce.to_owned());
        let keep = nonces.len().saturating_sub(16);
        nonces.drain(..keep);
        let file = OfflineRequests {
            format: "tessera-offline-requests/1".to_owned(),
            nonces,
        };
        write_atomically(
            &self.dir,
            OFFLINE_REQUESTS_FILE,
            &serde_json::to_vec_pretty(&file).unwrap_or_default(),
        )
    }
}

/// Where the nonces of offline activation requests are kept.
pub const OFFLINE_REQUESTS_FILE: &str = "tessera-offline-requests.json";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OfflineRequests {
    format: String,
    nonces: Vec<String>,
}

/// Temporary file, fsync, rename over the target, fsync the directory: a
/// crash at any point leaves the old file or the new one, never a mix.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::storage("cannot create", dir, &e))?;
    }
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::storage("cannot write", &target, &e)
    })
}
