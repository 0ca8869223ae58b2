//! sys.proc on one node: a real kernel, process supervisor and node database, with real
//! programs (`sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use plexus_identity::{KeyKind, Keypair};
use plexus_services::sys_proc::KEPT_RUNS;
use plexus_services::testing::TestTerminal;
use plexus_units::{to_text, Unit};

mod common;

use common::{field, node};

/// Waits until `check` holds, for at most 10 s.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_run_streams_output_before_it_ends_and_takes_stdin() {
    let node = Arc::new(node().await);
    let term = TestTerminal::new();
    let run = {
        let (node, term) = (node.clone(), term.clone());
        tokio::spawn(async move {
            node.call(
                &node.admin,
                Some(term),
                "{run:[sh -c `echo ready; read line; echo got:$line; echo oops >&2; exit 3`] attach:t}@sys.proc",
            )
            .await
        })
    };
    until("the first line", async || term.output().contains("ready\n")).await;
    assert!(!run.is_finished(), "the program waits for its stdin");
    // Told once the record is in the table, which may be after the first output.
    until("the process id", async || term.output().contains("<proc ")).await;
    let out = term.output();
    let id = out
        .split_once("<proc ")
        .and_then(|(_, rest)| rest.split('>').next())
        .unwrap()
        .to_owned();
    node.admin(&format!("{{stdin:{id} data:`hello\n`}}@sys.proc"))
        .await
        .unwrap();
    let reply = run.await.unwrap().unwrap();
    assert_eq!(field(&reply, "state"), "exited");
    assert_eq!(field(&reply, "code"), "3");
    assert_eq!(field(&reply, "id"), id);
    assert!(term.output().contains("got:hello\n"), "{}", term.output());
    assert!(term.output().contains("<err>oops\n"), "{}", term.output());
    // The record says how it ended.
    let ps = node.admin("ps@sys.proc").await.unwrap();
    let row = &ps.as_list().unwrap()[0];
    assert_eq!(field(row, "state"), "exited");
    assert_eq!(field(row, "code"), "3");
    assert_eq!(field(row, "user"), "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_killed_by_a_signal_reports_it() {
    let node = node().await;
    let term = TestTerminal::new();
    let reply = node
        .call(
            &node.admin,
            Some(term),
            "{run:[sh -c `kill -9 $$`] attach:t}@sys.proc",
        )
        .await
        .unwrap();
    assert_eq!(field(&reply, "state"), "killed");
    assert_eq!(field(&reply, "signal"), "9");
    assert_eq!(field(&reply, "code"), "137");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_an_admin_may_act_on_a_process() {
    let node = node().await;
    let reply = node
        .call(&node.bob, None, "{run:[sleep 30] name:nap}@sys.proc")
        .await
        .unwrap();
    let id = field(&reply, "id");
    let admin_only = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    node.kernel
        .register_user(admin_only.public(), "eve")
        .unwrap();
    for msg in [
        format!("{{kill:{id}}}@sys.proc"),
        format!("{{logs:{id}}}@sys.proc"),
        format!("{{stdin:{id} eof:t}}@sys.proc"),
        format!("{{wait:{id}}}@sys.proc"),
        "{kill:nap}@sys.proc".to_owned(),
    ] {
        let err = node.call(&admin_only, None, &msg).await.unwrap_err();
        assert_eq!(err.code(), "denied", "{msg}: {err}");
    }
    // By name, by its owner.
    let killed = node
        .call(&node.bob, None, "{kill:nap grace:2000}@sys.proc")
        .await
        .unwrap();
    assert_eq!(field(&killed, "state"), "killed");
    let waited = node
        .call(&node.bob, None, &format!("{{wait:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(field(&waited, "state"), "killed");
    assert_eq!(field(&waited, "signal"), "15");
    // A user's kill is not a failure to restart from, and the name is free again.
    let again = node
        .call(&node.bob, None, "{run:[`true`] name:nap}@sys.proc")
        .await
        .unwrap();
    assert_ne!(field(&again, "id"), id);
    drop(node.service);
}

/// `{start:x"RECORD"}` is how a node asks another to start a program it placed: the new
/// record is its signer's own, placed on the receiving node, under an id the sender drew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_record_starts_only_for_its_owner_on_its_node() {
    let node = node().await;
    let here = node.kernel.node().name.clone();
    let drawn = plexus_store::ProcId::from_random([7; 4]);
    let record_with = |id: plexus_store::ProcId, owner: &Keypair, on: &str| {
        let rec = plexus_store::ProcRecord::new(
            id,
            owner.public().to_bytes(),
            on,
            vec!["/bin/echo".into(), "new".into()],
        );
        format!(
            "{{start:{} attach:t}}@sys.proc",
            to_text(&Unit::Bytes(rec.encode().into()))
        )
    };
    let record = |owner: &Keypair, on: &str| record_with(drawn, owner, on);
    let eve = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    node.kernel.register_user(eve.public(), "eve").unwrap();
    let term = Arc::new(TestTerminal::default());
    let err = node
        .call(&eve, Some(term.clone()), &record(&node.bob, &here))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "denied", "{err}");
    let err = node
        .call(
            &node.bob,
            Some(term.clone()),
            &record(&node.bob, "elsewhere"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "arg.bad", "{err}");
    let err = node
        .call(&node.bob, Some(term.clone()), "{start:x\"01ff\"}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "arg.bad", "{err}");
    assert_eq!(node.admin("ps@sys.proc").await.unwrap(), Unit::List(vec![]));

    let ended = node
        .call(&node.bob, Some(term.clone()), &record(&node.bob, &here))
        .await
        .unwrap();
    assert_eq!(field(&ended, "state"), "exited", "{}", to_text(&ended));
    let id = field(&ended, "id");
    assert_eq!(id, drawn.to_string());
    let rec = node
        .db
        .procs()
        .unwrap()
        .into_iter()
        .find(|r| r.id.to_string() == id)
        .unwrap();
    assert_eq!(rec.owner, node.bob.public().to_bytes());
    assert_eq!(rec.state, plexus_store::ProcState::Exited(0));

    // Another user's record under the id of bob's running process is refused by the table;
    // bob's process is untouched.
    let nap = node
        .call(&node.bob, None, "{run:[sleep 30]}@sys.proc")
        .await
        .unwrap();
    let nap_id = plexus_store::ProcId::parse(&field(&nap, "id")).unwrap();
    let err = node
        .call(&eve, Some(term.clone()), &record_with(nap_id, &eve, &here))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "proc.exists", "{err}");
    let killed = node
        .call(
            &node.bob,
            None,
            &format!("{{kill:{nap_id} grace:2000}}@sys.proc"),
        )
        .await
        .unwrap();
    assert_eq!(field(&killed, "state"), "killed", "{}", to_text(&killed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_wait_and_rm() {
    let node = node().await;
    let id = node
        .start("[sh -c `echo a; echo b; echo c; echo e1 >&2`]")
        .await;
    let waited = node
        .admin(&format!("{{wait:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(field(&waited, "code"), "0");
    let all = node
        .admin(&format!("{{logs:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(all, Unit::Bytes(b"a\nb\nc\n".to_vec().into()));
    let tail = node
        .admin(&format!("{{logs:{id} tail:2}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(tail, Unit::Bytes(b"b\nc\n".to_vec().into()));
    let err = node
        .admin(&format!("{{logs:{id} stream:stderr}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(err, Unit::Bytes(b"e1\n".to_vec().into()));

    let running = node.start("[sleep 30]").await;
    let refused = node
        .admin(&format!("{{rm:{running}}}@sys.proc"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "proc.running");
    node.admin(&format!("{{kill:{running} signal:KILL}}@sys.proc"))
        .await
        .unwrap();
    node.admin(&format!("{{wait:{running}}}@sys.proc"))
        .await
        .unwrap();

    node.admin(&format!("{{rm:{id}}}@sys.proc")).await.unwrap();
    let gone = node
        .admin(&format!("{{logs:{id}}}@sys.proc"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), "not.found");
    let ps = node.admin("ps@sys.proc").await.unwrap();
    let ids: Vec<String> = ps
        .as_list()
        .unwrap()
        .iter()
        .map(|r| field(r, "id"))
        .collect();
    assert_eq!(ids, vec![running.clone()]);
    let text = node.admin("{ps:t text:t}@sys.proc").await.unwrap();
    let text = text.as_str().unwrap();
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains(&running) && text.contains("killed(9)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_process_shows_live_figures_and_the_node_stops_it() {
    let node = node().await;
    let id = node.start("[sleep 30]").await;
    until("running", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        ps.as_list()
            .unwrap()
            .iter()
            .any(|r| field(r, "state") == "running")
    })
    .await;
    let ps = node.admin("ps@sys.proc").await.unwrap();
    let row = &ps.as_list().unwrap()[0];
    assert_eq!(field(row, "id"), id);
    assert!(field(row, "rss").parse::<u64>().unwrap() > 0);
    node.service.shutdown(Duration::from_secs(2)).await;
    let ps = node.admin("ps@sys.proc").await.unwrap();
    assert_eq!(field(&ps.as_list().unwrap()[0], "state"), "lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_failure_runs_the_program_again() {
    let node = node().await;
    let id = node
        .start("[sh -c `echo run; exit 1`] restart:on-failure")
        .await;
    until("two restarts", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        let row = &ps.as_list().unwrap()[0];
        field(row, "restarts").parse::<u32>().unwrap() >= 2
    })
    .await;
    let killed = node
        .admin(&format!("{{kill:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(field(&killed, "id"), id);
    let waited = node
        .admin(&format!("{{wait:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert!(
        ["exited", "killed"].contains(&field(&waited, "state").as_str()),
        "{}",
        to_text(&waited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_read_every_kept_run_and_sweeps_forget_the_rest() {
    let node = node().await;
    // Six runs (the first and five restarts), then the crash-loop limit ends it.
    let id = node.start("[sh -c `echo run`] restart:always").await;
    until("the crash-loop limit", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        field(&ps.as_list().unwrap()[0], "state") == "crash-looping"
    })
    .await;
    let on = &node;
    let logs = |tail: &str| {
        let text = format!("{{logs:{id}{tail}}}@sys.proc");
        async move {
            match on.admin(&text).await.unwrap() {
                Unit::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("{}", to_text(&other)),
            }
        }
    };
    assert_eq!(logs("").await, "run\n".repeat(6));
    let ps = node.admin("ps@sys.proc").await.unwrap();
    assert_eq!(field(&ps.as_list().unwrap()[0], "restarts"), "5");
    assert_eq!(logs(" tail:2").await, "run\n".repeat(2));
    assert_eq!(logs(" tail:100").await, "run\n".repeat(6));

    // Logs a previous run of the node left: kept for a process the table has, deleted
    // otherwise.
    let log_dir = node._dir.path().join("procs/logs");
    std::fs::write(log_dir.join(format!("{id}-77.out")), "old").unwrap();
    std::fs::write(log_dir.join("zzzzzz.out"), "old").unwrap();
    // A run is forgotten at the second sweep that finds it forgettable.
    let doomed = node.service.sweep(&HashSet::new()).await;
    assert_eq!(doomed.len(), 1, "the oldest of six runs: {doomed:?}");
    assert!(!log_dir.join("zzzzzz.out").exists());
    assert!(log_dir.join(format!("{id}-77.out")).exists());
    assert_eq!(logs("").await, "run\n".repeat(6));
    node.service.sweep(&doomed).await;
    assert_eq!(
        logs("").await,
        "run\n".repeat(5),
        "{} runs are kept",
        KEPT_RUNS
    );

    // A process the table no longer has is forgotten with its logs.
    plexus_store::ProcTable::remove(node.db.as_ref(), plexus_store::ProcId::parse(&id).unwrap())
        .await
        .unwrap();
    let doomed = node.service.sweep(&HashSet::new()).await;
    assert_eq!(doomed.len(), 5);
    node.service.sweep(&doomed).await;
    let left: Vec<_> = std::fs::read_dir(&log_dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A process moved to this node after restarts elsewhere keeps counting from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_count_on_from_the_record() {
    let node = node().await;
    let here = node.kernel.node().name.clone();
    let mut rec = plexus_store::ProcRecord::new(
        plexus_store::ProcId::from_random([9; 4]),
        node.admin.public().to_bytes(),
        &here,
        vec!["sh".into(), "-c".into(), "exit 1".into()],
    );
    rec.state = plexus_store::ProcState::Restarting;
    rec.restart = plexus_store::RestartPolicy::OnFailure;
    rec.restarts = 7;
    let id = rec.id;
    plexus_store::ProcTable::put(node.db.as_ref(), rec)
        .await
        .unwrap();
    node.admin(&format!("{{start:{id}}}@sys.proc"))
        .await
        .unwrap();
    until("the crash-loop limit", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        field(&ps.as_list().unwrap()[0], "state") == "crash-looping"
    })
    .await;
    let ps = node.admin("ps@sys.proc").await.unwrap();
    assert_eq!(field(&ps.as_list().unwrap()[0], "restarts"), "12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_leaves_nothing_misleading() {
    let node = node().await;
    let unknown = node
        .admin("{run:[`true`] on:nowhere}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "node.unknown");
    assert!(unknown.message().contains("test-node"), "{unknown}");

    let tag = node
        .admin("{run:[`true`] tag:gpu}@sys.proc")
        .await
        .unwrap_err();
    assert!(tag.message().contains("gpu"), "{tag}");

    let missing = node
        .admin("{run:[`/no/such/program`]}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "not.found");
    assert!(
        missing.message().contains("/no/such/program") && missing.message().contains("test-node"),
        "{missing}"
    );

    let nul = node
        .admin("{run:[echo `a\u{0}b`]}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(nul.code(), "arg.bad", "{nul}");

    let many = format!("{{run:[`true` {}]}}@sys.proc", "x ".repeat(5000));
    let too_many = node.admin(&many).await.unwrap_err();
    assert_eq!(too_many.code(), "limit", "{too_many}");

    let policy = node
        .admin("{run:[`true`] restart:sometimes}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(policy.code(), "arg.bad");

    let no_term = node
        .admin("{run:[`true`] attach:t}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(no_term.code(), "term.none");

    // Only the program that could not start has a record, and it says why.
    let ps = node.admin("ps@sys.proc").await.unwrap();
    let rows = ps.as_list().unwrap();
    assert_eq!(rows.len(), 1, "{}", to_text(&ps));
    assert_eq!(field(&rows[0], "state"), "failed");
    assert!(field(&rows[0], "reason").contains("/no/such/program"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_placement_and_starts_nothing() {
    let node = node().await;
    let reply = node
        .admin("{run:[`true`] cpu:0.5 mem:10M dry:t}@sys.proc")
        .await
        .unwrap();
    assert_eq!(field(&reply, "node"), "test-node");
    let text = field(&reply, "text");
    assert!(text.starts_with("placed on test-node"), "{text}");
    let ps = node.admin("ps@sys.proc").await.unwrap();
    assert_eq!(ps, Unit::List(vec![]));

    let id = node.start("[sleep 30] cpu:0.5").await;
    let explained = node
        .admin(&format!("{{explain:{id}}}@sys.proc"))
        .await
        .unwrap();
    assert_eq!(field(&explained, "node"), "test-node");
    node.admin(&format!("{{kill:{id} signal:KILL}}@sys.proc"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_program_runs_from_the_node_cache() {
    let node = node().await;
    let term = TestTerminal::new();
    let script = "echo copied";
    let hex: String = script.bytes().map(|b| format!("{b:02x}")).collect();
    let reply = node
        .call(
            &node.admin,
            Some(term.clone()),
            &format!("{{run:[hello.sh] copy:x\"{hex}\" attach:t}}@sys.proc"),
        )
        .await
        .unwrap();
    assert_eq!(field(&reply, "code"), "0");
    let out = term.output();
    let id = field(&reply, "id");
    assert_eq!(
        out.replace(&format!("<proc {id}>"), ""),
        "copied\n",
        "{out}"
    );
    // `ps` names it as it was sent.
    let ps = to_text(&node.admin("ps@sys.proc").await.unwrap());
    assert!(ps.contains("command:[hello.sh]"), "{ps}");

    // Another node fetches a copied program only for the owner of a live process of it.
    let name = format!("{}.sh", blake3::hash(script.as_bytes()).to_hex());
    let bob_runs = node
        .call(
            &node.bob,
            None,
            &format!("{{run:[hello.sh] copy:x\"{hex}\" restart:always}}@sys.proc"),
        )
        .await
        .unwrap();
    let fetch = format!("{{program:`{name}`}}@sys.proc");
    let eve = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    node.kernel.register_user(eve.public(), "eve").unwrap();
    let err = node.call(&eve, None, &fetch).await.unwrap_err();
    assert_eq!(err.code(), "denied", "{err}");
    for user in [&node.bob, &node.admin] {
        let bytes = node.call(user, None, &fetch).await.unwrap();
        assert_eq!(bytes, Unit::Bytes(script.as_bytes().to_vec().into()));
    }
    let other = format!("{{program:`{}.sh`}}@sys.proc", "0".repeat(64));
    assert_eq!(node.admin(&other).await.unwrap_err().code(), "not.found");
    for bad in ["../../etc/passwd", "x", ""] {
        let e = node
            .admin(&format!("{{program:`{bad}`}}@sys.proc"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "arg.bad", "{bad}: {e}");
    }
    // It keeps restarting (it ends at once): stop it, whatever state it is in now.
    let _ = node
        .call(
            &node.bob,
            None,
            &format!("{{kill:{} signal:KILL}}@sys.proc", field(&bob_runs, "id")),
        )
        .await;
}

mod properties {
    use super::*;
    use plexus_units::testing::arb_unit;
    use plexus_units::Map;
    use proptest::prelude::*;

    /// Units as a message field holds them: nothing to evaluate (streams and refs are the
    /// evaluator's business, tested with it).
    fn field_unit() -> impl Strategy<Value = Unit> {
        arb_unit().prop_filter("nothing to evaluate", |u| {
            plexus_kernel::needs_eval(u) == (false, false)
        })
    }

    fn message(entries: Vec<(&str, Unit)>) -> String {
        let mut m = Map::new();
        for (k, v) in entries {
            m.insert(Unit::str(k), v);
        }
        format!("{}@sys.proc", to_text(&Unit::Map(m)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever a run's fields hold, a dry run is placed or refused with a clear code,
        /// and nothing starts; commands on a process that does not exist fail cleanly.
        #[test]
        fn any_run_request_is_placed_or_refused_and_starts_nothing(
            run in field_unit(), on in field_unit(), tag in field_unit(), cpu in field_unit(),
            mem in field_unit(), restart in field_unit(), name in field_unit(),
            env in field_unit(), id in field_unit(),
        ) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let node = node().await;
                let fields = [("on", on), ("tag", tag), ("cpu", cpu), ("mem", mem),
                    ("restart", restart), ("name", name), ("env", env)];
                // Each field alone, then all of them.
                let mut requests: Vec<Vec<(&str, Unit)>> = fields
                    .iter()
                    .map(|(k, v)| vec![("run", run.clone()), (*k, v.clone()), ("dry", Unit::Bool(true))])
                    .collect();
                let mut all = vec![("run", run.clone())];
                all.extend(fields.iter().cloned());
                all.push(("dry", Unit::Bool(true)));
                requests.push(all);
                for request in requests {
                    let text = message(request);
                    match node.admin(&text).await {
                        Ok(reply) => assert_eq!(field(&reply, "node"), "test-node", "{text}"),
                        Err(e) => assert!(
                            ["arg.bad", "limit", "node.unknown", "proc.name.taken"].contains(&e.code()),
                            "{text}: {e}"
                        ),
                    }
                }
                for cmd in ["kill", "logs", "rm", "stdin", "explain", "wait", "start"] {
                    let text = message(vec![(cmd, id.clone()), ("eof", Unit::Bool(true))]);
                    let e = node.admin(&text).await.unwrap_err();
                    assert!(["arg.bad", "not.found"].contains(&e.code()), "{text}: {e}");
                }
                assert_eq!(node.admin("ps@sys.proc").await.unwrap(), Unit::List(vec![]));
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everywhere_starts_a_copy_on_each_eligible_node() {
    let node = node().await;
    let dry = node
        .admin("{run:[sleep 30] everywhere:t dry:t}@sys.proc")
        .await
        .unwrap();
    assert_eq!(to_text(&dry), "{nodes:[test-node]}");
    let reply = node
        .admin("{run:[sleep 30] everywhere:t}@sys.proc")
        .await
        .unwrap();
    let group = field(&reply, "group");
    let ids = reply
        .as_map()
        .unwrap()
        .get_str("ids")
        .unwrap()
        .as_list()
        .unwrap()
        .to_vec();
    assert_eq!(ids.len(), 1);
    let id = ids[0].as_str().unwrap().to_owned();
    until("the copy to run", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        ps.as_list()
            .unwrap()
            .iter()
            .any(|r| field(r, "id") == id && field(r, "state") == "running")
    })
    .await;
    assert!(group.starts_with('g'), "{group}");
    let refused = node
        .admin("{run:[sleep 30] everywhere:t tag:gpu}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "limit", "{refused}");
    let both = node
        .admin("{run:[sleep 30] everywhere:t on:test-node}@sys.proc")
        .await
        .unwrap_err();
    assert_eq!(both.code(), "arg.bad");
    node.admin(&format!("{{kill:{id} signal:KILL}}@sys.proc"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_marks_its_old_processes_lost_and_not_its_new_ones() {
    use plexus_store::{ProcId, ProcRecord, ProcState, ProcTable};
    let node = node().await;
    let mut old = ProcRecord::new(
        ProcId::parse("00d000").unwrap(),
        node.admin.public().to_bytes(),
        "test-node",
        vec!["sleep".into(), "30".into()],
    );
    old.state = ProcState::Running;
    node.db.put(old).await.unwrap();
    node.service.recover_in_background();
    let reply = node.admin("{run:[sleep 30]}@sys.proc").await.unwrap();
    let new = field(&reply, "id");
    until("the old record lost", async || {
        let ps = node.admin("ps@sys.proc").await.unwrap();
        ps.as_list()
            .unwrap()
            .iter()
            .any(|r| field(r, "id") == "00d000" && field(r, "state") == "lost")
    })
    .await;
    let ps = node.admin("ps@sys.proc").await.unwrap();
    let row = ps
        .as_list()
        .unwrap()
        .iter()
        .find(|r| field(r, "id") == new)
        .unwrap()
        .clone();
    assert_eq!(field(&row, "state"), "running");
    node.admin(&format!("{{kill:{new} signal:KILL}}@sys.proc"))
        .await
        .unwrap();
}
