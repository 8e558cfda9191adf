//! The data directory: database file, signing key, admin key, and a lock
//! that keeps two servers from sharing one directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tessera_protocol::{SigningKey, Timestamp};

use crate::error::{Error, Result};

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    // Held for the life of the server: the OS releases the lock on exit,
    // even after kill -9.
    _lock: File,
}

impl DataDir {
    /// Create (mode 0700) if missing, then take the directory's lock.
    ///
    /// # Errors
    /// When the directory cannot be created, or another server holds it.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            fs::create_dir_all(path).map_err(Error::io("cannot create data directory", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(Error::io("cannot set permissions of", path))?;
        }
        let path = path
            .canonicalize()
            .map_err(Error::io("cannot open data directory", path))?;
        let lock_path = path.join("tessera.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(Error::io("cannot open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Config(format!(
                    "another tessera server is already using the data directory {}",
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::Io {
                    context: "cannot lock",
                    path: lock_path,
                    source: e,
                });
            }
        }
        warn_if_shared(&path);
        secure_database_files(&path.join(Self::DATABASE))?;
        Ok(Self { path, _lock: lock })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite database.
    pub const DATABASE: &str = "tessera.db";
    /// The default key file sealing webhook secrets.
    pub const SECRETS_KEY: &str = "secrets.key";
    /// The default signing key file.
    pub const SIGNING_KEY: &str = "signing.key";
    /// The bootstrap admin key file (the CLI reads it from here too).
    pub const ADMIN_KEY: &str = "admin.key";

    /// The file `name` (one of the constants above) in the directory.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// A data directory that others may read or enter exposes whatever file
/// in it is not itself private: say so at start.
fn warn_if_shared(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the data directory is accessible to other users; chmod 700 it"
        );
    }
}

/// The database and its `-wal`/`-shm` files are 0600 whatever the
/// directory's mode or the umask: the database file is created here first
/// (SQLite gives its `-wal` and `-shm` files the database file's mode), and
/// files left wider by an older version are narrowed.
///
/// # Errors
/// When a file cannot be created or its mode set.
pub fn secure_database_files(db: &Path) -> Result<()> {
    if !db.exists() {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(db)
            .map_err(Error::io("cannot create", db))?;
    }
    let mut names = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    for file in names {
        if let Ok(meta) = fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                .map_err(Error::io("cannot set permissions of", &file))?;
            tracing::warn!(path = %file.display(), "narrowed a database file readable by others to 0600");
        }
    }
    Ok(())
}

/// Write a secret file atomically with mode 0600: temporary file, fsync,
/// rename, fsync of the directory. A crash leaves the old file or the new
/// one, never half of one.
///
/// # Errors
/// I/O errors with the path.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret")
    ));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(Error::io("cannot create", &tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(Error::io("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("cannot rename into place", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot sync directory", dir))?;
    Ok(())
}

/// Read a secret file, warning when others may read it.
///
/// # Errors
/// I/O errors with the path.
pub fn read_secret_file(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(Error::io("cannot read", path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "secret file is readable by group or others; run: chmod 600 {}",
            path.display()
        );
    }
    fs::read_to_string(path).map_err(Error::io("cannot read", path))
}

/// Load the signing key from `path`, creating it there when missing and
/// `create` is set.
///
/// # Errors
/// When the file is missing (and may not be created), unreadable, or not a
/// `k4.secret` PASERK.
pub fn load_or_create_signing_key(path: &Path, create: bool) -> Result<(SigningKey, bool)> {
    if path.exists() {
        let text = read_secret_file(path)?;
        let key = SigningKey::from_paserk(&text)
            .map_err(|e| Error::Config(format!("signing key file {}: {e}", path.display())))?;
        return Ok((key, false));
    }
    if !create {
        return Err(Error::Config(format!(
            "signing key file {} does not exist",
            path.display()
        )));
    }
    let key = SigningKey::generate(&mut rand::rng());
    write_secret_file(path, &key.to_paserk())?;
    Ok((key, true))
}

/// The retired keys kept next to a signing key file (`<file>.retired`): one
/// `k4.public.…@<RFC 3339>` line per key, oldest first. Public halves only.
#[must_use]
pub fn retired_keys_path(signing_key: &Path) -> PathBuf {
    let mut name = signing_key.file_name().unwrap_or_default().to_os_string();
    name.push(".retired");
    signing_key.with_file_name(name)
}

/// The retired keys of a signing key file (none when there is no list).
///
/// # Errors
/// An unreadable list, or a line that is not `k4.public.…@<time>`.
pub fn load_retired_keys(
    signing_key: &Path,
) -> Result<Vec<(tessera_protocol::PublicKey, Timestamp)>> {
    let path = retired_keys_path(signing_key);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot read", &path)(e)),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let bad = |why: String| Error::Config(format!("{}: {why}", path.display()));
            let (key, at) = line
                .split_once('@')
                .ok_or_else(|| bad(format!("expected k4.public.…@<time>, got {line:?}")))?;
            let key =
                tessera_protocol::PublicKey::from_paserk(key).map_err(|e| bad(e.to_string()))?;
            let at =
                tessera_protocol::human::parse_date_or_time(at).map_err(|e| bad(e.to_string()))?;
            Ok((key, at))
        })
        .collect()
}

/// Rotate the signing key in `path`: a new key becomes active and the old
/// one's public half is listed as retired at `now`. The list is written
/// before the key is replaced, so a crash in between leaves the old key
/// active (and a retired entry for it that the server ignores) — never a
/// lost key.
///
/// # Errors
/// When the key file is missing or unreadable, or a write fails.
pub fn rotate_signing_key(path: &Path, now: Timestamp) -> Result<(SigningKey, SigningKey)> {
    let (old, _) = load_or_create_signing_key(path, false)?;
    let new = SigningKey::generate(&mut rand::rng());
    let list = retired_keys_path(path);
    let mut text = match fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Retired signing keys (public halves): documents they signed after the time are refused.\n".to_owned()
        }
        Err(e) => return Err(Error::io("cannot read", &list)(e)),
    };
    text.push_str(&format!(
        "{}@{}\n",
        old.public_key().to_paserk(),
        tessera_protocol::time::format(&now)
    ));
    write_secret_file(&list, text.trim_end())?;
    write_secret_file(path, &new.to_paserk())?;
    Ok((old, new))
}
