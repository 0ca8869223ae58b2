//! sys.task: loops, queues, stacks, chains, background tasks, listings, kill, and the store
//! programs of the seed (the λ shell among them) run on the real services.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{Error, Kernel, Policy, TaskHandle, TaskInfo, Terminal, SERVICE_MAILBOX};
use plexus_services::sys_task::{self, SEED};
use plexus_services::testing::{bare_kernel, check_examples, eval_text, TestTerminal};
use plexus_services::{
    dat_gen, dat_proc, gfx_2d, io_store, io_term, math_calc, sys_hw, time_chrono,
};
use plexus_store::merge_with;
use plexus_store::MemStore;
use plexus_units::testing::{arb_message, arb_word};
use plexus_units::{parse, to_text, Unit};
use proptest::prelude::*;

fn kernel() -> (Kernel, Keypair) {
    let (k, admin) = bare_kernel();
    let seed = match parse(SEED).unwrap() {
        Unit::Map(m) => m,
        other => panic!("the seed is not a map: {other}"),
    };
    for s in [
        io_term::service(),
        io_store::service(Arc::new(MemStore::with(seed))),
        dat_proc::service(),
        dat_gen::service(),
        gfx_2d::service(),
        math_calc::service(),
        sys_task::service(),
        sys_hw::service(std::env::temp_dir()),
        time_chrono::service(),
    ] {
        k.register(s, None, Policy::Anyone).unwrap();
    }
    (k, admin)
}

fn p(text: &str) -> Unit {
    parse(text).unwrap()
}

async fn run(k: &Kernel, u: &Keypair, text: &str) -> Result<Option<Unit>, Error> {
    eval_text(k, u, None, text).await
}

/// Runs `text` on a fresh terminal answering reads with `lines`; → (outcome, output).
async fn on_term(
    k: &Kernel,
    u: &Keypair,
    text: &str,
    lines: &[&str],
) -> (Result<Option<Unit>, Error>, String) {
    let t = TestTerminal::with_lines(lines);
    let term: Arc<dyn Terminal> = t.clone();
    let out = eval_text(k, u, Some(term), text).await;
    (out, t.output())
}

/// Starts `text` as a client call does: in a task of its own named `msg`.
fn spawn_call(k: &Kernel, u: &Keypair, term: Option<Arc<dyn Terminal>>, text: &str) -> TaskHandle {
    let body = parse(text).unwrap();
    let kernel = k.clone();
    let author = u.public();
    k.spawn_task(None, "msg", author, move |task| async move {
        kernel.context(author, [0; 32], term, task).run(body).await
    })
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for {what}");
}

fn named<'a>(tasks: &'a [TaskInfo], name: &str, parent: Option<u64>) -> &'a TaskInfo {
    tasks
        .iter()
        .find(|t| t.name == name && t.parent == parent)
        .unwrap_or_else(|| panic!("no task {name} under {parent:?} in {tasks:?}"))
}

#[tokio::test]
async fn help_examples_hold() {
    let (k, u) = kernel();
    assert_eq!(
        check_examples(&k, &u, "sys.task").await,
        Vec::<String>::new()
    );
    assert_eq!(k.tasks(), vec![]);
}

#[tokio::test]
async fn loop_n_times() {
    let (k, u) = kernel();
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.loop (3 {say:hi nl:t}@io.term))@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "hi\nhi\nhi\n");
    let (out, printed) = on_term(
        &k,
        &u,
        "{task.loop:((sum [1 1])@math.calc (say x)@io.term)}@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "xx");
    let (out, printed) = on_term(&k, &u, "(task.loop (0 (say x)@io.term))@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "");
    // The body is evaluated afresh each time: each iteration reads its own line.
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.loop (2 {say:(inp `> `)@io.term nl:t}@io.term))@sys.task",
        &["a", "b"],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "> a\na\n> b\nb\n");
    for bad in [
        "(task.loop (a (say x)@io.term))@sys.task",
        "(task.loop (-1 (say x)@io.term))@sys.task",
        "(task.loop (1.5 (say x)@io.term))@sys.task",
    ] {
        let (out, printed) = on_term(&k, &u, bad, &[]).await;
        assert_eq!(out.unwrap_err().code(), "arg.bad", "{bad}");
        assert_eq!(printed, "");
    }
    // An error ends the loop.
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.loop (5 [(say x)@io.term (div (1 0))@math.calc]))@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "math.div0");
    assert_eq!(printed, "x");
    // Input ending ends a loop that reads.
    let (out, printed) = on_term(
        &k,
        &u,
        "{task.loop:{say:(inp `> `)@io.term}@io.term}@sys.task",
        &["a"],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    assert_eq!(printed, "> a\na> ");
    assert_eq!(k.tasks(), vec![]);
}

