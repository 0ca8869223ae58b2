//! Named channels: outputs and inputs of a process besides its standard streams (OneOS's
//! `process.output('video')`), given to the program as FIFOs.
//!
//! A graph's pipe may start at a named output (`{from:cam to:view out:video}`) and end at a
//! named input (`in:frames`). The program finds each as a path in its environment,
//! `PLX_OUT_VIDEO` and `PLX_IN_FRAMES` (the name upper-cased), and opens it as a file: it
//! writes an output and reads an input. The node opens the other end of each FIFO on a thread
//! of its own (opening a FIFO waits for the other side): an output is read in chunks of up to
//! 64 KiB into its pipe, waiting while the pipe is full, so a slow consumer holds the writer
//! back; an input is written from its pipe, and closed when the pipe ends (the program reads
//! end of file). A channel the program never opens is let go when the program ends.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Longest channel name.
pub const MAX_CHANNEL_NAME: usize = 32;

/// Whether `name` may name a channel: 1 to 32 lowercase ASCII letters, digits or `_`, not
/// one of the standard streams.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !matches!(name, "stdin" | "stdout" | "stderr")
}

/// The environment variable of a named output or input.
pub fn env_name(output: bool, name: &str) -> String {
    format!(
        "PLX_{}_{}",
        if output { "OUT" } else { "IN" },
        name.to_ascii_uppercase()
    )
}

/// The FIFOs of one run of a process, in a directory of their own.
pub struct Fifos {
    dir: PathBuf,
}

impl Fifos {
    /// Makes `dir` (mode 0700) with a FIFO (mode 0600) per output and input; gives the
    /// environment entries that name them.
    pub fn make(
        dir: &Path,
        outputs: &[String],
        inputs: &[String],
    ) -> std::io::Result<(Fifos, Vec<String>)> {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let fifos = Fifos {
            dir: dir.to_path_buf(),
        };
        let mut env = Vec::new();
        for (output, names) in [(true, outputs), (false, inputs)] {
            for name in names {
                let path = fifos.path(output, name);
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::Mode::from_raw_mode(0o600),
                )?;
                env.push(format!("{}={}", env_name(output, name), path.display()));
            }
        }
        Ok((fifos, env))
    }

    /// The FIFO of an output or input.
    pub fn path(&self, output: bool, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{name}", if output { "out" } else { "in" }))
    }

    /// Removes the FIFOs (once the process has ended and its channels are let go).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Lets go of a FIFO end a thread may still be waiting to open: opening the other end
/// without waiting lets that open return (and what it reads or writes then ends).
fn release(path: &Path, output: bool) {
    let flags = if output {
        rustix::fs::OFlags::WRONLY
    } else {
        rustix::fs::OFlags::RDONLY
    } | rustix::fs::OFlags::NONBLOCK
        | rustix::fs::OFlags::CLOEXEC;
    let _ = rustix::fs::open(path, flags, rustix::fs::Mode::empty());
}

