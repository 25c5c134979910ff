//! Processes sharing one SQLite file tell each other what they committed:
//! SQLite has no NOTIFY. Every process that shows live views binds a Unix
//! datagram socket in a directory beside the database (`<file>.peers/`); a
//! process that commits changes sends them, in the NOTIFY wire format, to
//! every other socket there. A socket left behind by a process that died
//! refuses datagrams, and the next sender removes it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::UnixDatagram;

/// How long a send waits for a peer whose queue is full (it is not reading).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Larger than any payload: `wire::encode` keeps them under 8,000 bytes.
const MAX_DATAGRAM: usize = 64 * 1024;

/// The processes on one database file.
pub struct Peers {
    dir: PathBuf,
    /// This process's socket, once it listens: its own changes reach its
    /// views directly, not through the socket.
    own: OnceLock<PathBuf>,
}

impl Peers {
    pub fn of(database: &Path) -> Self {
        let mut dir = database.as_os_str().to_owned();
        dir.push(".peers");
        Self {
            dir: dir.into(),
            own: OnceLock::new(),
        }
    }

    /// Binds this process's socket; other processes' changes arrive on it.
    pub fn listen(&self) -> io::Result<Listener> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!(
            "{}-{}.sock",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let socket = UnixDatagram::bind(&path)?;
        let _ = self.own.set(path.clone());
        Ok(Listener { socket, path })
    }

    /// Sends one payload to every listening process but this one.
    pub async fn send(&self, from: &UnixDatagram, payload: &[u8]) {
        // No directory: no process has listened yet.
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for path in entries.filter_map(|entry| Some(entry.ok()?.path())) {
            if path.extension().is_none_or(|ext| ext != "sock") || self.own.get() == Some(&path) {
                continue;
            }
            match tokio::time::timeout(SEND_TIMEOUT, from.send_to(payload, &path)).await {
                Ok(Ok(_)) => {}
                // Its process is gone.
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                    ) =>
                {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, peer = %path.display(), "cannot send changes to a process on this database")
                }
                Err(_) => {
                    tracing::warn!(peer = %path.display(), "a process on this database took no changes for 1 s; its views miss these")
                }
            }
        }
    }
}

/// This process's socket; removed when dropped.
pub struct Listener {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Listener {
    /// The next payload another process sent.
    pub async fn recv(&self) -> io::Result<String> {
        let mut buffer = vec![0; MAX_DATAGRAM];
        let length = self.socket.recv(&mut buffer).await?;
        buffer.truncate(length);
        String::from_utf8(buffer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_reach_every_other_process_and_dead_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("opshub.db");
        let (here, there) = (Peers::of(&database), Peers::of(&database));
        let own = here.listen().unwrap();
        let other = there.listen().unwrap();
        // A process killed with SIGKILL leaves its socket file behind.
        std::fs::create_dir_all(dir.path().join("opshub.db.peers")).unwrap();
        let dead = dir.path().join("opshub.db.peers/1-dead.sock");
        drop(std::os::unix::net::UnixDatagram::bind(&dead).unwrap());

        let sender = UnixDatagram::unbound().unwrap();
        here.send(&sender, b"r-one").await;
        here.send(&sender, b"r-two").await;
        assert_eq!(other.recv().await.unwrap(), "r-one");
        assert_eq!(other.recv().await.unwrap(), "r-two");
        assert!(!dead.exists(), "a socket nobody reads is removed");

        // Datagrams keep their order: had `here` heard itself, this would
        // not be the first it receives.
        there.send(&sender, b"r-three").await;
        assert_eq!(own.recv().await.unwrap(), "r-three");

        let other_path = other.path.clone();
        drop(other);
        assert!(!other_path.exists(), "a listener removes its socket");
    }
}
