//! `io.fs` on a single node: the tree's commands, files written and read whole or in part,
//! owners and modes, bad input, and a corrupt chunk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{Error, Kernel, Policy};
use plexus_services::directory::SingleNode;
use plexus_services::io_fs::{FsTuning, IoFs};
use plexus_services::testing::{bare_kernel, eval_text};
use plexus_store::chunks::ChunkStore;
use plexus_units::{to_text, Unit};

struct Node {
    kernel: Kernel,
    admin: Keypair,
    bob: Keypair,
    dir: tempfile::TempDir,
}

fn node() -> Node {
    node_with(None)
}

/// A node; with `tuning`, its background duties run with it.
fn node_with(tuning: Option<FsTuning>) -> Node {
    node_keeping_free(tuning, None)
}

/// A node whose chunk store keeps `reserve` bytes free on its disk (the file system's
/// reserve by default).
fn node_keeping_free(tuning: Option<FsTuning>, reserve: Option<u64>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, admin) = bare_kernel();
    let db = plexus_services::open_db(&dir.path().join("node.redb")).unwrap();
    let mut chunks = ChunkStore::open(dir.path().join("chunks")).unwrap();
    if let Some(reserve) = reserve {
        chunks = chunks.with_reserve(reserve);
    }
    let service = IoFs::new(
        db,
        chunks,
        SingleNode::shared(&kernel.node().name, Default::default()),
        tuning.unwrap_or_default(),
    );
    if tuning.is_some() {
        service.start(kernel.clone());
    }
    kernel.register(service, None, Policy::Registered).unwrap();
    let bob = Keypair::generate(KeyKind::User, "bob", &mut rand::rngs::OsRng).unwrap();
    kernel.register_user(bob.public(), "bob").unwrap();
    Node {
        kernel,
        admin,
        bob,
        dir,
    }
}

impl Node {
    async fn as_user(&self, user: &Keypair, text: &str) -> Result<Unit, Error> {
        eval_text(&self.kernel, user, None, text)
            .await
            .map(|v| v.unwrap_or(Unit::None))
    }

    async fn admin(&self, text: &str) -> Result<Unit, Error> {
        let admin = &self.admin;
        self.as_user(admin, text).await
    }
}