/// Reads a named output into chunks, waiting while the receiver's queue is full. `ended`
/// resolves when the program has ended: a FIFO it never opened is let go then.
pub fn read_output(
    path: PathBuf,
    ended: impl std::future::Future<Output = ()> + Send + 'static,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    let (opened_tx, opened_rx) = oneshot::channel::<()>();
    let reader_path = path.clone();
    std::thread::spawn(move || {
        let opened = std::fs::File::open(&reader_path);
        drop(opened_tx);
        let Ok(mut fifo) = opened else {
            return;
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match fifo.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        // The pipe is gone: the writer gets EPIPE at its next write.
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(let_go(path, true, opened_rx, ended, Arc::default()));
    rx
}

/// Once the program has ended, lets go of the node's end of a FIFO whose open still waits:
/// tried again until the waiting open has returned (the thread may not have begun to wait
/// when the program ended). `released` is set first: an open that returns after it was let
/// go, not opened by the program.
async fn let_go(
    path: PathBuf,
    output: bool,
    mut opened: oneshot::Receiver<()>,
    ended: impl std::future::Future<Output = ()>,
    released: Arc<AtomicBool>,
) {
    tokio::select! {
        _ = &mut opened => return,
        () = ended => {}
    }
    released.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        release(&path, output);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut opened);
        if waited.await.is_ok() {
            return;
        }
    }
}

/// One write to a named input, and where to say how it went.
pub type InputWrite = (Bytes, oneshot::Sender<Result<(), String>>);

/// Writes a named input from what comes on the returned sender; dropping the sender closes
/// the input (the program reads end of file). `ended` resolves when the program has ended: a
/// FIFO it never opened is let go then.
pub fn write_input(
    path: PathBuf,
    ended: impl std::future::Future<Output = ()> + Send + 'static,
) -> mpsc::Sender<InputWrite> {
    let (tx, mut rx) = mpsc::channel::<InputWrite>(1);
    let (opened_tx, opened_rx) = oneshot::channel::<()>();
    let writer_path = path.clone();
    let released = Arc::new(AtomicBool::new(false));
    let let_go_of = released.clone();
    std::thread::spawn(move || {
        let opened = std::fs::OpenOptions::new().write(true).open(&writer_path);
        drop(opened_tx);
        // Opened by the node letting go (its reader may still be open for a moment): the
        // program ended without reading, and nothing written now would be read.
        let opened = match opened {
            Ok(_) if released.load(Ordering::SeqCst) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the program ended without opening its input",
            )),
            other => other,
        };
        let mut fifo = match opened {
            Ok(f) => f,
            Err(e) => {
                while let Some((_, reply)) = rx.blocking_recv() {
                    let _ = reply.send(Err(e.to_string()));
                }
                return;
            }
        };
        while let Some((bytes, reply)) = rx.blocking_recv() {
            let written = fifo.write_all(&bytes).map_err(|e| e.to_string());
            let failed = written.is_err();
            let _ = reply.send(written);
            if failed {
                return;
            }
        }
    });
    tokio::spawn(let_go(path, false, opened_rx, ended, let_go_of));
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(valid_channel("video"));
        assert!(valid_channel("frames_2"));
        for bad in ["", "Video", "a-b", "stdout", "stdin", &"x".repeat(33)] {
            assert!(!valid_channel(bad), "{bad}");
        }
        assert_eq!(env_name(true, "video"), "PLX_OUT_VIDEO");
        assert_eq!(env_name(false, "frames"), "PLX_IN_FRAMES");
    }

    #[tokio::test]
    async fn an_output_is_read_and_an_input_written_through_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let (fifos, env) = Fifos::make(
            &dir.path().join("run"),
            &["video".to_owned()],
            &["frames".to_owned()],
        )
        .unwrap();
        assert_eq!(env.len(), 2);
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let ended = async move {
            let _ = ended_rx.await;
        };
        let mut video = read_output(fifos.path(true, "video"), ended);
        let frames = write_input(fifos.path(false, "frames"), std::future::pending());
        // The "program": copies its input channel to its output channel.
        let (out, inp) = (fifos.path(true, "video"), fifos.path(false, "frames"));
        let program = std::thread::spawn(move || {
            let mut input = std::fs::File::open(inp).unwrap();
            let mut output = std::fs::OpenOptions::new().write(true).open(out).unwrap();
            std::io::copy(&mut input, &mut output).unwrap();
        });
        let (reply, written) = oneshot::channel();
        frames
            .send((Bytes::from_static(b"frame 1\n"), reply))
            .await
            .unwrap();
        written.await.unwrap().unwrap();
        drop(frames);
        let mut got = Vec::new();
        while let Some(chunk) = video.recv().await {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"frame 1\n");
        program.join().unwrap();
        drop(ended_tx);
        fifos.remove();
        assert!(!dir.path().join("run").exists());
    }

    #[tokio::test]
    async fn a_channel_never_opened_is_let_go_when_the_program_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (fifos, _) = Fifos::make(
            &dir.path().join("run"),
            &["video".to_owned()],
            &["frames".to_owned()],
        )
        .unwrap();
        let (ended_tx, ended_rx) = tokio::sync::watch::channel(false);
        let ended = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|e| *e).await;
        };
        let mut video = read_output(fifos.path(true, "video"), ended(ended_rx.clone()));
        let frames = write_input(fifos.path(false, "frames"), ended(ended_rx));
        ended_tx.send_replace(true);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), video.recv()).await;
        assert_eq!(got.unwrap(), None, "the output ends");
        let (reply, written) = oneshot::channel();
        let _ = frames.send((Bytes::from_static(b"x"), reply)).await;
        let written = tokio::time::timeout(std::time::Duration::from_secs(10), written).await;
        assert!(
            matches!(written, Ok(Ok(Err(_))) | Ok(Err(_))),
            "writing the input fails: {written:?}"
        );
    }
}
