//! Routing of streams to other nodes through a [`Remote`]: pins, missing services, session
//! scope, depth carried across nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use plexus_identity::{KeyKind, Keypair, PublicKey};
use plexus_kernel::{
    code, BoxFuture, Cx, Error, Help, Kernel, NodeInfo, NodeRef, Outcome, Policy, Remote, Service,
};
use plexus_units::{parse, Unit};

fn help(name: &'static str) -> Help {
    Help {
        name,
        info: "test service",
        tut: vec![],
        man: vec![],
    }
}

/// Answers `[node-name message]`.
struct Where(Help, bool);
impl Service for Where {
    fn help(&self) -> &Help {
        &self.0
    }
    fn session_scoped(&self) -> bool {
        self.1
    }
    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let node = Unit::str(cx.kernel().node().name.as_str());
            Ok(Some(Unit::List(vec![node, msg])))
        })
    }
}

/// Two kernels, `a` and `b`, joined by an in-process router: `far` exists only on `b`.
struct Pair {
    a: Kernel,
    b: Kernel,
    calls: Mutex<Vec<(String, String)>>,
}

struct Router(Arc<Pair>, &'static str);
impl Remote for Router {
    fn route(
        &self,
        service: &str,
        node: Option<&str>,
        local: bool,
    ) -> Result<Option<NodeRef>, Error> {
        let target = match node {
            Some(n) if n == self.1 => return Ok(None),
            Some(n @ ("a" | "b")) => n,
            Some(n) => {
                return Err(Error::new(code::UNKNOWN_NODE, format!("no node {n}")));
            }
            None if local => return Ok(None),
            None if service == "far" => "b",
            None => return Err(Error::new(code::UNKNOWN_SERVICE, "nowhere")),
        };
        Ok(Some(NodeRef {
            id: target.to_owned(),
            name: target.to_owned(),
        }))
    }
    fn call<'a>(
        &'a self,
        cx: &'a Cx,
        node: &'a NodeRef,
        service: &'a str,
        msg: Unit,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.0
                .calls
                .lock()
                .unwrap()
                .push((node.name.clone(), service.to_owned()));
            let kernel = if node.name == "a" {
                &self.0.a
            } else {
                &self.0.b
            };
            let there = kernel
                .context(*cx.author(), *cx.root_hash(), None, 0)
                .at_depth(cx.depth());
            there.send_here(service, msg).await
        })
    }
}

fn setup() -> (Arc<Pair>, PublicKey) {
    let key = Keypair::generate(KeyKind::User, "u", &mut rand_core::OsRng).unwrap();
    let kernel = |n: &str| {
        let k = Kernel::new(
            NodeInfo {
                id: format!("{n}-id"),
                name: n.to_owned(),
            },
            key.public(),
            "u",
        );
        k.register(Arc::new(Where(help("where"), false)), None, Policy::Anyone)
            .unwrap();
        k.register(Arc::new(Where(help("term"), true)), None, Policy::Anyone)
            .unwrap();
        k
    };
    let pair = Arc::new(Pair {
        a: kernel("a"),
        b: kernel("b"),
        calls: Mutex::default(),
    });
    pair.b
        .register(Arc::new(Where(help("far"), false)), None, Policy::Anyone)
        .unwrap();
    assert!(pair.a.set_remote(Arc::new(Router(pair.clone(), "a"))));
    assert!(pair.b.set_remote(Arc::new(Router(pair.clone(), "b"))));
    (pair, key.public())
}

async fn run(pair: &Pair, key: PublicKey, text: &str) -> Outcome {
    pair.a
        .context(key, [0; 32], None, 0)
        .run(parse(text).unwrap())
        .await
}

