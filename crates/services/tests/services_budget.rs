//! The memory budget of a root message and the cancellation of its work, across services.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::Keypair;
use plexus_kernel::{code, Kernel, Meter, Outcome, Policy};
use plexus_services::testing::{bare_kernel, eval_text};
use plexus_services::{dat_gen, dat_proc, math_calc};
use plexus_units::parse;

fn kernel(budget: Option<u64>) -> (Kernel, Keypair) {
    let (kernel, user) = bare_kernel();
    for s in [
        dat_gen::service(),
        dat_proc::service(),
        math_calc::service(),
    ] {
        kernel.register(s, None, Policy::Anyone).unwrap();
    }
    if let Some(b) = budget {
        kernel.set_eval_memory(b);
    }
    (kernel, user)
}

fn limit(out: Outcome, what: &str) {
    match out {
        Err(e) => assert_eq!(e.code(), code::LIMIT, "{what}: {e}"),
        Ok(v) => panic!("{what} should exceed the budget, gave {v:?}"),
    }
}

#[tokio::test]
async fn the_reported_message_is_a_limit_error_not_gigabytes() {
    let (k, u) = kernel(None);
    let msg = "(len (rnd.int (10000000 (0 (pow (2 65535))@math.calc)))@dat.gen)@dat.proc";
    limit(eval_text(&k, &u, None, msg).await, msg);
}

#[tokio::test]
async fn random_big_ints_are_charged_before_they_are_built() {
    let (k, u) = kernel(Some(1 << 20));
    // 1,000 ints of 8 KiB each: 8 MiB, beyond a 1 MiB budget.
    let msg = "(rnd.int (1000 (0 (pow (2 65535))@math.calc)))@dat.gen";
    limit(eval_text(&k, &u, None, msg).await, msg);
    // A small list still fits.
    let small = "(len (rnd.int (10 (0 (pow (2 65535))@math.calc)))@dat.gen)@dat.proc";
    let out = eval_text(&k, &u, None, small).await.unwrap();
    assert_eq!(out, Some(parse("10").unwrap()));
}

#[tokio::test]
async fn the_budget_is_shared_by_every_call_of_the_message() {
    let (k, u) = kernel(Some(1 << 20));
    // Each list of 5,000 ints is well under 1 MiB; together they are over it.
    let one = "(len (lin.int (1 5000))@dat.gen)@dat.proc";
    assert!(eval_text(&k, &u, None, one).await.is_ok());
    let many = format!("[{}]", [one; 8].join(" "));
    limit(eval_text(&k, &u, None, &many).await, &many);
    // Each message has a budget of its own.
    assert!(eval_text(&k, &u, None, one).await.is_ok());
}

#[tokio::test]
async fn lists_built_from_small_messages_are_charged_before_they_are_built() {
    let (k, u) = kernel(Some(1 << 20));
    for msg in [
        "(dup (1000000 abc))@dat.proc",
        "(prod ((lin.int (1 2000))@dat.gen (lin.int (1 2000))@dat.gen))@dat.proc",
        "(cat.zip ([1 2] (lin.int (1 20000))@dat.gen))@dat.proc",
    ] {
        limit(eval_text(&k, &u, None, msg).await, msg);
    }
}

#[tokio::test]
async fn killing_the_task_cancels_the_work_it_does() {
    let (k, u) = kernel(None);
    let (tx, rx) = tokio::sync::oneshot::channel::<Meter>();
    let kernel = k.clone();
    let author = u.public();
    let handle = k.spawn_task(None, "msg", author, move |task| {
        let cx = kernel.context(author, [0; 32], None, task);
        let _ = tx.send(cx.meter().clone());
        async move {
            cx.run(parse("(lin.int (1 3000000))@dat.gen").unwrap())
                .await
        }
    });
    let meter = rx.await.unwrap();
    assert!(!meter.is_cancelled());
    k.kill(handle.id).unwrap();
    // The loop building the list sees the cancellation (it does not hold an await point).
    assert!(meter.is_cancelled());
    assert_eq!(meter.check().unwrap_err().code(), code::CANCELLED);
    assert_eq!(handle.outcome().await.unwrap_err().code(), code::KILLED);
}

#[tokio::test]
async fn a_loop_is_bounded_by_what_one_turn_builds_not_by_its_turns() {
    let (k, u) = kernel(Some(1 << 20));
    k.register(plexus_services::sys_task::service(), None, Policy::Anyone)
        .unwrap();
    // 50 turns of about 200 KB each: 10 MB in all, but never more than one turn's at once.
    let msg = "(task.loop (50 (lin.int (1 5000))@dat.gen))@sys.task";
    let out = eval_text(&k, &u, None, msg).await;
    assert!(out.is_ok(), "{msg}: {out:?}");
    // One turn beyond the budget still fails.
    let msg = "(task.loop (2 (lin.int (1 50000))@dat.gen))@sys.task";
    limit(eval_text(&k, &u, None, msg).await, msg);
}