#[tokio::test]
async fn killing_a_loop_stops_it_and_its_children_and_answers_waiters() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "{task.loop:(task.loop {say:x}@io.term)@sys.task}@sys.task",
    );
    let msg = call.id;
    wait_for("two loops", || {
        k.tasks().iter().filter(|t| t.name == "task.loop").count() == 2
    })
    .await;
    let tasks = k.tasks();
    let outer = named(&tasks, "task.loop", Some(msg)).id;
    let inner = named(&tasks, "task.loop", Some(outer)).id;
    assert_eq!(named(&tasks, "msg", None).children, vec![outer]);
    wait_for("output", || t.output().len() > 10).await;
    assert_eq!(
        run(&k, &u, &format!("(kill {outer})@sys.task"))
            .await
            .unwrap(),
        None
    );
    let e = call.outcome().await.unwrap_err();
    assert_eq!(e.code(), "killed");
    assert!(k.tasks().iter().all(|t| t.id != outer && t.id != inner));
    let printed = t.output().len();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(t.output().len(), printed, "the loops still print");
    assert_eq!(k.tasks(), vec![]);

    // Killing the inner loop only: the outer one's iteration fails with killed.
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "{task.loop:(task.loop {say:x}@io.term)@sys.task}@sys.task",
    );
    wait_for("two loops", || {
        k.tasks().iter().filter(|t| t.name == "task.loop").count() == 2
    })
    .await;
    let tasks = k.tasks();
    let outer = named(&tasks, "task.loop", Some(call.id)).id;
    let inner = named(&tasks, "task.loop", Some(outer)).id;
    run(&k, &u, &format!("{{kill:{inner}}}@sys.task"))
        .await
        .unwrap();
    assert_eq!(call.outcome().await.unwrap_err().code(), "killed");
    assert_eq!(k.tasks(), vec![]);

    // Killing the caller's task stops everything under it.
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "{task.loop:{say:x}@io.term}@sys.task",
    );
    wait_for("a loop", || k.tasks().len() == 2).await;
    run(&k, &u, &format!("(kill {})@sys.task", call.id))
        .await
        .unwrap();
    assert_eq!(call.outcome().await.unwrap_err().code(), "killed");
    assert_eq!(k.tasks(), vec![]);
}

#[tokio::test]
async fn a_dropped_call_stops_its_loop() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    let term: Arc<dyn Terminal> = t.clone();
    let out = tokio::time::timeout(
        Duration::from_millis(50),
        eval_text(&k, &u, Some(term), "{task.loop:{say:y}@io.term}@sys.task"),
    )
    .await;
    assert!(out.is_err(), "a loop without end ended");
    assert_eq!(k.tasks(), vec![]);
    let printed = t.output().len();
    assert!(printed > 0);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(t.output().len(), printed);
}

#[tokio::test]
async fn kill_errors() {
    let (k, u) = kernel();
    let e = run(&k, &u, "(kill 12345)@sys.task").await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("not.found", "no task 12345"));
    for bad in [
        "(kill -1)@sys.task",
        "(kill x)@sys.task",
        "kill@sys.task",
        "{kill:[1]}@sys.task",
    ] {
        assert_eq!(
            run(&k, &u, bad).await.unwrap_err().code(),
            "arg.bad",
            "{bad}"
        );
    }
    // The id may be computed.
    let e = run(&k, &u, "(kill (sum [12340 5])@math.calc)@sys.task")
        .await
        .unwrap_err();
    assert_eq!(e.message(), "no task 12345");

    // Only the task's user or the admin may kill it.
    let other = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    let t = TestTerminal::new();
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "{task.loop:{say:x}@io.term}@sys.task",
    );
    wait_for("a loop", || k.tasks().len() == 2).await;
    let e = run(&k, &other, &format!("(kill {})@sys.task", call.id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "denied");
    assert_eq!(k.tasks().len(), 2);
    let mine = spawn_call(
        &k,
        &other,
        Some(t.clone()),
        "{task.loop:{say:y}@io.term}@sys.task",
    );
    wait_for("two loops", || k.tasks().len() == 4).await;
    run(&k, &other, &format!("(kill {})@sys.task", mine.id))
        .await
        .unwrap();
    assert_eq!(mine.outcome().await.unwrap_err().code(), "killed");
    run(&k, &u, &format!("(kill {})@sys.task", call.id))
        .await
        .unwrap();
    assert_eq!(call.outcome().await.unwrap_err().code(), "killed");
    assert_eq!(k.tasks(), vec![]);
}

/// A registered user other than the admin.
fn user(k: &Kernel, name: &str) -> Keypair {
    let key = Keypair::generate(KeyKind::User, name, &mut rand::rngs::OsRng).unwrap();
    k.register_user(key.public(), name).unwrap();
    key
}

/// Bounds a call that must answer promptly, however busy the node is.
async fn promptly<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within 10 s"))
}

