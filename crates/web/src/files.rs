//! The files page's side on the node: the cluster's file tree through `io.fs`, as the
//! session's user. Reads stream a piece at a time; an upload is held whole (at most
//! [`UPLOAD_MOST`]) and then written as `plx fs put` writes, chunked, visible whole at the end.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use plexus_client::files::{self, KernelLink};
use plexus_identity::PublicKey;
use plexus_kernel::Kernel;
use plexus_units::{Map, Unit};

use crate::Error;

/// The largest upload the desktop takes (it holds it in memory while it writes it).
pub(crate) const UPLOAD_MOST: usize = 64 << 20;

fn map_of<const N: usize>(entries: [(&str, Unit); N]) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

fn int(n: u64) -> Unit {
    Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn count(u: &Unit, key: &str) -> Option<u64> {
    u.as_map()?
        .get_str(key)?
        .as_int()?
        .to_i64()
        .and_then(|n| u64::try_from(n).ok())
}

/// What a browser may show of a file in place, by its name: text and pictures, nothing a
/// browser would run (no HTML, no SVG).
fn shown_as(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "text/plain; charset=utf-8",
    }
}

/// The file's name for a download, without what would break the header.
fn download_name(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("file");
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    if clean.is_empty() {
        "file".into()
    } else {
        clean
    }
}

/// How long one call to `io.fs` (a stat, a listing, a read of 1 MiB) may take.
const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A failed transfer as the desktop's error, with `io.fs`'s code when it refused.
fn transfer_error(e: files::TransferError) -> Error {
    match e {
        files::TransferError::Refused { code, message } => Error::Cluster {
            code: Some(code),
            message,
        },
        other => Error::cluster(other.to_string()),
    }
}

/// One call to `io.fs` as `user`.
async fn call(kernel: &Kernel, user: PublicKey, body: Unit) -> Result<Unit, Error> {
    let mut link = KernelLink::new(kernel.context(user, [0; 32], None, 0));
    match tokio::time::timeout(CALL_DEADLINE, files::call(&mut link, body)).await {
        Err(_) => Err(Error::Timeout),
        Ok(answer) => answer.map_err(transfer_error),
    }
}

/// The file at `path` as a response streamed a piece at a time, each read at the version
/// first seen (a file replaced meanwhile ends the download with an error, never a mix).
/// `view` shows it in the browser if it is text or a picture; else it is a download.
pub(crate) async fn read(
    kernel: Kernel,
    user: PublicKey,
    path: String,
    view: bool,
) -> Result<Response, Error> {
    let stat = call(&kernel, user, map_of([("stat", Unit::str(&path))])).await?;
    let (Some(size), Some(version)) = (count(&stat, "size"), count(&stat, "version")) else {
        return Err(Error::cluster(format!("{path} is not a file")));
    };
    let disposition = if view {
        "inline".to_owned()
    } else {
        format!("attachment; filename=\"{}\"", download_name(&path))
    };
    let mime = if view {
        shown_as(&path)
    } else {
        "application/octet-stream"
    };
    let pieces = futures::stream::unfold(Some(0u64), move |at| {
        let (kernel, path) = (kernel.clone(), path.clone());
        async move {
            let at = at.filter(|at| *at < size)?;
            let len = (size - at).min(files::READ_BYTES);
            let body = map_of([
                ("read", Unit::str(&path)),
                ("offset", int(at)),
                ("len", int(len)),
                ("version", int(version)),
            ]);
            match call(&kernel, user, body).await {
                Ok(Unit::Bytes(b)) if !b.is_empty() => {
                    let next = at + b.len() as u64;
                    Some((Ok::<Bytes, std::io::Error>(b), Some(next)))
                }
                Ok(_) => Some((Err(std::io::Error::other("the file ended early")), None)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(pieces),
    )
        .into_response())
}

/// Writes `data` to the file `path` (mode 644 if new) as `user`: `{path size chunks}`.
pub(crate) async fn write(
    kernel: &Kernel,
    user: PublicKey,
    path: &str,
    data: Bytes,
) -> Result<Unit, Error> {
    // `put` reports progress through a `&mut dyn FnMut`, which a task cannot carry across
    // threads: it runs on a blocking thread of its own, waiting on the node's runtime.
    let (kernel, path) = (kernel.clone(), path.to_owned());
    let rt = tokio::runtime::Handle::current();
    let written = tokio::task::spawn_blocking(move || {
        rt.block_on(async {
            let mut link = KernelLink::new(kernel.context(user, [0; 32], None, 0));
            let mut input = &data[..];
            files::put(&mut link, &mut input, &path, "644", &mut |_| {}).await
        })
    })
    .await
    .map_err(|e| Error::cluster(format!("the upload stopped: {e}")))?;
    written.map_err(transfer_error)
}

/// The entry at `path` and, for a directory, what it holds: `{stat entries}`.
pub(crate) async fn list(kernel: &Kernel, user: PublicKey, path: &str) -> Result<Unit, Error> {
    let stat = call(kernel, user, map_of([("stat", Unit::str(path))])).await?;
    let is_dir = stat
        .as_map()
        .and_then(|m| m.get_str("kind"))
        .and_then(Unit::as_str)
        == Some("dir");
    let entries = if is_dir {
        call(kernel, user, map_of([("ls", Unit::str(path))])).await?
    } else {
        Unit::List(Vec::new())
    };
    Ok(map_of([("stat", stat), ("entries", entries)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_shown_only_as_text_or_pictures() {
        assert_eq!(shown_as("/a/b.PNG"), "image/png");
        for risky in ["/x.html", "/x.svg", "/x.js", "/x"] {
            assert_eq!(shown_as(risky), "text/plain; charset=utf-8");
        }
        assert_eq!(download_name("/a/b \"c\".txt"), "b c.txt");
        assert_eq!(download_name("/"), "file");
    }
}
