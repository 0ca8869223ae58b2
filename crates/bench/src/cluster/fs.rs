//! `plx bench fs`: the cluster file system on 3 local nodes, each figure next to a baseline
//! measured in the same run (`docs/benchmarks.md`).
//!
//! (a) `put` and `get` of one large file through n1 with [`plexus_client::files`] (the code
//! `plx fs put` and `get` run), against this filesystem's sequential write + `fdatasync` and
//! read rates. The three nodes share this machine's disk, so a put writes every byte three
//! times: the bench also measures writing three copies raw, the floor of a local put. Reads
//! start cold: the test file and the chunk files are dropped from the page cache first
//! (`posix_fadvise(DONTNEED)`), and what `get` reads goes nowhere, as the raw read's does.
//! (b) Small files: 4 KiB `{write:…}` calls (created, written, durable on a majority when
//! answered) from 32 clients, against the disk's `fdatasync` rate.
//! (c) Metadata: `ls` of a directory of 10,000 files (`--listed`) and `stat` of one, from a
//! client of n1.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use super::*;
use plexus_client::files::Signed;

/// Clients of (b).
const SMALL_CLIENTS: usize = 32;
/// Runs of each measurement of (a); the figures are their medians.
const RUNS: usize = 3;

/// Options of `plx bench fs`.
#[derive(Args, Debug)]
pub struct FsArgs {
    /// Print one JSON object (figures, baselines, ratios, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Size of the file (a) puts and gets, in MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(8..=16_384))]
    pub mib: u64,
    /// 4 KiB files (b) writes, spread over the clients.
    #[arg(long, default_value_t = 4_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(32..=1_000_000))]
    pub files: u64,
    /// Files in the directory (c) lists.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(32..=1_000_000))]
    pub listed: u64,
    /// `stat` calls timed by (c).
    #[arg(long, default_value_t = 1_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub stats: u64,
}

/// What `fs` measured.
struct FsFigures {
    /// Bytes of the large file.
    size: u64,
    raw_write: f64,
    raw_write_3: f64,
    raw_read: f64,
    put: f64,
    get: f64,
    small: Driven,
    fsync: Figures,
    ls_ms: Vec<f64>,
    listed: usize,
    stat: Figures,
}

/// `plx bench fs`.
pub fn fs(args: FsArgs) -> Result<()> {
    let say = progress(args.json);
    let f = run(fs_measure(&args, &say))?;
    let mb = |rate: f64| rate / 1e6;
    let put_ratio = f.put / f.raw_write.max(1e-9);
    let get_ratio = f.get / f.raw_read.max(1e-9);
    let floor_ratio = f.raw_write_3 / f.raw_write.max(1e-9);
    let small_rate = f.small.rate();
    let ls_ms = median(&f.ls_ms);
    let stat_ms = f.stat.p50_us / 1e3;
    if args.json {
        let j = Json::obj([
            ("bench", "fs".into()),
            ("build", build_profile().into()),
            ("nodes", 3usize.into()),
            ("file_bytes", (f.size as f64).into()),
            ("raw_write_mb_s", mb(f.raw_write).into()),
            ("raw_write_3_copies_mb_s", mb(f.raw_write_3).into()),
            ("raw_read_cold_mb_s", mb(f.raw_read).into()),
            ("put_mb_s", mb(f.put).into()),
            ("get_mb_s", mb(f.get).into()),
            ("put_ratio", put_ratio.into()),
            ("put_floor_ratio", floor_ratio.into()),
            ("get_ratio", get_ratio.into()),
            ("put_target_ratio", 0.5.into()),
            ("get_target_ratio", 0.6.into()),
            ("small_files_per_sec", small_rate.into()),
            ("small_files", f.small.samples.len().into()),
            ("small_failed", f.small.failed.into()),
            ("small_target_per_sec", 2_000usize.into()),
            ("fsync_per_sec", f.fsync.per_sec.into()),
            ("ls_files", f.listed.into()),
            ("ls_ms", ls_ms.into()),
            ("ls_target_ms", 50usize.into()),
            ("stat_p50_ms", stat_ms.into()),
            ("stat_p99_ms", (f.stat.p99_us / 1e3).into()),
            ("stat_target_ms", 0.5.into()),
            ("put_met", (put_ratio >= 0.5).into()),
            ("get_met", (get_ratio >= 0.6).into()),
            ("small_met", (small_rate >= 2_000.0).into()),
            ("ls_met", (ls_ms < 50.0).into()),
            ("stat_met", (stat_ms < 0.5).into()),
        ]);
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench fs: 3 local nodes sharing this disk ({} build)",
        build_profile()
    );
    println!();
    println!(
        "(a) a {} MiB file through n1, 3 copies (medians of {RUNS} runs)",
        f.size >> 20
    );
    println!(
        "    put {:>8.0} MB/s   raw write + fdatasync {:>6.0} MB/s   ratio {:.2}   target ≥ 0.50: {}",
        mb(f.put),
        mb(f.raw_write),
        put_ratio,
        verdict(put_ratio >= 0.5)
    );
    println!(
        "        floor: 3 copies written raw {:>6.0} MB/s = {:.2} of the raw rate (the nodes share one disk); put / floor {:.2}",
        mb(f.raw_write_3),
        floor_ratio,
        f.put / f.raw_write_3.max(1e-9)
    );
    println!(
        "    get {:>8.0} MB/s   raw read, cold       {:>6.0} MB/s   ratio {:.2}   target ≥ 0.60: {}",
        mb(f.get),
        mb(f.raw_read),
        get_ratio,
        verdict(get_ratio >= 0.6)
    );
    println!();
    println!(
        "(b) 4 KiB files, {SMALL_CLIENTS} clients: {:.0} files/s ({} written, {} failed)   target ≥ 2000/s: {}",
        small_rate,
        f.small.samples.len(),
        f.small.failed,
        verdict(small_rate >= 2_000.0)
    );
    println!(
        "    baseline: {:.0} fdatasyncs/s of 4 KiB on this disk, one after another; p50 of a file {:.2} ms",
        f.fsync.per_sec,
        figures(f.small.samples.clone(), f.small.wall).p50_us / 1e3
    );
    if let Some(e) = &f.small.first_error {
        println!("    first failure: {e}");
    }
    println!();
    println!(
        "(c) ls of {} files: {ls_ms:.1} ms (median of {})   target < 50 ms: {}",
        f.listed,
        f.ls_ms.len(),
        verdict(ls_ms < 50.0)
    );
    println!(
        "    stat p50 {stat_ms:.3} ms, p99 {:.3} ms   target p50 < 0.5 ms: {}",
        f.stat.p99_us / 1e3,
        verdict(stat_ms < 0.5)
    );
    Ok(())
}

