//! End to end: `plx mount` of the file tree of a real 3-node cluster (`plx up --nodes 3`),
//! used by ordinary programs (cp, cat, ls, mv, mkdir, rm, truncate, chmod, Python) and checked
//! against `plx fs` on other nodes.
//!
//! Needs /dev/fuse and fusermount3 (`scripts/test` installs the fuse3 package): without them
//! the tests say so on standard error and stop early.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_up_port, noise, Plx};
use plexus_mount::mountinfo::{absolute, is_mount_point};

/// Why FUSE cannot be tested here, if it cannot.
fn no_fuse() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    if plexus_mount::find_in_path("fusermount3").is_none() {
        return Some("fusermount3 is missing (install the fuse3 package)".into());
    }
    None
}

macro_rules! need_fuse {
    ($test:expr) => {
        if let Some(why) = no_fuse() {
            eprintln!("SKIPPED {}: {why}", $test);
            return;
        }
    };
}

/// Stops the nodes of a home and unmounts its mounts even when a test fails half-way.
struct Cleanup<'a> {
    plx: &'a Plx,
    mounts: Vec<PathBuf>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for dir in &self.mounts {
            if is_mount_point(dir) {
                let _ = self.plx.run(&["umount", dir.to_str().unwrap()], b"");
            }
            if is_mount_point(dir) {
                let _ = Command::new("fusermount3")
                    .arg("-u")
                    .arg("-z")
                    .arg(dir)
                    .status();
            }
        }
        let _ = self.plx.run(&["down"], b"");
    }
}