/// 1,030 perpetual loops of one user used to fill sys.task's mailbox, and then listings and
/// even the admin's kill waited for a place behind them until the node restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_loops_neither_jam_listings_nor_kill() {
    let (k, admin) = kernel();
    let mallory = user(&k, "mallory");
    let calls: Vec<TaskHandle> = (0..SERVICE_MAILBOX + 6)
        .map(|_| {
            spawn_call(
                &k,
                &mallory,
                None,
                "(task.loop (wait.ms 20)@time.chrono)@sys.task",
            )
        })
        .collect();
    // Until every call runs its loop or has ended, or the mailbox is full.
    wait_for("the calls to settle", || {
        let tasks = k.tasks();
        let loops = tasks.iter().filter(|t| t.name == "task.loop").count();
        let unstarted = tasks
            .iter()
            .filter(|t| t.name == "msg" && t.children.is_empty())
            .count();
        loops >= SERVICE_MAILBOX || unstarted == 0
    })
    .await;

    let all = promptly("get.all@sys.task", run(&k, &admin, "get.all@sys.task"))
        .await
        .unwrap()
        .unwrap();
    assert!(!all.as_list().unwrap().is_empty());
    promptly("get.run@sys.task", run(&k, &mallory, "get.run@sys.task"))
        .await
        .unwrap();
    let loops: Vec<u64> = k
        .tasks()
        .iter()
        .filter(|t| t.name == "task.loop")
        .map(|t| t.id)
        .collect();
    assert!(
        loops.len() <= sys_task::MAX_TASKS_PER_USER,
        "{}",
        loops.len()
    );
    for id in loops {
        promptly(
            "the admin's kill",
            run(&k, &admin, &format!("(kill {id})@sys.task")),
        )
        .await
        .unwrap();
    }
    let mut limited = 0;
    for call in calls {
        let e = promptly("a loop's call", call.outcome()).await.unwrap_err();
        match e.code() {
            // A kill raises the task's cancellation flag and aborts it: a loop that reaches
            // its next service call before the abort lands ends as cancelled.
            "killed" | "cancelled" => {}
            "limit" => limited += 1,
            other => panic!("a loop ended with {other}: {e}"),
        }
    }
    assert_eq!(limited, SERVICE_MAILBOX + 6 - sys_task::MAX_TASKS_PER_USER);
    assert_eq!(k.tasks(), vec![]);
}

fn stranger(name: &str) -> Keypair {
    Keypair::generate(KeyKind::User, name, &mut rand::rngs::OsRng).unwrap()
}

fn task_count(k: &Kernel, who: &Keypair) -> usize {
    k.tasks().iter().filter(|t| t.user == who.public()).count()
}