async fn fs_measure(args: &FsArgs, say: &dyn Fn(&str)) -> Result<FsFigures> {
    say("starting a 3-node cluster");
    let mut cluster = LocalCluster::start(3, PROFILE).await?;
    let r = fs_on(&mut cluster, args, say).await;
    cluster.explain(r)
}

/// Drops `path`'s pages from the page cache.
fn evict(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = rustix::fs::fadvise(file.as_fd(), 0, None, rustix::fs::Advice::DontNeed);
    }
}

/// Drops every chunk file of `data`'s store from the page cache.
fn evict_chunks(data: &Path) {
    let Ok(dirs) = std::fs::read_dir(data.join("chunks")) else {
        return;
    };
    for dir in dirs.flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            evict(&file.path());
        }
    }
}

/// Writes `data` to `path` in 1 MiB writes, then `fdatasync`; gives the seconds taken.
fn timed_write(path: &Path, data: &[u8]) -> Result<f64> {
    let start = Instant::now();
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    for piece in data.chunks(1 << 20) {
        file.write_all(piece)?;
    }
    file.sync_data()?;
    Ok(start.elapsed().as_secs_f64())
}

async fn fs_on(cluster: &mut LocalCluster, args: &FsArgs, say: &dyn Fn(&str)) -> Result<FsFigures> {
    let size = args.mib << 20;
    let mut data = vec![0u8; usize::try_from(size)?];
    rand_core::OsRng.fill_bytes(&mut data);
    let dir = cluster.dir.join("raw");
    std::fs::create_dir_all(&dir)?;

    say("baseline: raw sequential write + fdatasync, and cold read (3 runs each)");
    let one = dir.join("one.bin");
    let (mut writes, mut threes, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        writes.push(size as f64 / timed_write(&one, &data)?);
        let mut three = 0.0;
        for i in 0..3 {
            three += timed_write(&dir.join(format!("copy{i}.bin")), &data)?;
        }
        threes.push(size as f64 / three);
        for i in 0..3 {
            let _ = std::fs::remove_file(dir.join(format!("copy{i}.bin")));
        }
        evict(&one);
        let start = Instant::now();
        let mut file = std::fs::File::open(&one)?;
        let mut buf = vec![0u8; 1 << 20];
        while file.read(&mut buf)? > 0 {}
        reads.push(size as f64 / start.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&one);

    let key = cluster.admin.clone();
    let mut client = Client::connect(&cluster.node(0)?.socket()).await?;
    let files_err = |e: plexus_client::files::TransferError| anyhow!("{e}");
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        say(&format!(
            "(a) put of {} MiB through n1, run {}",
            args.mib,
            run + 1
        ));
        let start = Instant::now();
        plexus_client::files::put(
            &mut Signed::new(&mut client, &key),
            &mut data.as_slice(),
            "/big.bin",
            "644",
            &mut |_| {},
        )
        .await
        .map_err(files_err)?;
        puts.push(size as f64 / start.elapsed().as_secs_f64());
        say(&format!(
            "(a) get of {} MiB through n1, run {}",
            args.mib,
            run + 1
        ));
        for node in &cluster.nodes {
            evict_chunks(&node.data);
        }
        let start = Instant::now();
        let got = plexus_client::files::get(
            &mut Signed::new(&mut client, &key),
            "/big.bin",
            &mut std::io::sink(),
            &mut |_| {},
        )
        .await
        .map_err(files_err)?;
        gets.push(got as f64 / start.elapsed().as_secs_f64());
        if got != size {
            bail!("get gave {got} bytes of {size}");
        }
        ask(&mut client, &key, "{rm:`/big.bin`}@io.fs").await?;
        // Each run writes new chunks: the old ones would only be renewed.
        data.iter_mut()
            .step_by(4096)
            .for_each(|b| *b = b.wrapping_add(1));
    }
    drop(data);
    let (raw_write, raw_write_3, raw_read) = (median(&writes), median(&threes), median(&reads));
    let (put, get) = (median(&puts), median(&gets));

    say("(b) baseline: fdatasync rate");
    let fsync = fsync_rate(&dir, 1_000)?;
    say(&format!("(b) 4 KiB files from {SMALL_CLIENTS} clients"));
    let socket = cluster.node(0)?.socket();
    let per_client = usize::try_from(args.files)?.div_ceil(SMALL_CLIENTS);
    let mut pools = Vec::new();
    for c in 0..SMALL_CLIENTS {
        ask(&mut client, &key, &format!("{{mkdir:`/small{c}`}}@io.fs")).await?;
        pools.push(sign_many(&key, per_client, |i| {
            let mut block = [0u8; 4096];
            rand_core::OsRng.fill_bytes(&mut block);
            let hex: String = block.iter().map(|b| format!("{b:02x}")).collect();
            Ok(parse(&format!(
                "{{write:`/small{c}/f{i}` data:x\"{hex}\"}}@io.fs"
            ))?)
        })?);
    }
    let small = drive(&socket, pools, 1, expect_done).await?;

    let listed = usize::try_from(args.listed)?;
    say(&format!("(c) {listed} files in one directory"));
    ask(&mut client, &key, "{mkdir:`/many`}@io.fs").await?;
    let pools = (0..SMALL_CLIENTS)
        .map(|c| {
            let count = listed / SMALL_CLIENTS + usize::from(c < listed % SMALL_CLIENTS);
            sign_many(&key, count, |i| {
                Ok(parse(&format!("{{write:`/many/f{c}-{i}`}}@io.fs"))?)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let made = drive(&socket, pools, 8, expect_done).await?;
    if made.failed > 0 {
        bail!(
            "{} of the files to list were not made: {}",
            made.failed,
            made.first_error.unwrap_or_default()
        );
    }
    let mut ls_ms = Vec::new();
    for _ in 0..11 {
        // Each call signed anew: a node refuses a message it has seen.
        let listing = sign_with(&key, parse("{ls:`/many`}@io.fs")?)?;
        let start = Instant::now();
        match client.call(&listing, None, std::future::pending()).await? {
            Reply::Value(Unit::List(l)) if l.len() == made.samples.len() => {}
            other => bail!("ls gave {}", describe(&other)),
        }
        ls_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ls_ms.remove(0);
    let stats = sign_many(&key, usize::try_from(args.stats)?, |_| {
        Ok(parse("{stat:`/many/f0-0`}@io.fs")?)
    })?;
    let stat = drive(&socket, vec![stats], 1, expect_done).await?;
    if stat.failed > 0 {
        bail!("stat failed: {}", stat.first_error.unwrap_or_default());
    }
    Ok(FsFigures {
        size,
        raw_write,
        raw_write_3,
        raw_read,
        put,
        get,
        small,
        fsync,
        ls_ms,
        listed,
        stat: figures(stat.samples, stat.wall),
    })
}