/// Runs `program ARGS` (in `dir`), giving up after `secs`: a mount that hangs fails the test
/// instead of stopping it.
fn run_in(dir: &Path, program: &str, args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// [`run_in`] that must succeed; gives standard output.
#[track_caller]
fn ok_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = run_in(dir, program, args, 120);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes user `bob` and has the tester (the admin) register it; `tester` stays the current
/// user.
fn register_bob(plx: &Plx) {
    plx.run(&["user", "new", "bob"], b"").ok();
    plx.run(&["user", "use", "tester"], b"").ok();
    let who = plx.run(&["send", "--user", "bob", "who@sys.usr"], b"").ok();
    let key = who
        .split("pub:")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('}');
    plx.run(&["send", &format!("{{reg:bob pub:{key}}}@sys.usr")], b"")
        .ok();
}

/// Puts `/home/tester/secret.txt` (`tester's`), readable by the tester alone.
fn put_secret(plx: &Plx) {
    let secret = plx.home.path().join("secret.txt");
    std::fs::write(&secret, "tester's\n").unwrap();
    plx.run(
        &[
            "fs",
            "put",
            secret.to_str().unwrap(),
            "/home/tester/secret.txt",
            "--mode",
            "600",
        ],
        b"",
    )
    .ok();
}

/// The tree as programs see it through `plx mount`, checked against `plx fs` on the nodes.
#[test]
fn a_mounted_tree_works_for_ordinary_programs() {
    need_fuse!("a_mounted_tree_works_for_ordinary_programs");
    let plx = Plx::new();
    let home = plx.home.path().to_path_buf();
    let mnt = absolute(&home.join("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    let mut cleanup = Cleanup {
        plx: &plx,
        mounts: vec![mnt.clone()],
    };
    let port = free_up_port().to_string();
    plx.run(&["up", "--nodes", "3", "--detach", "--port", &port], b"")
        .ok();
    let n2 = home.join("cluster/n2/node.sock");
    let n3 = home.join("cluster/n3/node.sock");
    let (n2, n3) = (n2.to_str().unwrap(), n3.to_str().unwrap());
    let m = mnt.to_str().unwrap();

    let mounted = plx.run(&["mount", m], b"");
    mounted.ok();
    assert!(mounted.stderr.contains(m), "{}", mounted.stderr);
    assert!(is_mount_point(&mnt));
    let again = plx.run(&["mount", m], b"").fails();
    assert!(again.contains("already a mount point"), "{again}");

    // mkdir, then cp of a file of several chunks (10 MB > 4 MiB): got back byte for byte
    // from another node.
    ok_in(&mnt, "mkdir", &["data"]);
    let big = noise(10_000_000, 1);
    let local = home.join("big.bin");
    std::fs::write(&local, &big).unwrap();
    ok_in(
        &home,
        "cp",
        &[local.to_str().unwrap(), &format!("{m}/data/big.bin")],
    );
    let back = home.join("back.bin");
    plx.run(
        &[
            "fs",
            "get",
            "/data/big.bin",
            back.to_str().unwrap(),
            "--socket",
            n3,
        ],
        b"",
    )
    .ok();
    assert!(
        std::fs::read(&back).unwrap() == big,
        "cp in, fs get from n3"
    );
    // And read back through the mount.
    assert!(std::fs::read(mnt.join("data/big.bin")).unwrap() == big);

    // A file put with `plx fs put` on n2 reads through the mount.
    let text = home.join("notes.txt");
    std::fs::write(&text, "put on n2\n").unwrap();
    plx.run(
        &[
            "fs",
            "put",
            text.to_str().unwrap(),
            "/data/notes.txt",
            "--socket",
            n2,
        ],
        b"",
    )
    .ok();
    assert_eq!(ok_in(&mnt, "cat", &["data/notes.txt"]), "put on n2\n");

    // ls -l shows names, sizes and modes.
    let listed = ok_in(&mnt, "ls", &["-l", "data"]);
    let row = |name: &str| {
        listed
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no {name} in {listed}"))
            .to_owned()
    };
    assert!(row("big.bin").starts_with("-rw-r--r--"), "{listed}");
    assert!(row("big.bin").contains(" 10000000 "), "{listed}");
    assert!(row("notes.txt").contains(" 10 "), "{listed}");

    // mv, mkdir, rmdir, rm: seen by `plx fs ls` on n3.
    ok_in(&mnt, "mv", &["data/notes.txt", "data/moved.txt"]);
    ok_in(&mnt, "mkdir", &["data/sub"]);
    let fs_ls = |path: &str| plx.run(&["fs", "ls", path, "--socket", n3], b"").ok();
    let seen = fs_ls("/data");
    assert!(
        seen.contains("moved.txt") && !seen.contains("notes.txt"),
        "{seen}"
    );
    assert!(
        seen.contains("drwxr-xr-x") && seen.contains(" sub"),
        "{seen}"
    );
    let rmdir_file = run_in(&mnt, "rmdir", &["data/moved.txt"], 60);
    assert!(!rmdir_file.status.success());
    ok_in(&mnt, "rmdir", &["data/sub"]);
    ok_in(&mnt, "rm", &["data/moved.txt"]);
    let seen = fs_ls("/data");
    assert!(
        !seen.contains("moved.txt") && !seen.contains(" sub"),
        "{seen}"
    );
    assert!(!mnt.join("data/moved.txt").exists());

    // A Python program reads one file and writes another; n2 reads it.
    std::fs::write(mnt.join("data/in.txt"), "hello from python\n").unwrap();
    ok_in(
        &mnt,
        "python3",
        &[
            "-c",
            "data = open('data/in.txt').read()\n\
             with open('data/out.txt', 'w') as f:\n    f.write(data.upper())\n",
        ],
    );
    let cat = plx.run(&["fs", "cat", "/data/out.txt", "--socket", n2], b"");
    assert_eq!(cat.ok(), "HELLO FROM PYTHON\n");

    // truncate shorter, then longer (zeros); chmod.
    ok_in(&mnt, "truncate", &["-s", "5", "data/out.txt"]);
    let cat = plx.run(&["fs", "cat", "/data/out.txt", "--socket", n3], b"");
    assert_eq!(cat.ok(), "HELLO");
    ok_in(&mnt, "truncate", &["-s", "8", "data/out.txt"]);
    assert_eq!(
        std::fs::read(mnt.join("data/out.txt")).unwrap(),
        b"HELLO\0\0\0"
    );
    ok_in(&mnt, "chmod", &["600", "data/out.txt"]);
    let stat = plx
        .run(&["fs", "stat", "/data/out.txt", "--socket", n2], b"")
        .ok();
    assert!(stat.contains("-rw-------"), "{stat}");
    // Appending adds to what is there.
    ok_in(&mnt, "sh", &["-c", "printf more >> data/out.txt"]);
    assert_eq!(
        std::fs::read(mnt.join("data/out.txt")).unwrap(),
        b"HELLO\0\0\0more"
    );

    // statfs shows the room io.fs's status gives (asked after the first answer, which
    // shows a large default).
    let statvfs =
        "import os\ns = os.statvfs('.')\nprint(s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize)";
    let unknown = (16u64 << 40).to_string();
    wait_until("statfs to show the cluster's room", 30, || {
        let out = ok_in(&mnt, "python3", &["-c", statvfs]);
        let total = out.split_whitespace().next().unwrap_or_default().to_owned();
        total != unknown && total.parse::<u64>().unwrap_or(0) > 0
    });

    // Another user: the tester's private file is refused (EACCES), as is writing in the
    // tester's home; bob's own home is bob's. That mount serves in the foreground and stops
    // (unmounting) at SIGTERM.
    register_bob(&plx);
    put_secret(&plx);
    let bobs = absolute(&home.join("bobs"));
    std::fs::create_dir(&bobs).unwrap();
    cleanup.mounts.push(bobs.clone());
    let mut serving = plx
        .command(&[
            "mount",
            bobs.to_str().unwrap(),
            "--user",
            "bob",
            "--foreground",
        ])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("bob's mount", 30, || is_mount_point(&bobs));
    let probe = "import errno, sys\n\
                 for path, mode in [('home/tester/secret.txt', 'r'), ('home/tester/new.txt', 'w')]:\n\
                 \x20   try:\n\
                 \x20       open(path, mode).close()\n\
                 \x20       print(path, 'opened')\n\
                 \x20   except OSError as e:\n\
                 \x20       print(path, errno.errorcode[e.errno])\n\
                 open('home/bob/mine.txt', 'w').write('bob')\n\
                 print(open('home/bob/mine.txt').read())\n";
    let out = ok_in(&bobs, "python3", &["-c", probe]);
    assert!(out.contains("home/tester/secret.txt EACCES"), "{out}");
    assert!(out.contains("home/tester/new.txt EACCES"), "{out}");
    assert!(out.ends_with("bob\n"), "{out}");
    let chmod = run_in(&bobs, "chmod", &["644", "home/tester/secret.txt"], 60);
    assert!(
        !chmod.status.success(),
        "bob may not chmod the tester's file"
    );
    let pid = rustix::process::Pid::from_child(&serving);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    wait_until("the foreground mount to stop", 30, || {
        serving.try_wait().unwrap().is_some()
    });
    assert!(serving.wait().unwrap().success());
    assert!(!is_mount_point(&bobs), "SIGTERM unmounts");

    // When the nodes stop, calls fail (EIO) instead of hanging.
    plx.run(&["down"], b"").ok();
    let listed = run_in(&home, "ls", &[&format!("{m}/data")], 60);
    assert!(!listed.status.success(), "listing without a node");
    let err = String::from_utf8_lossy(&listed.stderr);
    assert!(err.contains("Input/output error"), "{err}");

    // plx umount unmounts; the background mount process ends.
    plx.run(&["umount", m], b"").ok();
    assert!(!is_mount_point(&mnt));
    let again = plx.run(&["umount", m], b"").fails();
    assert!(again.contains("not mounted"), "{again}");
    drop(cleanup);
}

/// `plx mount` refuses, with one clear line, a directory that is missing, not empty or not a
/// directory, and a node that is not running.
#[test]
fn mount_refuses_what_it_cannot_mount_on() {
    need_fuse!("mount_refuses_what_it_cannot_mount_on");
    let plx = Plx::new();
    let home = plx.home.path();
    let missing = home.join("nope");
    let err = plx.run(&["mount", missing.to_str().unwrap()], b"").fails();
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let full = home.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let err = plx.run(&["mount", full.to_str().unwrap()], b"").fails();
    assert!(err.contains("not empty"), "{err}");

    let file = home.join("file");
    std::fs::write(&file, "x").unwrap();
    let err = plx.run(&["mount", file.to_str().unwrap()], b"").fails();
    assert!(err.contains("not a directory"), "{err}");

    let empty = home.join("empty");
    std::fs::create_dir(&empty).unwrap();
    plx.run(&["user", "new", "tester"], b"").ok();
    let err = plx.run(&["mount", empty.to_str().unwrap()], b"").fails();
    assert!(err.contains("no node is running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!is_mount_point(&absolute(&empty)));
}

/// A program run on another node names cluster paths (`/fs/…`) as its program, arguments and
/// working directory, as its user sees the tree; another user's program gets no more than
/// that user may, and processes the node does not run get nothing.
#[test]
fn programs_run_on_any_node_use_cluster_paths() {
    need_fuse!("programs_run_on_any_node_use_cluster_paths");
    let plx = Plx::new();
    let home = plx.home.path().to_path_buf();
    let cleanup = Cleanup {
        plx: &plx,
        mounts: Vec::new(),
    };
    let port = free_up_port().to_string();
    plx.run(&["up", "--nodes", "2", "--detach", "--port", &port], b"")
        .ok();
    let put = |local: &str, text: &str, path: &str| {
        let file = home.join(local);
        std::fs::write(&file, text).unwrap();
        plx.run(&["fs", "put", file.to_str().unwrap(), path], b"")
            .ok();
    };
    for dir in ["/data", "/code"] {
        plx.run(&["fs", "mkdir", dir], b"").ok();
    }
    put("in.txt", "one\ntwo\nthree\n", "/data/in.txt");
    put(
        "count.py",
        "import os, sys\n\
         lines = open(sys.argv[1]).read().splitlines()\n\
         open('count.txt', 'w').write(str(len(lines)))\n\
         print('lines', len(lines), os.getcwd() == os.environ['PLX_FS'] + '/home/tester')\n",
        "/code/count.py",
    );

    // On n2: the program, its argument and its working directory are cluster paths; what it
    // writes is in the tree for every node.
    let out = plx
        .run(
            &[
                "run",
                "--on",
                "n2",
                "--cwd",
                "/fs/home/tester",
                "--",
                "python3",
                "/fs/code/count.py",
                "/fs/data/in.txt",
            ],
            b"",
        )
        .ok();
    assert_eq!(out, "lines 3 True\n");
    assert_eq!(
        plx.run(&["fs", "cat", "/home/tester/count.txt"], b"").ok(),
        "3"
    );
    // A script named as the program runs with its interpreter, here on n1.
    let out = plx
        .run(
            &[
                "run",
                "--on",
                "n1",
                "--cwd",
                "/fs/home/tester",
                "--",
                "/fs/code/count.py",
                "/fs/data/in.txt",
            ],
            b"",
        )
        .ok();
    assert_eq!(out, "lines 3 True\n");

    // In the λ shell, after `cd`, programs start in the session's directory of the tree, and
    // a script named alone is the one there.
    let shell = plx
        .run(
            &["shell"],
            b"cd /code\nrun --on n2 count.py /fs/data/in.txt\ncat count.txt\n:quit\n",
        )
        .ok();
    assert!(shell.contains("lines 3 False\n3"), "{shell}");

    // Bob's program on n2 reads what bob may read, and not the tester's private file.
    register_bob(&plx);
    put_secret(&plx);
    let bob_cats = |path: &str| {
        plx.run(
            &["run", "--user", "bob", "--on", "n2", "--", "cat", path],
            b"",
        )
    };
    assert_eq!(bob_cats("/fs/data/in.txt").ok(), "one\ntwo\nthree\n");
    let refused = bob_cats("/fs/home/tester/secret.txt").fails();
    assert!(refused.contains("Permission denied"), "{refused}");
    // n2 keeps one view of the tree for each user; the tester's refuses bob's programs, and
    // neither answers processes n2 did not start.
    let views = home.join("cluster/n2/fs");
    let mounted: Vec<PathBuf> = std::fs::read_dir(&views)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_mount_point(p))
        .collect();
    assert_eq!(mounted.len(), 2, "one view for each user: {mounted:?}");
    let mut answered_bob = 0;
    for view in &mounted {
        let inside = view.join("data/in.txt");
        let err = std::fs::read(&inside).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let peek = bob_cats(inside.to_str().unwrap());
        if peek.code == 0 {
            assert_eq!(peek.out(), "one\ntwo\nthree\n");
            answered_bob += 1;
        } else {
            assert!(
                peek.fails().contains("Permission denied"),
                "{}",
                peek.stderr
            );
        }
    }
    assert_eq!(answered_bob, 1, "only bob's own view answers bob");

    // n1 stops and unmounts its view; n2 is killed, and `plx down` undoes the views it left.
    let n1_views: Vec<PathBuf> = std::fs::read_dir(home.join("node/fs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_mount_point(p))
        .collect();
    assert_eq!(n1_views.len(), 1, "{n1_views:?}");
    let n2_pid = std::fs::read_to_string(home.join("cluster/n2/node.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", n2_pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("n2 to die", 10, || {
        !Path::new(&format!("/proc/{}", n2_pid.trim())).exists()
    });
    assert!(mounted.iter().all(|v| is_mount_point(v)), "left by n2");
    let down = plx.run(&["down"], b"");
    down.ok();
    assert!(
        down.stderr.contains("unmounted 2 view(s)"),
        "{}",
        down.stderr
    );
    for view in mounted.iter().chain(&n1_views) {
        assert!(
            !is_mount_point(view),
            "plx down unmounts {}",
            view.display()
        );
    }
    drop(cleanup);
}

/// `plx ARGS` as user `nobody` (uid 65534) in `home`, which that user owns.
fn as_nobody(home: &Path, args: &[&str]) -> Output {
    let home_var = format!("HOME={}", home.display());
    let plx_home = format!("PLX_HOME={}", home.join("plx").display());
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .args([
            home_var.as_str(),
            plx_home.as_str(),
            "USER=nb",
            "PLX_LOG=warn",
            // A free port for the web desktop of `plx up`: tests run side by side.
            "PLX_WEB_PORT=0",
        ])
        .arg(env!("CARGO_BIN_EXE_plx"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs")
}

/// [`as_nobody`] that must succeed; gives standard output.
#[track_caller]
fn ok_as_nobody(home: &Path, args: &[&str]) -> String {
    let out = as_nobody(home, args);
    assert!(
        out.status.success(),
        "plx {args:?} as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why a user other than root cannot be tested here, if it cannot.
fn no_other_user() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("the test makes its user with setpriv, which needs root".into());
    }
    if plexus_mount::find_in_path("setpriv").is_none() {
        return Some("setpriv is missing (util-linux)".into());
    }
    let mode = std::fs::metadata("/dev/fuse").map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode()
    });
    if mode.map_or(true, |m| m & 0o006 != 0o006) {
        return Some("/dev/fuse is open to root only (scripts/test opens it to users)".into());
    }
    None
}

/// A user other than root mounts the tree through fusermount3, and a node that user runs shows
/// its programs the tree under /fs.
#[test]
fn a_user_other_than_root_mounts_and_runs_programs_on_cluster_paths() {
    need_fuse!("a_user_other_than_root_mounts_and_runs_programs_on_cluster_paths");
    if let Some(why) = no_other_user() {
        eprintln!(
            "SKIPPED a_user_other_than_root_mounts_and_runs_programs_on_cluster_paths: {why}"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    let nobody = Some(65534);
    std::os::unix::fs::chown(&home, nobody, nobody).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mnt = home.join("mnt");
    let m = mnt.to_str().unwrap();
    // Stops the node and unmounts, even when the test fails half-way (root may unmount it).
    struct Down<'a>(&'a Path, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            if is_mount_point(self.1) {
                let _ = Command::new("fusermount3")
                    .arg("-u")
                    .arg("-z")
                    .arg(self.1)
                    .status();
            }
            let _ = as_nobody(self.0, &["down"]);
        }
    }
    let _down = Down(&home, &mnt);

    ok_as_nobody(&home, &["user", "new", "nb"]);
    ok_as_nobody(&home, &["up", "--detach"]);
    let local = home.join("in.txt");
    std::fs::write(&local, "from nobody\n").unwrap();
    std::os::unix::fs::chown(&local, nobody, nobody).unwrap();
    ok_as_nobody(
        &home,
        &["fs", "put", local.to_str().unwrap(), "/home/nb/in.txt"],
    );

    // The mount, by the user's own FUSE mount through the setuid helper.
    let mkdir = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "mkdir",
            m,
        ])
        .status()
        .unwrap();
    assert!(mkdir.success());
    ok_as_nobody(&home, &["mount", m]);
    assert!(is_mount_point(&absolute(&mnt)));
    let read = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(mnt.join("home/nb/in.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read.stdout), "from nobody\n");
    let copy = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cp"])
        .arg(&local)
        .arg(mnt.join("home/nb/copy.txt"))
        .status()
        .unwrap();
    assert!(copy.success());
    assert_eq!(
        ok_as_nobody(&home, &["fs", "cat", "/home/nb/copy.txt"]),
        "from nobody\n"
    );
    ok_as_nobody(&home, &["umount", m]);
    assert!(!is_mount_point(&absolute(&mnt)));

    // The node's own view of the tree, for a program it runs.
    assert_eq!(
        ok_as_nobody(&home, &["run", "--", "cat", "/fs/home/nb/copy.txt"]),
        "from nobody\n"
    );
    ok_as_nobody(&home, &["down"]);
}