fn bytes(u: Unit) -> Vec<u8> {
    match u {
        Unit::Bytes(b) => b.to_vec(),
        other => panic!("not bytes: {}", to_text(&other)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_written_listed_read_moved_and_removed() {
    let n = node();
    n.admin("{mkdir:`/data`}@io.fs").await.unwrap();
    // Over 4 MiB: more than one chunk.
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let wrote = n
        .admin(&format!("{{write:`/data/big` data:x\"{hex}\"}}@io.fs"))
        .await
        .unwrap();
    let text = to_text(&wrote);
    assert!(text.contains("size:5000000"), "{text}");
    assert_eq!(
        bytes(n.admin("{read:`/data/big`}@io.fs").await.unwrap()),
        data
    );
    let part = n
        .admin("{read:`/data/big` offset:4194300 len:10}@io.fs")
        .await
        .unwrap();
    assert_eq!(bytes(part), data[4_194_300..4_194_310]);
    let listed = to_text(&n.admin("{ls:`/data`}@io.fs").await.unwrap());
    assert!(
        listed.contains("name:big kind:file size:5000000 mode:-rw-r--r--"),
        "{listed}"
    );
    n.admin("{mv:`/data/big` to:`/data/moved`}@io.fs")
        .await
        .unwrap();
    let stat = to_text(&n.admin("{stat:`/data/moved`}@io.fs").await.unwrap());
    assert!(
        stat.contains("chunks:") && !stat.contains("chunks:1 "),
        "{stat}"
    );
    n.admin("{rm:`/data/moved`}@io.fs").await.unwrap();
    n.admin("{rm:`/data`}@io.fs").await.unwrap();
    let left = to_text(&n.admin("ls@io.fs").await.unwrap());
    assert!(!left.contains("name:data"), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_files_are_refused_and_bad_input_changes_nothing() {
    let n = node();
    n.admin("{mkdir:`/private` mode:`700`}@io.fs")
        .await
        .unwrap();
    n.admin("{write:`/private/secret` data:`s3cret` mode:`600`}@io.fs")
        .await
        .unwrap();
    let bob = &n.bob;
    for msg in [
        "{read:`/private/secret`}@io.fs",
        "{ls:`/private`}@io.fs",
        "{write:`/private/mine` data:`x`}@io.fs",
        "{mkdir:`/bobs`}@io.fs",
        "{chmod:`/private` mode:`777`}@io.fs",
    ] {
        let e = n.as_user(bob, msg).await.unwrap_err();
        assert_eq!(e.code(), "denied", "{msg}: {e}");
    }
    let long = "x".repeat(256);
    for (msg, code) in [
        ("{mkdir:`/../etc`}@io.fs".to_owned(), "arg.bad"),
        (format!("{{mkdir:`/{long}`}}@io.fs"), "arg.bad"),
        ("{mkdir:`relative`}@io.fs".to_owned(), "arg.bad"),
        (
            "{write:`/private/secret/under` data:`x`}@io.fs".to_owned(),
            "fs.not.dir",
        ),
        ("{write:`/private` data:`x`}@io.fs".to_owned(), "fs.is.dir"),
        ("{rm:`/private`}@io.fs".to_owned(), "fs.not.empty"),
        ("{read:`/none`}@io.fs".to_owned(), "not.found"),
        ("{mkdir:`/m` mode:`999`}@io.fs".to_owned(), "arg.bad"),
        ("{chunk:`zz` len:1}@io.fs".to_owned(), "arg.bad"),
    ] {
        let e = n.admin(&msg).await.unwrap_err();
        assert_eq!(e.code(), code, "{msg}: {e}");
    }
    // The users' calls made their homes; nothing else changed.
    let listed = to_text(&n.admin("ls@io.fs").await.unwrap());
    assert_eq!(listed.matches("name:").count(), 2, "{listed}");
    assert!(
        listed.contains("name:home") && listed.contains("name:private"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_a_home_directory() {
    let n = node();
    let bob = &n.bob;
    n.as_user(bob, "{write:`/home/bob/notes` data:`mine`}@io.fs")
        .await
        .unwrap();
    let home = to_text(&n.admin("{stat:`/home/bob`}@io.fs").await.unwrap());
    assert!(
        home.contains("user:bob") && home.contains("mode:drwxr-xr-x"),
        "{home}"
    );
    let homes = to_text(&n.admin("{ls:`/home`}@io.fs").await.unwrap());
    assert!(homes.contains("name:bob"), "{homes}");
    // Others may look, not write.
    let eve = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    n.kernel.register_user(eve.public(), "eve").unwrap();
    assert_eq!(
        bytes(
            n.as_user(&eve, "{read:`/home/bob/notes`}@io.fs")
                .await
                .unwrap()
        ),
        b"mine"
    );
    let e = n
        .as_user(&eve, "{write:`/home/bob/notes` data:`hers`}@io.fs")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "denied");
    n.as_user(&eve, "{mkdir:`/home/eve/docs`}@io.fs")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_chunk_with_no_good_copy_is_an_error_not_bad_data() {
    let n = node();
    // Over 4 KiB, so it is kept in a chunk, not inline.
    let precious = "precious bytes ".repeat(400);
    let write = format!("{{write:`/f` data:`{precious}`}}@io.fs");
    n.admin(&write).await.unwrap();
    let chunks = n.dir.path().join("chunks");
    let file = std::fs::read_dir(&chunks)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .next()
        .unwrap()
        .path();
    std::fs::write(&file, precious.replace("bytes", "bytez")).unwrap();
    let e = n.admin("{read:`/f`}@io.fs").await.unwrap_err();
    assert_eq!(e.code(), "fs.unavailable", "{e}");
    assert!(chunks.join("corrupt").read_dir().unwrap().next().is_some());
    // Writing the same content again brings the chunk back.
    n.admin(&write).await.unwrap();
    assert_eq!(
        bytes(n.admin("{read:`/f`}@io.fs").await.unwrap()),
        precious.as_bytes()
    );
}

/// On a node whose disk has no room left (its store keeps more free than any disk has), a
/// file small enough to be inline is still written, and a larger one is refused whole with
/// the reason: the old content stays and no chunk is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_full_disk_fails_whole_and_says_why() {
    let n = node_keeping_free(None, Some(u64::MAX / 2));
    n.admin("{write:`/f` data:`old`}@io.fs").await.unwrap();
    let hex = "ab".repeat(100_000);
    for msg in [
        format!("{{write:`/f` data:x\"{hex}\"}}@io.fs"),
        format!("{{stage:x\"{hex}\"}}@io.fs"),
    ] {
        let e = n.admin(&msg).await.unwrap_err();
        assert_eq!(e.code(), "fs.unavailable", "{e}");
        assert!(e.message().contains("no room for a chunk"), "{e}");
    }
    assert_eq!(bytes(n.admin("{read:`/f`}@io.fs").await.unwrap()), b"old");
    assert_eq!(chunk_files(&n), 0);
}

/// The chunk files in a node's store.
fn chunk_files(n: &Node) -> usize {
    std::fs::read_dir(n.dir.path().join("chunks"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_no_file_names_are_swept_and_status_counts_copies() {
    let n = node_with(Some(FsTuning {
        sweep_every: std::time::Duration::from_millis(50),
        unlisted_age: std::time::Duration::ZERO,
        ..FsTuning::default()
    }));
    // Over 4 KiB each, so kept in chunks.
    let kept = "kept bytes ".repeat(500);
    let gone = "gone bytes ".repeat(500);
    n.admin(&format!("{{write:`/kept` data:`{kept}`}}@io.fs"))
        .await
        .unwrap();
    n.admin(&format!("{{write:`/gone` data:`{gone}`}}@io.fs"))
        .await
        .unwrap();
    // A chunk staged by a write that never committed.
    n.admin("{stage:x\"00112233\"}@io.fs").await.unwrap();
    assert_eq!(chunk_files(&n), 3);
    let status = to_text(&n.admin("status@io.fs").await.unwrap());
    for part in ["replicas:1", "chunks:2", "ok:2", "short:0", "lost:0"] {
        assert!(status.contains(part), "{part} in {status}");
    }
    let listed = to_text(&n.admin("{ls:`/` copies:t}@io.fs").await.unwrap());
    assert!(listed.contains("copies:1"), "{listed}");
    n.admin("{rm:`/gone`}@io.fs").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while chunk_files(&n) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} chunk files",
            chunk_files(&n)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        bytes(n.admin("{read:`/kept`}@io.fs").await.unwrap()),
        kept.as_bytes()
    );
    let status = to_text(&n.admin("status@io.fs").await.unwrap());
    assert!(status.contains("chunks:1"), "{status}");
    assert!(status.contains("swept:2"), "{status}");
    // Scrub reads what this node keeps; only an admin may ask.
    let scrubbed = to_text(&n.admin("scrub@io.fs").await.unwrap());
    assert!(
        scrubbed.contains("checked:1") && scrubbed.contains("bad:0"),
        "{scrubbed}"
    );
    let e = n.as_user(&n.bob, "scrub@io.fs").await.unwrap_err();
    assert_eq!(e.code(), "denied", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_a_replaced_version_is_refused() {
    let n = node();
    n.admin("{write:`/v` data:`one`}@io.fs").await.unwrap();
    let stat = to_text(&n.admin("{stat:`/v`}@io.fs").await.unwrap());
    let version: u64 = stat
        .split("version:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let read = format!("{{read:`/v` version:{version}}}@io.fs");
    assert_eq!(bytes(n.admin(&read).await.unwrap()), b"one");
    n.admin("{write:`/v` data:`two`}@io.fs").await.unwrap();
    let e = n.admin(&read).await.unwrap_err();
    assert_eq!(e.code(), "fs.changed", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_kept_inline_without_chunks() {
    let n = node();
    n.admin("{write:`/small` data:`tiny`}@io.fs").await.unwrap();
    let page = "x".repeat(4096);
    n.admin(&format!("{{write:`/page` data:`{page}`}}@io.fs"))
        .await
        .unwrap();
    assert_eq!(chunk_files(&n), 0, "inline files store no chunks");
    assert_eq!(
        bytes(n.admin("{read:`/small`}@io.fs").await.unwrap()),
        b"tiny"
    );
    assert_eq!(
        bytes(
            n.admin("{read:`/small` offset:1 len:2}@io.fs")
                .await
                .unwrap()
        ),
        b"in"
    );
    assert_eq!(
        bytes(
            n.admin("{read:`/small` offset:9 len:2}@io.fs")
                .await
                .unwrap()
        ),
        b""
    );
    let stat = to_text(&n.admin("{stat:`/page`}@io.fs").await.unwrap());
    assert!(
        stat.contains("size:4096") && stat.contains("chunks:0"),
        "{stat}"
    );
    assert_eq!(
        bytes(n.admin("{chunks:`/page`}@io.fs").await.unwrap()),
        b"",
        "no chunk list"
    );
    // A copy carries the data; replacing with a large file moves it to chunks, and back.
    n.admin("{cp:`/small` to:`/copy`}@io.fs").await.unwrap();
    assert_eq!(
        bytes(n.admin("{read:`/copy`}@io.fs").await.unwrap()),
        b"tiny"
    );
    let big = "y".repeat(5000);
    n.admin(&format!("{{write:`/copy` data:`{big}`}}@io.fs"))
        .await
        .unwrap();
    assert_eq!(chunk_files(&n), 1);
    assert_eq!(
        bytes(n.admin("{read:`/copy`}@io.fs").await.unwrap()),
        big.as_bytes()
    );
    n.admin("{write:`/copy` data:`short again`}@io.fs")
        .await
        .unwrap();
    assert_eq!(
        bytes(n.admin("{read:`/copy`}@io.fs").await.unwrap()),
        b"short again"
    );
    assert_eq!(
        bytes(n.admin("{read:`/small`}@io.fs").await.unwrap()),
        b"tiny"
    );
}
