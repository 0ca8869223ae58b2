//! Evaluation rules of docs/evaluation.md, checked with small test services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{
    code, BoxFuture, Cx, Delivery, Error, Help, Kernel, NodeInfo, Outcome, Policy, Service,
};
use plexus_units::{parse, to_text, Unit};

fn help(name: &'static str) -> Help {
    Help {
        name,
        info: "test service",
        tut: vec![],
        man: vec![],
    }
}

/// Records every message it receives and returns it.
struct Rec(Help, Arc<Mutex<Vec<String>>>);
impl Service for Rec {
    fn help(&self) -> &Help {
        &self.0
    }
    fn call<'a>(&'a self, _cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.1.lock().unwrap().push(to_text(&msg));
            Ok(Some(msg))
        })
    }
}

/// Counts its calls and returns the count.
struct Count(Help, AtomicU64);
impl Service for Count {
    fn help(&self) -> &Help {
        &self.0
    }
    fn call<'a>(&'a self, _cx: &'a Cx, _msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            Ok(Some(Unit::int(
                self.1.fetch_add(1, Ordering::SeqCst) as i64 + 1,
            )))
        })
    }
}

/// Returns its message as received (raw delivery).
struct Raw(Help);
impl Service for Raw {
    fn help(&self) -> &Help {
        &self.0
    }
    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }
    fn call<'a>(&'a self, _cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { Ok(Some(msg)) })
    }
}

/// Fails, has no value, sleeps forever, or calls itself, depending on its name.
struct Odd(Help);
impl Service for Odd {
    fn help(&self) -> &Help {
        &self.0
    }
    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.0.name {
                "fail" => Err(Error::bad_argument("always fails")),
                "void" => Ok(None),
                "sleep" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(None)
                }
                "self" => cx.send("self", None, msg).await,
                "spawner" => {
                    // Starts a child that sleeps forever, then waits for it.
                    let kernel = cx.kernel().clone();
                    let child =
                        kernel.spawn_task(Some(cx.task()), "child", *cx.author(), |_| async {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok(None)
                        });
                    child.outcome().await
                }
                _ => Ok(Some(msg)),
            }
        })
    }
}

struct World {
    kernel: Kernel,
    admin: Keypair,
    log: Arc<Mutex<Vec<String>>>,
}