#[tokio::test]
async fn each_registered_user_has_a_quota_of_running_tasks() {
    let (k, admin) = kernel();
    let (mallory, bob) = (user(&k, "mallory"), user(&k, "bob"));
    let asleep = "(wait.sec 600)@time.chrono";
    let all_but_one = format!(
        "(task.sim [{}])@sys.task",
        vec![asleep; sys_task::MAX_TASKS_PER_USER - 1].join(" ")
    );
    run(&k, &mallory, &all_but_one).await.unwrap();
    // task.sim starts all of its tasks or none.
    let two = format!("(task.sim [{asleep} {asleep}])@sys.task");
    assert_eq!(run(&k, &mallory, &two).await.unwrap_err().code(), "limit");
    let last = run(&k, &mallory, &format!("(task.sep {asleep})@sys.task"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task_count(&k, &mallory), sys_task::MAX_TASKS_PER_USER);
    for text in [
        format!("(task.sep {asleep})@sys.task"),
        "(task.loop (1 -))@sys.task".to_owned(),
        "{task:[math.calc] sum:[1 2]}@sys.task".to_owned(),
    ] {
        let e = run(&k, &mallory, &text).await.unwrap_err();
        assert_eq!(e.code(), "limit", "{text}: {e}");
    }
    // Others are not held back by mallory's tasks.
    assert_eq!(
        run(&k, &bob, "{task:[math.calc] sum:[1 2]}@sys.task")
            .await
            .unwrap(),
        Some(p("{task:[math.calc] sum:[1 2] msg:3}"))
    );
    // A task that ends gives its place back (once the runtime has dropped it).
    let id = last.as_map().unwrap().get_str("task").unwrap().clone();
    run(&k, &admin, &format!("(kill {id})@sys.task"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = run(&k, &mallory, "(task.loop (2 -))@sys.task").await {
        assert_eq!(e.code(), "limit", "{e}");
        assert!(tokio::time::Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn unregistered_keys_cannot_detach_and_share_one_quota() {
    let (k, admin) = kernel();
    let (eve, trudy) = (stranger("eve"), stranger("trudy"));
    for text in [
        "(task.sep (say x)@io.term)@sys.task",
        "{task.sim:[1 2]}@sys.task",
    ] {
        let e = run(&k, &eve, text).await.unwrap_err();
        assert_eq!(e.code(), "denied", "{text}: {e}");
    }
    assert_eq!(
        run(&k, &eve, "(task.loop (3 (sum [1 2])@math.calc))@sys.task")
            .await
            .unwrap(),
        None
    );
    let calls: Vec<TaskHandle> = (0..sys_task::MAX_TASKS_PER_USER)
        .map(|_| {
            spawn_call(
                &k,
                &eve,
                None,
                "(task.loop (wait.ms 20)@time.chrono)@sys.task",
            )
        })
        .collect();
    wait_for("eve's loops", || {
        k.tasks().iter().filter(|t| t.name == "task.loop").count() == calls.len()
    })
    .await;
    // A fresh key is no way around the quota.
    let e = run(&k, &trudy, "(task.loop (1 -))@sys.task")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "limit", "{e}");
    // Registered users are not held back.
    run(&k, &admin, "(task.loop (1 -))@sys.task").await.unwrap();
    for call in &calls {
        k.kill(call.id).unwrap();
    }
    for call in calls {
        let _ = call.outcome().await;
    }
    wait_for("the loops to stop", || k.tasks().is_empty()).await;
    run(&k, &trudy, "(task.loop (1 -))@sys.task").await.unwrap();
}

#[tokio::test]
async fn que_evaluates_in_order() {
    let (k, u) = kernel();
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.que [(say a)@io.term (sum [1 2])@math.calc {say:b nl:t}@io.term])@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "ab\n");
    let (out, printed) = on_term(
        &k,
        &u,
        "{task.que:[(say a)@io.term (div (1 0))@math.calc (say b)@io.term]}@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "math.div0");
    assert_eq!(printed, "a");
    let (out, printed) = on_term(&k, &u, "{task.que:[]}@sys.task", &[]).await;
    assert_eq!((out.unwrap(), printed.as_str()), (None, ""));
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.que ((say a)@io.term (say b)@io.term))@sys.task",
        &[],
    )
    .await;
    assert_eq!((out.unwrap(), printed.as_str()), (None, "ab"));
    for bad in [
        "(task.que 5)@sys.task",
        "task.que@sys.task",
        "(task.que (say a)@io.term)@sys.task",
    ] {
        let (out, printed) = on_term(&k, &u, bad, &[]).await;
        assert_eq!(out.unwrap_err().code(), "arg.bad", "{bad}");
        assert_eq!(printed, "");
    }
}

#[tokio::test]
async fn stk_sends_each_element() {
    let (k, u) = kernel();
    let (out, printed) = on_term(&k, &u, "(task.stk [1 2]@io.term)@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "12");
    let (out, printed) = on_term(
        &k,
        &u,
        "{task.stk:[(sum [1 2])@math.calc `, ` {say:x nl:t}]@io.term}@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "3, x\n");
    let (out, printed) = on_term(
        &k,
        &u,
        "(task.stk [a (div (1 0))@math.calc b]@io.term)@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "math.div0");
    assert_eq!(printed, "a");
    let (out, _) = on_term(&k, &u, "(task.stk [a]@io.term:elsewhere)@sys.task", &[]).await;
    assert_eq!(out.unwrap_err().code(), "node.unknown");
    let (out, _) = on_term(&k, &u, "(task.stk [a]@no.such)@sys.task", &[]).await;
    assert_eq!(out.unwrap_err().code(), "serv.unknown");
    for bad in ["(task.stk [1 2])@sys.task", "(task.stk 5@io.term)@sys.task"] {
        let (out, printed) = on_term(&k, &u, bad, &[]).await;
        assert_eq!(out.unwrap_err().code(), "arg.bad", "{bad}");
        assert_eq!(printed, "");
    }
}

#[tokio::test]
async fn sep_and_sim_start_tasks_and_return_at_once() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    let term: Arc<dyn Terminal> = t.clone();
    let out = eval_text(
        &k,
        &u,
        Some(term.clone()),
        "(task.sep {task.loop:{say:s}@io.term}@sys.task)@sys.task",
    )
    .await
    .unwrap()
    .unwrap();
    let id = out
        .as_map()
        .unwrap()
        .get_str("task")
        .unwrap()
        .as_int()
        .unwrap()
        .to_i64()
        .unwrap();
    wait_for("output", || t.output().len() > 3).await;
    let tasks = k.tasks();
    let sep = tasks.iter().find(|t| t.id == id as u64).unwrap();
    assert_eq!(sep.name, "task.sep");
    assert_eq!(
        named(&tasks, "task.loop", Some(sep.id)).children,
        Vec::<u64>::new()
    );
    let all = run(&k, &u, "get.all@sys.task").await.unwrap().unwrap();
    assert!(all
        .as_list()
        .unwrap()
        .contains(&p(&format!("{{id:{id} name:task.sep usr:admin par.id:0}}"))));
    run(&k, &u, &format!("(kill {id})@sys.task")).await.unwrap();
    assert_eq!(k.tasks(), vec![]);

    let out = eval_text(
        &k,
        &u,
        Some(term),
        "{task.sim:[{say:a nl:t}@io.term {say:b nl:t}@io.term (div (1 0))@math.calc]}@sys.task",
    )
    .await
    .unwrap()
    .unwrap();
    let ids = out
        .as_map()
        .unwrap()
        .get_str("task")
        .unwrap()
        .as_list()
        .unwrap()
        .to_vec();
    assert_eq!(ids.len(), 3);
    wait_for("sim tasks to end", || k.tasks().is_empty()).await;
    let printed = t.output();
    assert!(
        printed.ends_with("a\nb\n") || printed.ends_with("b\na\n"),
        "{printed}"
    );

    let many = format!(
        "(task.sim [{}])@sys.task",
        "1 ".repeat(sys_task::MAX_SIM + 1)
    );
    assert_eq!(run(&k, &u, &many).await.unwrap_err().code(), "limit");
    assert_eq!(
        run(&k, &u, "(task.sim x)@sys.task")
            .await
            .unwrap_err()
            .code(),
        "arg.bad"
    );
    assert_eq!(
        run(&k, &u, "task.sep@sys.task").await.unwrap_err().code(),
        "arg.bad"
    );
}

#[tokio::test]
async fn chains_merge_replies_into_msg() {
    let (k, u) = kernel();
    for (text, want) in [
        (
            "{sum:[4 5] task:[math.calc]}@sys.task",
            "{sum:[4 5] task:[math.calc] msg:9}",
        ),
        (
            "{msg:(sum [1 2]) task:[math.calc]}@sys.task",
            "{msg:3 task:[math.calc]}",
        ),
        (
            "{msg:(sum [1 2])@math.calc task:[math.calc]}@sys.task",
            "{msg:3 task:[math.calc]}",
        ),
        (
            "{task:math.calc sum:[1 2]}@sys.task",
            "{task:math.calc sum:[1 2] msg:3}",
        ),
        (
            "{msg:(sort [3 1 2]) task:[dat.proc]}@sys.task",
            "{msg:[1 2 3] task:[dat.proc]}",
        ),
        ("{msg:x task:[]}@sys.task", "{msg:x task:[]}"),
    ] {
        assert_eq!(run(&k, &u, text).await.unwrap(), Some(p(want)), "{text}");
    }
    // A service without a value leaves the current value as it is.
    let (out, printed) = on_term(
        &k,
        &u,
        "{msg:(sum [1 2]) task:[io.term math.calc]}@sys.task",
        &[],
    )
    .await;
    assert_eq!(out.unwrap(), Some(p("{msg:3 task:[io.term math.calc]}")));
    assert_eq!(printed, "(sum [1 2])");
    assert_eq!(
        run(&k, &u, "{msg:1 task:[no.such]}@sys.task")
            .await
            .unwrap_err()
            .code(),
        "serv.unknown"
    );
    assert_eq!(
        run(&k, &u, "{msg:(div (1 0)) task:[math.calc]}@sys.task")
            .await
            .unwrap_err()
            .code(),
        "math.div0"
    );
    for bad in ["{msg:1 task:5}@sys.task", "{msg:1 task:[1]}@sys.task"] {
        assert_eq!(
            run(&k, &u, bad).await.unwrap_err().code(),
            "arg.bad",
            "{bad}"
        );
    }
    assert_eq!(k.tasks(), vec![]);
}

#[test]
fn merge_is_vnixs() {
    let m = |a: &str, b: &str| to_text(&merge_with(p(a), p(b)));
    assert_eq!(m("[1 2]", "[3]"), "[1 2 3]");
    assert_eq!(m("[1 2]", "3"), "[1 2 3]");
    assert_eq!(m("{a:1}", "(b 2)"), "{a:1 b:2}");
    assert_eq!(m("{a:1}", "(a 2)"), "{a:2}");
    assert_eq!(m("{a:[1] b:x}", "{a:[2] c:y}"), "{a:[1 2] b:x c:y}");
    assert_eq!(m("{a:{b:1}}", "{a:{c:2}}"), "{a:{b:1 c:2}}");
    assert_eq!(m("5", "6"), "6");
    assert_eq!(m("[1]", "[1]"), "[1]");
    assert_eq!(m("x", "[1]"), "[1]");
}

#[tokio::test]
async fn a_stream_is_evaluated_to_the_second_level() {
    let (k, u) = kernel();
    for (text, want) in [
        ("(sum [1 2])@math.calc@sys.task", "3"),
        ("(prs.str `(sum [1 2])@math.calc`)@dat.proc@sys.task", "3"),
        (
            "(prs.str `[1 (sum [1 1])@math.calc]`)@dat.proc@sys.task",
            "[1 2]",
        ),
        ("(prs.str `hello`)@dat.proc@sys.task", "hello"),
        (
            "(prs.str `{task.try:(kill 99999)}`)@dat.proc@sys.task",
            "{err:not.found msg:`no task 99999` id:99999}",
        ),
        ("(load @txt.hello)@io.store@sys.task", "`Hello, Plexus!☯`"),
        // Only two levels: the stream the second level gives is a value.
        (
            "(prs.str '(prs.str `(sum [1 2])@math.calc`)@dat.proc')@dat.proc@sys.task",
            "(sum [1 2])@math.calc",
        ),
    ] {
        assert_eq!(run(&k, &u, text).await.unwrap(), Some(p(want)), "{text}");
    }
    let (out, printed) = on_term(&k, &u, "(say hi)@io.term@sys.task", &[]).await;
    assert_eq!((out.unwrap(), printed.as_str()), (None, "hi"));
    let (out, printed) = on_term(
        &k,
        &u,
        "(prs.str `(say hi)@io.term`)@dat.proc@sys.task",
        &[],
    )
    .await;
    assert_eq!((out.unwrap(), printed.as_str()), (None, "hi"));
    // A value that looks like a sys.task command but is none is reported.
    for text in [
        "(prs.str `{task.lop:1}`)@dat.proc@sys.task",
        "(prs.str `get.alll`)@dat.proc@sys.task",
    ] {
        assert_eq!(
            run(&k, &u, text).await.unwrap_err().code(),
            "cmd.unknown",
            "{text}"
        );
    }
    let e = run(&k, &u, "(prs.str `(sum [1 2)`)@dat.proc@sys.task")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "arg.bad");
}

#[tokio::test]
async fn anything_else_is_an_unknown_command() {
    let (k, u) = kernel();
    for text in [
        "5@sys.task",
        "{a:1}@sys.task",
        "[1 2]@sys.task",
        "task.foo@sys.task",
        "{task.lop:1}@sys.task",
        "{a:(sum [1 2])@math.calc}@sys.task",
        "get.foo@sys.task",
        "-@sys.task",
    ] {
        let e = run(&k, &u, text).await.unwrap_err();
        assert_eq!(e.code(), "cmd.unknown", "{text}");
        assert_eq!(e.get("serv"), Some(&Unit::str("sys.task")));
    }
    // A message that becomes a command once evaluated is one.
    let e = run(&k, &u, "((fst [kill])@dat.proc 99999)@sys.task")
        .await
        .unwrap_err();
    assert_eq!(e.message(), "no task 99999");
    // The kernel's commands work on the raw service too.
    assert_eq!(
        run(&k, &u, "help.name@sys.task").await.unwrap(),
        Some(p("`sys.task`"))
    );
}

#[tokio::test]
async fn try_turns_errors_into_values() {
    let (k, u) = kernel();
    let out = run(&k, &u, "(task.try (div (1 0))@math.calc)@sys.task")
        .await
        .unwrap()
        .unwrap();
    let e = Error::from_unit(&out).unwrap();
    assert_eq!(e.code(), "math.div0");
    assert_eq!(
        run(&k, &u, "(task.try (sum [1 2])@math.calc)@sys.task")
            .await
            .unwrap(),
        Some(p("3"))
    );
    let out = run(&k, &u, "(task.try 5)@sys.task").await.unwrap().unwrap();
    assert_eq!(Error::from_unit(&out).unwrap().code(), "cmd.unknown");
    let (out, _) = on_term(&k, &u, "(task.try (say x)@io.term)@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None);
    // No terminal and the end of input pass through.
    assert_eq!(
        run(&k, &u, "(task.try (say x)@io.term)@sys.task")
            .await
            .unwrap_err()
            .code(),
        "term.none"
    );
    let (out, _) = on_term(&k, &u, "(task.try (inp x)@io.term)@sys.task", &[]).await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
}

#[tokio::test]
async fn listings() {
    let (k, u) = kernel();
    assert_eq!(
        run(&k, &u, "get.run@sys.task").await.unwrap(),
        Some(p("{id:0 name:- usr:admin par.id:-}"))
    );
    assert_eq!(
        run(&k, &u, "get.all@sys.task").await.unwrap(),
        Some(p("[]"))
    );
    assert_eq!(
        run(&k, &u, "get.tree@sys.task").await.unwrap(),
        Some(p("[]"))
    );
    let call = spawn_call(&k, &u, None, "get.run@sys.task");
    let id = call.id;
    assert_eq!(
        call.outcome().await.unwrap(),
        Some(p(&format!("{{id:{id} name:msg usr:admin par.id:-}}")))
    );

    let t = TestTerminal::new();
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "{task.loop:(task.loop {say:x}@io.term)@sys.task}@sys.task",
    );
    let msg = call.id;
    wait_for("two loops", || {
        k.tasks().iter().filter(|t| t.name == "task.loop").count() == 2
    })
    .await;
    let tasks = k.tasks();
    let outer = named(&tasks, "task.loop", Some(msg)).id;
    let inner = named(&tasks, "task.loop", Some(outer)).id;
    assert_eq!(
        run(&k, &u, "get.tree@sys.task").await.unwrap(),
        Some(p(&format!(
            "[{{id:{msg} name:msg usr:admin child:[{{id:{outer} name:task.loop usr:admin \
             child:[{{id:{inner} name:task.loop usr:admin child:-}}]}}]}}]"
        )))
    );
    let all = format!(
        "[{{id:{msg} name:msg usr:admin par.id:-}} {{id:{outer} name:task.loop usr:admin par.id:{msg}}} \
         {{id:{inner} name:task.loop usr:admin par.id:{outer}}}]"
    );
    assert_eq!(
        run(&k, &u, "get.all@sys.task").await.unwrap(),
        Some(p(&all))
    );
    let whole = run(&k, &u, "get@sys.task").await.unwrap().unwrap();
    let whole = whole.as_map().unwrap();
    assert_eq!(
        whole.keys().cloned().collect::<Vec<_>>(),
        vec![p("run"), p("all"), p("tree")]
    );
    assert_eq!(whole.get_str("all"), Some(&p(&all)));

    // A user without a registered name shows as the key's fingerprint.
    let other = Keypair::generate(KeyKind::User, "eve", &mut rand::rngs::OsRng).unwrap();
    let run_row = run(&k, &other, "get.run@sys.task").await.unwrap().unwrap();
    assert_eq!(
        run_row.as_map().unwrap().get_str("usr"),
        Some(&Unit::from(other.public().fingerprint()))
    );

    run(&k, &u, &format!("(kill {msg})@sys.task"))
        .await
        .unwrap();
    assert_eq!(call.outcome().await.unwrap_err().code(), "killed");
}

fn seed_program(path: &str) -> Unit {
    let seed = parse(SEED).unwrap();
    let path = plexus_units::Path::parse_dotted(path).unwrap();
    seed.find(&path).unwrap().clone()
}

#[test]
fn the_seed_parses_and_has_the_programs() {
    let seed = parse(SEED).unwrap();
    assert_eq!(seed_program("txt.hello"), Unit::str("Hello, Plexus!☯"));
    for prog in [
        "hello",
        "lambda",
        "lambda.load",
        "init",
        "yes",
        "free",
        "test",
    ] {
        assert!(
            seed.find(&plexus_units::Path::parse_dotted(&format!("task.{prog}")).unwrap())
                .is_some(),
            "task.{prog}"
        );
    }
    // Printing it back and parsing again gives the same store.
    assert_eq!(parse(&to_text(&seed)).unwrap(), seed);
}

#[tokio::test]
async fn store_program_hello() {
    let (k, u) = kernel();
    let (out, printed) = on_term(&k, &u, "(load @task.hello)@io.store@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "Hello, Plexus!☯\n");
    // The program unit sent to sys.task directly does the same.
    let t = TestTerminal::new();
    let term: Arc<dyn Terminal> = t.clone();
    let cx = k.context(u.public(), [0; 32], Some(term), 0);
    assert_eq!(
        cx.send("sys.task", None, seed_program("task.hello"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(t.output(), "Hello, Plexus!☯\n");
}

#[tokio::test]
async fn store_program_lambda_shell() {
    let (k, u) = kernel();
    let lines = [
        "(sum [1 2])@math.calc",
        "hello",
        "`two words`",
        "(say hi)@io.term",
        "{say:there nl:t}@io.term",
        "{task.lop:1}",
        "[1 2",
        "(lin.int (1 40))@dat.gen",
        "(div (1 0))@math.calc",
        "{a:(sum [1 1])@math.calc}",
        "(load @task.hello)@io.store",
        "(load @task.hello)@io.store@sys.task",
        "get.run@sys.task",
        "",
    ];
    let (out, printed) =
        on_term(&k, &u, "(load @task.lambda.load)@io.store@sys.task", &lines).await;
    let e = out.unwrap_err();
    assert_eq!(e.code(), "term.failed");
    assert_eq!(e.get("eof"), Some(&Unit::Bool(true)));
    let mut want = String::new();
    want.push_str(
        "Welcome to the λ shell! Type a unit and press Enter; Ctrl-D ends the shell.\n\
         Try: {say:help.info@io.term nl:t}@io.term   (sum [1 2])@math.calc   get.all@sys.task\n",
    );
    let printed_lines: Vec<&str> = printed.lines().collect();
    assert!(printed.starts_with(&want), "{printed}");
    let rest = &printed[want.len()..];
    let expect_in_order = [
        "λ (sum [1 2])@math.calc\n3\n",
        "λ hello\nhello\n",
        "λ `two words`\n`two words`\n",
        "λ (say hi)@io.term\nhiλ {say:there nl:t}@io.term\nthere\nλ {task.lop:1}\n{err:cmd.unknown msg:`sys.task does not understand {ta`.. serv:sys.task}\n",
        "λ [1 2\n{err:arg.bad msg:",
        "λ (lin.int (1 40))@dat.gen\n[1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 ..]\n",
        "λ (div (1 0))@math.calc\n{err:math.div0 msg:",
        "λ {a:(sum [1 1])@math.calc}\n{a:2}\n",
        // A line is parsed and run: a loaded program is a value, until sent to sys.task.
        "λ (load @task.hello)@io.store\n{say:(load @txt.hello)@io.store nl:t}@io.term\n",
        "λ (load @task.hello)@io.store@sys.task\nHello, Plexus!☯\n",
        "λ get.run@sys.task\n{id:",
        "name:task.loop usr:admin par.id:",
        "λ \n{err:arg.bad msg:",
    ];
    let mut at = 0;
    for piece in expect_in_order {
        match rest[at..].find(piece) {
            Some(i) => at += i + piece.len(),
            None => panic!("missing {piece:?} after {:?} in\n{rest}", &rest[..at]),
        }
    }
    assert!(rest.ends_with("λ "), "{rest}");
    assert!(printed_lines.len() > 10);
    assert_eq!(k.tasks(), vec![]);

    // The loop alone ends at once without input.
    let (out, printed) = on_term(&k, &u, "(load @task.lambda)@io.store@sys.task", &[]).await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    assert_eq!(printed, "λ ");
}

#[tokio::test]
async fn store_program_init_greets_then_runs_the_shell() {
    let (k, u) = kernel();
    let (out, printed) = on_term(
        &k,
        &u,
        "(load @task.init)@io.store@sys.task",
        &["(sum [2 2])@math.calc"],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    assert!(
        printed.starts_with("Hello, Plexus!☯\nWelcome to the λ shell!"),
        "{printed}"
    );
    assert!(
        printed.ends_with("λ (sum [2 2])@math.calc\n4\nλ "),
        "{printed}"
    );
}

#[tokio::test]
async fn store_program_yes_runs_until_stopped() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    let call = spawn_call(
        &k,
        &u,
        Some(t.clone()),
        "(load @task.yes)@io.store@sys.task",
    );
    wait_for("yes", || t.output().len() > 20).await;
    assert!(t.output().starts_with("yes\nyes\nyes\n"));
    run(&k, &u, &format!("(kill {})@sys.task", call.id))
        .await
        .unwrap();
    assert_eq!(call.outcome().await.unwrap_err().code(), "killed");
    assert_eq!(k.tasks(), vec![]);
}

#[tokio::test]
async fn store_programs_free_and_test() {
    let (k, u) = kernel();
    let (out, printed) = on_term(&k, &u, "(load @task.free)@io.store@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None);
    assert!(
        printed.starts_with("free memory: ") && printed.ends_with(" MiB\n"),
        "{printed}"
    );
    let (out, printed) = on_term(&k, &u, "(load @task.test)@io.store@sys.task", &[]).await;
    assert_eq!(out.unwrap(), None, "{printed}");
    assert_eq!(
        printed,
        "math.calc  {mul:[2 {inc:4} (sub (10 3))]} = 70\n\
         dat.gen    (lin.int (-2 2)) = [-2 -1 0 1 2]\n\
         dat.proc   (rev [1 2 3]) = [3 2 1]\n\
         sys.task   {sum:[4 5] task:[math.calc]} = {sum:[4 5] task:[math.calc] msg:9}\n\
         gfx.2d     {fill:#102030 size:(4 2)} = {size:(4 2) fmt:rgb.rle img:[(8 1056816)]}\n"
    );
}

const WORDS: &[&str] = &[
    "task.loop",
    "task.que",
    "task.stk",
    "task.sep",
    "task.sim",
    "task.try",
    "task",
    "msg",
    "kill",
    "get",
    "get.run",
    "get.all",
    "get.tree",
    "say",
    "inp",
    "math.calc",
    "io.term",
    "sum",
    "div",
    "",
];

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        (-2i64..30).prop_map(Unit::int),
        any::<i64>().prop_map(Unit::int),
        arb_word(WORDS),
    ];
    arb_message(
        leaf,
        WORDS,
        &["sys.task", "io.term", "math.calc", "dat.proc"],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_messages_never_panic(msg in arb_unit()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (k, u) = kernel();
            let t = TestTerminal::with_lines(&["1", "(sum [1 2])@math.calc"]);
            let term: Arc<dyn Terminal> = t;
            let cx = k.context(u.public(), [0; 32], Some(term), 0);
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                cx.send("sys.task", None, msg.clone()),
            )
            .await;
            for t in k.tasks() {
                let _ = k.kill(t.id);
            }
        });
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}
