//! The relay's signing key on disk: PASERK `k4.secret`, mode 0600, written
//! once (temporary file, fsync, rename). Never logged.

use std::io::Write;
use std::path::Path;

use tessera_protocol::SigningKey;

use crate::error::{Error, Result};

/// Load the key at `path`, or create it; `true` when created now.
///
/// # Errors
/// When the file cannot be read or written, or holds no key.
pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool)> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let key = SigningKey::from_paserk(text.trim())
            .map_err(|e| Error::Config(format!("relay key file {}: {e}", path.display())))?;
        return Ok((key, false));
    }
    let key = SigningKey::generate(&mut rand::rng());
    let tmp = path.with_extension("key.tmp");
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(key.to_paserk().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok((key, true))
}