#[tokio::test]
async fn local_services_stay_local() {
    let (pair, key) = setup();
    let out = run(&pair, key, "x@where").await.unwrap();
    assert_eq!(out, Some(parse("[a x]").unwrap()));
    assert!(pair.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_pin_sends_the_stream_to_that_node() {
    let (pair, key) = setup();
    let out = run(&pair, key, "x@where:b").await.unwrap();
    assert_eq!(out, Some(parse("[b x]").unwrap()));
    let out = run(&pair, key, "x@where:a").await.unwrap();
    assert_eq!(out, Some(parse("[a x]").unwrap()));
    assert_eq!(
        *pair.calls.lock().unwrap(),
        vec![("b".to_owned(), "where".to_owned())]
    );
}

#[tokio::test]
async fn a_missing_service_goes_where_it_is_provided() {
    let (pair, key) = setup();
    let out = run(&pair, key, "[y@far x@where]").await.unwrap();
    assert_eq!(out, Some(parse("[[b y] [a x]]").unwrap()));
}

#[tokio::test]
async fn the_message_is_evaluated_on_the_target_node() {
    let (pair, key) = setup();
    // The inner stream runs on b, where `far` is local.
    let out = run(&pair, key, "[q@where]@far").await.unwrap();
    assert_eq!(out, Some(parse("[b [[b q]]]").unwrap()));
}

#[tokio::test]
async fn session_scoped_services_ignore_pins() {
    let (pair, key) = setup();
    let out = run(&pair, key, "x@term:b").await.unwrap();
    assert_eq!(out, Some(parse("[a x]").unwrap()));
    let err = run(&pair, key, "x@term:zz").await.unwrap_err();
    assert_eq!(err.code(), code::UNKNOWN_NODE);
}

#[tokio::test]
async fn unknown_nodes_and_services_are_errors() {
    let (pair, key) = setup();
    let err = run(&pair, key, "x@where:zz").await.unwrap_err();
    assert_eq!(err.code(), code::UNKNOWN_NODE);
    let err = run(&pair, key, "x@nothing").await.unwrap_err();
    assert_eq!(err.code(), code::UNKNOWN_SERVICE);
}

#[tokio::test]
async fn a_kernel_without_remote_refuses_other_nodes() {
    let key = Keypair::generate(KeyKind::User, "u", &mut rand_core::OsRng).unwrap();
    let k = Kernel::new(
        NodeInfo {
            id: "i".into(),
            name: "solo".into(),
        },
        key.public(),
        "u",
    );
    k.register(Arc::new(Where(help("where"), false)), None, Policy::Anyone)
        .unwrap();
    let cx = k.context(key.public(), [0; 32], None, 0);
    let err = cx.run(parse("x@where:other").unwrap()).await.unwrap_err();
    assert_eq!(err.code(), code::UNKNOWN_NODE);
    assert!(err.to_string().contains("other"), "{err}");
    assert!(!k.set_remote(Arc::new(NoRemote)) || k.remote().is_some());
}

struct NoRemote;
impl Remote for NoRemote {
    fn route(&self, _: &str, _: Option<&str>, _: bool) -> Result<Option<NodeRef>, Error> {
        Ok(None)
    }
    fn call<'a>(
        &'a self,
        _: &'a Cx,
        _: &'a NodeRef,
        _: &'a str,
        _: Unit,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Ok(None) })
    }
}

#[tokio::test]
async fn depth_is_carried_across_nodes() {
    let (pair, key) = setup();
    // A call that arrives from another node at the limit cannot go further.
    let cx = pair
        .a
        .context(key, [0; 32], None, 0)
        .at_depth(plexus_kernel::MAX_CALL_DEPTH);
    let err = cx.run(parse("x@where:b").unwrap()).await.unwrap_err();
    assert_eq!(err.code(), code::LIMIT);
    let cx = cx.at_depth(plexus_kernel::MAX_CALL_DEPTH - 2);
    let out = cx.run(parse("x@where:b").unwrap()).await.unwrap();
    assert_eq!(out, Some(parse("[b x]").unwrap()));
}