fn world() -> World {
    let admin = Keypair::generate(KeyKind::User, "admin", &mut rand_core::OsRng).unwrap();
    let kernel = Kernel::new(
        NodeInfo {
            id: "id1".into(),
            name: "alpha".into(),
        },
        admin.public(),
        "admin",
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    kernel
        .register(
            Arc::new(Rec(help("rec"), log.clone())),
            None,
            Policy::Anyone,
        )
        .unwrap();
    kernel
        .register(
            Arc::new(Count(help("count"), AtomicU64::new(0))),
            None,
            Policy::Anyone,
        )
        .unwrap();
    kernel
        .register(Arc::new(Raw(help("raw"))), None, Policy::Anyone)
        .unwrap();
    for name in ["fail", "void", "sleep", "self", "spawner"] {
        kernel
            .register(Arc::new(Odd(help(name))), None, Policy::Anyone)
            .unwrap();
    }
    kernel
        .register(Arc::new(Odd(help("mine"))), None, Policy::Owner)
        .unwrap();
    kernel
        .register(Arc::new(Odd(help("members"))), None, Policy::Registered)
        .unwrap();
    World { kernel, admin, log }
}

impl World {
    async fn run_as(&self, who: &Keypair, text: &str) -> Outcome {
        let cx = self.kernel.context(who.public(), [0; 32], None, 0);
        cx.run(parse(text).unwrap()).await
    }
    async fn run(&self, text: &str) -> Outcome {
        self.run_as(&self.admin, text).await
    }
    async fn value(&self, text: &str) -> String {
        match self.run(text).await {
            Ok(Some(v)) => to_text(&v),
            Ok(None) => "nothing".into(),
            Err(e) => format!("error {}", e.code()),
        }
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn streams_run_depth_first_left_to_right() {
    let w = world();
    assert_eq!(
        w.value("[a@rec (b@rec c@rec) {k:d@rec e@rec: f@rec}]")
            .await,
        "[a (b c) {k:d e:f}]"
    );
    assert_eq!(w.log(), ["a", "b", "c", "d", "e", "f"]);
}

#[tokio::test]
async fn chains_send_results_onward() {
    let w = world();
    assert_eq!(w.value("x@rec@rec@rec").await, "x");
    assert_eq!(w.log(), ["x", "x", "x"]);
    // The inner call's result, not the inner stream, reaches the outer service.
    assert_eq!(w.value("[x@count]@rec").await, "[1]");
}

#[tokio::test]
async fn each_stream_runs_once_however_many_refs_name_it() {
    let w = world();
    assert_eq!(
        w.value("{a:x@count b:@a c:[@a @b]}@rec").await,
        "{a:1 b:1 c:[1 1]}"
    );
    // A ref before its target: the target still runs once.
    assert_eq!(w.value("{b:@a a:x@count}@rec").await, "{b:2 a:2}");
}

#[tokio::test]
async fn refs_resolve_in_the_message_being_handled() {
    let w = world();
    assert_eq!(w.value("{x:5 y:@x}").await, "{x:5 y:5}");
    assert_eq!(w.value("{x:5 y:[@x.0 @x]}").await, "{x:5 y:[@x.0 5]}");
    // A path the message does not have stays a ref, for services that take paths.
    assert_eq!(w.value("(load @txt.hello)@rec").await, "(load @txt.hello)");
    assert_eq!(
        w.value("{p:(1 2) q:@p.1 r:@p.2}").await,
        "{p:(1 2) q:2 r:@p.2}"
    );
    assert_eq!(w.value("{a:@b b:@a}").await, "error ref.cycle");
    assert_eq!(w.value("{a:[1 @a]}").await, "error ref.cycle");
}

#[tokio::test]
async fn raw_services_receive_the_message_as_written() {
    let w = world();
    assert_eq!(w.value("(x@count @y)@raw").await, "(x@count @y)");
    assert_eq!(w.value("[(x@rec y)@raw]").await, "[(x@rec y)]");
    assert!(w.log().is_empty());
}

#[tokio::test]
async fn errors_stop_the_evaluation_and_reach_the_caller() {
    let w = world();
    let err = w.run("[a@rec x@fail b@rec]").await.unwrap_err();
    assert_eq!(err.code(), code::BAD_ARGUMENT);
    assert_eq!(w.log(), ["a"], "nothing after the error ran");
    let err = w.run("x@nowhere").await.unwrap_err();
    assert_eq!(err.code(), code::UNKNOWN_SERVICE);
    assert_eq!(err.get("serv"), Some(&Unit::str("nowhere")));
    assert_eq!(
        w.run("x@rec:beta").await.unwrap_err().code(),
        code::UNKNOWN_NODE
    );
    assert_eq!(w.value("x@rec:alpha").await, "x");
    assert_eq!(w.value("x@rec:id1").await, "x");
}

#[tokio::test]
async fn calls_without_value_are_nothing_at_the_root_and_none_inside() {
    let w = world();
    assert_eq!(w.value("x@void").await, "nothing");
    assert_eq!(w.value("[x@void]").await, "[-]");
}

#[tokio::test]
async fn every_service_answers_serv_and_help() {
    let w = world();
    let serv = w.value("serv@count").await;
    assert!(serv.starts_with("[rec count raw fail"), "{serv}");
    assert_eq!(w.value("help.name@count").await, "count");
    assert_eq!(w.value("help.info@count").await, "`test service`");
    assert_eq!(
        w.value("help@count").await,
        "{name:count info:`test service` tut:[] man:{}}"
    );
    assert_eq!(w.value("help.nonsense@count").await, "error cmd.unknown");
}

#[tokio::test]
async fn policies_admit_owner_registered_or_anyone() {
    let w = world();
    let stranger = Keypair::generate(KeyKind::User, "eve", &mut rand_core::OsRng).unwrap();
    assert!(w.run("x@mine").await.is_ok());
    assert_eq!(
        w.run_as(&stranger, "x@mine").await.unwrap_err().code(),
        code::DENIED
    );
    assert_eq!(
        w.run_as(&stranger, "x@members").await.unwrap_err().code(),
        code::DENIED
    );
    w.kernel.register_user(stranger.public(), "eve").unwrap();
    assert!(w.run_as(&stranger, "x@members").await.is_ok());
    assert!(w.run_as(&stranger, "x@rec").await.is_ok());
    assert!(w.kernel.register_user(stranger.public(), "eve2").is_err());
}

#[tokio::test]
async fn runaway_recursion_is_a_limit_error() {
    let w = world();
    assert_eq!(w.run("x@self").await.unwrap_err().code(), code::LIMIT);
}

#[tokio::test]
async fn kill_stops_a_task_its_children_and_answers_waiters() {
    let w = world();
    let kernel = w.kernel.clone();
    let author = w.admin.public();
    let handle = kernel.spawn_task(None, "msg", author, {
        let kernel = kernel.clone();
        move |task| async move {
            let cx = kernel.context(author, [0; 32], None, task);
            cx.run(parse("x@spawner").unwrap()).await
        }
    });
    // Wait until the child exists.
    for _ in 0..100 {
        if kernel.tasks().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tasks = kernel.tasks();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert_eq!(tasks[1].parent, Some(handle.id));
    assert_eq!(tasks[0].children, vec![tasks[1].id]);
    kernel.kill(handle.id).unwrap();
    let err = handle.outcome().await.unwrap_err();
    assert_eq!(err.code(), code::KILLED);
    for _ in 0..100 {
        if kernel.tasks().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(kernel.tasks().is_empty(), "{:?}", kernel.tasks());
    assert_eq!(kernel.kill(12345).unwrap_err().code(), code::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_call_does_not_block_others() {
    let w = world();
    let kernel = w.kernel.clone();
    let author = w.admin.public();
    let sleeper = kernel.spawn_task(None, "msg", author, {
        let kernel = kernel.clone();
        move |task| async move {
            kernel
                .context(author, [0; 32], None, task)
                .run(parse("x@sleep").unwrap())
                .await
        }
    });
    let quick = tokio::time::timeout(Duration::from_secs(10), w.run("[1 x@count]")).await;
    assert_eq!(quick.unwrap().unwrap(), Some(parse("[1 1]").unwrap()));
    sleeper.abort();
}

#[tokio::test]
async fn duplicate_and_invalid_service_names_are_refused() {
    let w = world();
    assert!(w
        .kernel
        .register(Arc::new(Raw(help("rec"))), None, Policy::Anyone)
        .is_err());
    assert!(w
        .kernel
        .register(Arc::new(Raw(help("bad name"))), None, Policy::Anyone)
        .is_err());
}
