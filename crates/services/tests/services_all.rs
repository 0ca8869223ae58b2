//! Every built-in service, registered as a node registers them, runs every example of its help.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_units::to_text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_help_example_holds_on_a_full_node() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, admin) = bare_kernel();
    let db = plexus_services::open_db(&dir.path().join("node.redb")).unwrap();
    plexus_services::register_all(&kernel, db, dir.path()).unwrap();
    let names: Vec<String> = kernel.services().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "io.term",
            "io.store",
            "dat.proc",
            "dat.gen",
            "time.chrono",
            "gfx.2d",
            "math.calc",
            "sys.task",
            "sys.usr",
            "sys.hw",
            "test.dump",
            "test.echo",
            "test.void"
        ]
    );
    let mut failures = Vec::new();
    for name in &names {
        failures.extend(check_examples(&kernel, &admin, name).await);
        // Every service has a manual with at least one command.
        let man = eval_text(&kernel, &admin, None, &format!("help.man@{name}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            man.as_map().is_some_and(|m| !m.is_empty()),
            "{name}: empty manual {}",
            to_text(&man)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_is_in_the_store_and_its_programs_run() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, admin) = bare_kernel();
    let db = plexus_services::open_db(&dir.path().join("node.redb")).unwrap();
    plexus_services::register_all(&kernel, db, dir.path()).unwrap();
    let term = plexus_services::testing::TestTerminal::new();
    let out = eval_text(
        &kernel,
        &admin,
        Some(term.clone()),
        "(load @task.test)@io.store@sys.task",
    )
    .await;
    assert!(out.is_ok(), "{out:?}");
    assert!(term.output().contains("70"), "{}", term.output());
}
