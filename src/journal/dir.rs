//! The state folder (`.ion-plan/` beside the plan): checked before anything in it is read or
//! written, and its files opened without following symbolic links.
//!
//! The folder may come from somewhere nobody checked (a CI job restores it from a git branch,
//! which can hold symlinks), so: a symlink in the folder's place or in a file's place is an error
//! naming it; a folder owned by another user, or writable by group or others, is refused (another
//! user could replace the inbox and approve a stage in someone else's name). A folder this
//! process creates is 0700 and its files 0600. See `docs/state.md`.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Why the state folder cannot be used: a message naming the path and what to do.
fn refused(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("refusing the state folder `{}`: {why}", path.display()),
    )
}

/// Checks the state folder, creating it (0700, with its parents) if it does not exist.
pub fn ensure(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => check(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            match builder.create(dir) {
                Ok(()) => {}
                // Another process made it meanwhile: check it like any existing folder.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            check(dir)
        }
        Err(e) => Err(e),
    }
}

/// Checks an existing state folder: a real folder (not a symlink), ours, writable only by us.
pub fn check(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(refused(
            dir,
            "it is a symbolic link; state folders are never followed (make it a real folder)",
        ));
    }
    if !meta.is_dir() {
        return Err(refused(dir, "it is not a folder"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(refused(
                dir,
                &format!(
                    "it is owned by uid {}, not by this user (uid {me}); another user's journal and inbox are not taken",
                    meta.uid()
                ),
            ));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(refused(
                dir,
                &format!(
                    "it is writable by group or others (mode {mode:o}), so others could plant requests in it; `chmod 700 {}`",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Makes `options` create files readable by their owner only, and never follow a symlink.
pub fn private(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    no_follow(options);
}

/// Makes `options` fail on a symlink in the file's place, and never block on a FIFO planted
/// there (which is then refused as not a regular file).
pub fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
    }
}

/// Opens a state file with `options`; a symlink, a FIFO, a folder or anything else that is not
/// a regular file in its place is an error that names it.
pub fn open(options: &OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = open_any(options, path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "`{}` is not a regular file; files in the state folder are never anything else (remove it)",
                path.display()
            ),
        ));
    }
    Ok(file)
}

fn open_any(options: &OpenOptions, path: &Path) -> std::io::Result<File> {
    options.open(path).map_err(|e| {
        let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if symlink {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "`{}` is a symbolic link; files in the state folder are never followed (remove it)",
                    path.display()
                ),
            )
        } else {
            e
        }
    })
}

/// Opens a state file to read it, without following a symlink.
pub fn open_read(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    open(&options, path)
}

/// A plan's text from an open file, at most [`MAX_PLAN_BYTES`](crate::plan::load::MAX_PLAN_BYTES)
/// of it; `None` if it cannot be read as UTF-8. For the plan copies kept beside journals and the
/// `name:` a plan is keyed by, where a missing text has a fallback rather than an error.
pub fn read_plan_text(file: File) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    file.take(crate::plan::load::MAX_PLAN_BYTES)
        .read_to_string(&mut text)
        .ok()
        .map(|_| text)
}

/// The plan copy kept beside a journal (`RUN.plan.yaml`), read without following a symlink.
pub fn read_snapshot(journal: &Path) -> Option<String> {
    open_read(&journal.with_extension("plan.yaml"))
        .ok()
        .and_then(read_plan_text)
}

/// The identity of a file (device and inode): whether a path still names the file we hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    pub fn of_file(file: &File) -> std::io::Result<Identity> {
        Ok(Identity::from_meta(&file.metadata()?))
    }

    /// The identity of what `path` names now, without following a symlink; `None` if nothing.
    pub fn at(path: &Path) -> Option<Identity> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| Identity::from_meta(&m))
    }

    #[cfg(unix)]
    fn from_meta(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn from_meta(_meta: &std::fs::Metadata) -> Identity {
        Identity { dev: 0, ino: 0 }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_folder_is_private_and_passes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/.ion-plan");
        ensure(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&dir).unwrap();
    }

    #[test]
    fn symlinked_or_shared_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join(".ion-plan");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let error = ensure(&link).unwrap_err().to_string();
        assert!(
            error.contains("symbolic link") && error.contains(".ion-plan"),
            "{error}"
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = check(&real).unwrap_err().to_string();
        assert!(error.contains("writable by group or others"), "{error}");
        // A folder as git checks it out (0755) is fine.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        check(&real).unwrap();
    }

    #[test]
    fn a_symlinked_file_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, "precious").unwrap();
        let link = tmp.path().join("plan.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(false);
        private(&mut options);
        let error = open(&options, &link).unwrap_err().to_string();
        assert!(
            error.contains("symbolic link") && error.contains("plan.lock"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }
}
