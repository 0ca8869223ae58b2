//! io.term: printing in every display form, reading lines and keys, sizes, images, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_identity::Keypair;
use plexus_kernel::{BoxFuture, Error, Kernel, Policy, Terminal};
use plexus_protocol::{TermRequest, TermResponse};
use plexus_services::testing::{bare_kernel, check_examples, eval_text, TestTerminal};
use plexus_services::{dat_proc, gfx_2d, io_term, math_calc, sys_task};
use plexus_units::testing::{arb_message, arb_word};
use plexus_units::{parse, Unit};
use proptest::prelude::*;

fn kernel() -> (Kernel, Keypair) {
    let (k, admin) = bare_kernel();
    for s in [
        io_term::service(),
        dat_proc::service(),
        gfx_2d::service(),
        math_calc::service(),
        sys_task::service(),
    ] {
        k.register(s, None, Policy::Anyone).unwrap();
    }
    (k, admin)
}

fn p(text: &str) -> Unit {
    parse(text).unwrap()
}

/// Runs `text` on a fresh TestTerminal answering reads with `lines`; → (outcome, output).
async fn on_term(text: &str, lines: &[&str]) -> (Result<Option<Unit>, Error>, String) {
    let (k, u) = kernel();
    let t = TestTerminal::with_lines(lines);
    let term: Arc<dyn Terminal> = t.clone();
    let out = eval_text(&k, &u, Some(term), text).await;
    (out, t.output())
}

/// Prints `text` and returns the output, checking the call has no value.
async fn said(text: &str) -> String {
    let (out, printed) = on_term(text, &[]).await;
    assert_eq!(out.unwrap(), None, "{text}");
    printed
}

/// A terminal with scripted answers that records every request.
#[derive(Default)]
struct ScriptTerm {
    answers: Mutex<VecDeque<Result<TermResponse, Error>>>,
    requests: Mutex<Vec<TermRequest>>,
}

impl ScriptTerm {
    fn new(answers: Vec<Result<TermResponse, Error>>) -> Arc<ScriptTerm> {
        Arc::new(ScriptTerm {
            answers: Mutex::new(answers.into()),
            requests: Mutex::default(),
        })
    }

    fn requests(&self) -> Vec<TermRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Terminal for ScriptTerm {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>> {
        Box::pin(async move {
            self.requests.lock().unwrap().push(request);
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(TermResponse::Done))
        })
    }
}

async fn scripted(
    text: &str,
    answers: Vec<Result<TermResponse, Error>>,
) -> (Result<Option<Unit>, Error>, Vec<TermRequest>) {
    let (k, u) = kernel();
    let t = ScriptTerm::new(answers);
    let term: Arc<dyn Terminal> = t.clone();
    let out = eval_text(&k, &u, Some(term), text).await;
    (out, t.requests())
}

#[tokio::test]
async fn help_examples_hold() {
    let (k, u) = kernel();
    assert_eq!(
        check_examples(&k, &u, "io.term").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn without_a_terminal_every_command_is_term_none() {
    let (k, u) = kernel();
    for text in [
        "(say hi)@io.term",
        "inp@io.term",
        "get@io.term",
        "hi@io.term",
        "cls@io.term",
    ] {
        let e = eval_text(&k, &u, None, text).await.unwrap_err();
        assert_eq!(e.code(), "term.none", "{text}");
    }
    // The kernel's own commands still work.
    assert_eq!(
        eval_text(&k, &u, None, "help.name@io.term").await.unwrap(),
        Some(p("`io.term`"))
    );
}

#[tokio::test]
async fn say_prints_strs_raw_and_the_rest_canonical() {
    assert_eq!(said("(say hi)@io.term").await, "hi");
    assert_eq!(said("(say `two words\\n`)@io.term").await, "two words\n");
    assert_eq!(said("{say:`a b` nl:t}@io.term").await, "a b\n");
    assert_eq!(said("{say:`a b` nl:f}@io.term").await, "a b");
    assert_eq!(
        said("(say [a `b c` 1.5 (x -)])@io.term").await,
        "[a `b c` 1.5 (x -)]"
    );
    assert_eq!(said("(say ``)@io.term").await, "");
    assert_eq!(said("(say `123`)@io.term").await, "123");
    // The default: anything that is no command is said whole, typos included.
    assert_eq!(said("hello@io.term").await, "hello");
    assert_eq!(said("sya@io.term").await, "sya");
    assert_eq!(said("get.foo@io.term").await, "get.foo");
    assert_eq!(said("inp.key.async@io.term").await, "inp.key.async");
    assert_eq!(said("42@io.term").await, "42");
    assert_eq!(said("[1 2 3]@io.term").await, "[1 2 3]");
    assert_eq!(said("(x y)@io.term").await, "(x y)");
    assert_eq!(said("{a:1 nl:t}@io.term").await, "{a:1 nl:t}");
    assert_eq!(said("x\"00ff\"@io.term").await, "x\"00ff\"");
    // Nested streams are evaluated first.
    assert_eq!(
        said("{say:(sum [1 2])@math.calc nl:t}@io.term").await,
        "3\n"
    );
    assert_eq!(said("(sum [1 2])@math.calc@io.term").await, "3");
}

#[tokio::test]
async fn saying_none_prints_nothing() {
    assert_eq!(said("{say:- nl:t}@io.term").await, "");
    assert_eq!(said("(say -)@io.term").await, "");
    assert_eq!(said("-@io.term").await, "");
    // A call without a value reads as none.
    assert_eq!(said("{say:(say hi)@io.term nl:t}@io.term").await, "hi");
}

#[tokio::test]
async fn short_and_nice_forms() {
    assert_eq!(
        said("{say:[abcdef 2 3 4 5] shrt:3 nl:t}@io.term").await,
        "[abc.. 2 3 ..]\n"
    );
    // A top-level Str keeps its quotes in the short form.
    assert_eq!(
        said("{say:`hello world` shrt:32}@io.term").await,
        "`hello world`"
    );
    assert_eq!(said("{say:12345678 shrt:4}@io.term").await, "1234..");
    // vnix's example: six lines.
    assert_eq!(
        said("{say:[x {k:v}] nice:2 nl:t}@io.term").await,
        "[\n  x\n  {\n    k:v\n  }\n]\n"
    );
    assert_eq!(
        said("{say:{a:[1 2]} nice:1}@io.term").await,
        "{\n a:[\n  1\n  2\n ]\n}"
    );
    for bad in [
        "{say:x shrt:2 nice:2}@io.term",
        "{say:x nice:65}@io.term",
        "{say:x shrt:-1}@io.term",
        "{say:x shrt:a}@io.term",
        "{say:x nl:yes}@io.term",
    ] {
        let (out, printed) = on_term(bad, &[]).await;
        assert_eq!(out.unwrap_err().code(), "arg.bad", "{bad}");
        assert_eq!(printed, "", "{bad}");
    }
}

#[tokio::test]
async fn say_fmt_prints_back_to_back() {
    assert_eq!(said("(say.fmt [a 1 `b c` [x]])@io.term").await, "a1b c[x]");
    assert_eq!(said("(say.fmt (a b))@io.term").await, "ab");
    assert_eq!(
        said("{say.fmt:[`1 + 2 = ` (sum [1 2])@math.calc] nl:t}@io.term").await,
        "1 + 2 = 3\n"
    );
    assert_eq!(
        said("{say.fmt:[abcdef [1 2 3]] shrt:2}@io.term").await,
        "ab..[1 2 ..]"
    );
    assert_eq!(
        said("{say.fmt:[[a] -] nice:1 nl:t}@io.term").await,
        "[\n a\n]\n"
    );
    assert_eq!(said("{say.fmt:[] nl:t}@io.term").await, "\n");
    let (out, _) = on_term("(say.fmt abc)@io.term", &[]).await;
    assert_eq!(out.unwrap_err().code(), "arg.bad");
}

#[tokio::test]
async fn nl_and_cls() {
    assert_eq!(said("nl@io.term").await, "\n");
    assert_eq!(said("cls@io.term").await, "<cls>");
}

#[tokio::test]
async fn inp_reads_lines() {
    let (out, printed) = on_term("(inp `name: `)@io.term", &["ada"]).await;
    assert_eq!(out.unwrap(), Some(Unit::str("ada")));
    assert_eq!(printed, "name: ada\n");
    let (out, printed) = on_term("inp@io.term", &["x y"]).await;
    assert_eq!(out.unwrap(), Some(Unit::str("x y")));
    assert_eq!(printed, "x y\n");
    // Typed text is always a Str, never parsed.
    let (out, _) = on_term("inp@io.term", &["123"]).await;
    assert_eq!(out.unwrap(), Some(p("`123`")));
    // An empty line is the empty Str.
    let (out, printed) = on_term("{inp:`> `}@io.term", &[""]).await;
    assert_eq!(out.unwrap(), Some(Unit::str("")));
    assert_eq!(printed, "> \n");
    // A prompt that is not a Str prints canonically.
    let (out, printed) = on_term("(inp [a `b c`])@io.term", &["z"]).await;
    assert_eq!(out.unwrap(), Some(Unit::str("z")));
    assert_eq!(printed, "[a `b c`]z\n");
    // lim keeps at most n characters.
    let (out, _) = on_term("{inp:`> ` lim:3 sct:t nl:f}@io.term", &["abcdef"]).await;
    assert_eq!(out.unwrap(), Some(Unit::str("abc")));
    for bad in [
        "{inp:x lim:-1}@io.term",
        "{inp:x sct:1}@io.term",
        "{inp:x nl:1}@io.term",
    ] {
        let (out, printed) = on_term(bad, &["a"]).await;
        assert_eq!(out.unwrap_err().code(), "arg.bad", "{bad}");
        assert_eq!(printed, "");
    }
}

#[tokio::test]
async fn inp_sends_prompt_secret_and_limit_and_keeps_the_limit_itself() {
    let (out, reqs) = scripted(
        "{inp:`pw: ` sct:t lim:2}@io.term",
        vec![Ok(TermResponse::Line(Some("λλλλ".into())))],
    )
    .await;
    assert_eq!(out.unwrap(), Some(Unit::str("λλ")));
    assert_eq!(
        reqs,
        vec![TermRequest::ReadLine {
            prompt: "pw: ".into(),
            secret: true,
            limit: Some(2)
        }]
    );
}

#[tokio::test]
async fn end_of_input_and_failures_are_errors() {
    let (out, printed) = on_term("(inp `x: `)@io.term", &[]).await;
    let e = out.unwrap_err();
    assert_eq!(e.code(), "term.failed");
    assert_eq!(e.get("eof"), Some(&Unit::Bool(true)));
    assert_eq!(printed, "x: ");
    let (out, _) = scripted(
        "inp@io.term",
        vec![Ok(TermResponse::Failed("interrupted".into()))],
    )
    .await;
    let e = out.unwrap_err();
    assert_eq!((e.code(), e.message()), ("term.failed", "interrupted"));
    let (out, _) = scripted(
        "inp@io.term",
        vec![Ok(TermResponse::Unsupported("no tty".into()))],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "term.unsupported");
    let (out, _) = scripted("inp@io.term", vec![Ok(TermResponse::Done)]).await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    let (out, _) = scripted(
        "(say hi)@io.term",
        vec![Err(Error::new("term.failed", "gone"))],
    )
    .await;
    assert_eq!(out.unwrap_err().message(), "gone");
    let (out, _) = scripted(
        "(say hi)@io.term",
        vec![Ok(TermResponse::Failed("broken pipe".into()))],
    )
    .await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    let (out, _) = scripted("get@io.term", vec![Ok(TermResponse::Done)]).await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
    let (out, _) = scripted("cls@io.term", vec![Ok(TermResponse::Key("x".into()))]).await;
    assert_eq!(out.unwrap_err().code(), "term.failed");
}

#[tokio::test]
async fn prompts_appear_once_and_in_order() {
    let (out, printed) = on_term(
        "{neg:(prs.str (inp `num:`)@io.term)@dat.proc}@math.calc",
        &["5"],
    )
    .await;
    assert_eq!(out.unwrap(), Some(Unit::int(-5)));
    assert_eq!(printed, "num:5\n");
    let (out, printed) = on_term(
        "{sub:[(prs.str (inp `a:`)@io.term)@dat.proc (prs.str (inp `b:`)@io.term)@dat.proc]}@math.calc",
        &["10", "3"],
    )
    .await;
    assert_eq!(out.unwrap(), Some(Unit::int(7)));
    assert_eq!(printed, "a:10\nb:3\n");
    // io.term's own message: the fields in text order, each once.
    let (out, printed) = on_term(
        "{say:(inp `first:`)@io.term nl:t shrt:(prs.str (inp `second:`)@io.term)@dat.proc}@io.term",
        &["hello", "2"],
    )
    .await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(printed, "first:hello\nsecond:2\nhe..\n");
}

#[tokio::test]
async fn inp_key_reads_keys() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    t.push_keys(&["UP", "a"]);
    let term: Arc<dyn Terminal> = t.clone();
    assert_eq!(
        eval_text(&k, &u, Some(term.clone()), "inp.key@io.term")
            .await
            .unwrap(),
        Some(Unit::str("UP"))
    );
    assert_eq!(
        eval_text(&k, &u, Some(term.clone()), "inp.key@io.term")
            .await
            .unwrap(),
        Some(Unit::str("a"))
    );
    let e = eval_text(&k, &u, Some(term), "inp.key@io.term")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "term.failed");
}

#[tokio::test]
async fn get_reports_the_real_size() {
    let (out, printed) = on_term("get@io.term", &[]).await;
    assert_eq!(out.unwrap(), Some(p("{mode:txt res:{txt:(80 24) gfx:-}}")));
    assert_eq!(printed, "");
    let size = || {
        vec![Ok(TermResponse::Size {
            cols: 120,
            rows: 40,
            width_px: 1920,
            height_px: 1080,
        })]
    };
    for (text, want) in [
        (
            "get@io.term",
            "{mode:txt res:{txt:(120 40) gfx:(1920 1080)}}",
        ),
        ("get.mode@io.term", "txt"),
        ("get.res@io.term", "{txt:(120 40) gfx:(1920 1080)}"),
        ("get.res.txt@io.term", "(120 40)"),
        ("get.res.gfx@io.term", "(1920 1080)"),
    ] {
        let (out, reqs) = scripted(text, size()).await;
        assert_eq!(out.unwrap(), Some(p(want)), "{text}");
        assert_eq!(reqs, vec![TermRequest::Size]);
    }
}

#[tokio::test]
async fn set_is_a_clear_error() {
    for text in [
        "set@io.term",
        "set.mode@io.term",
        "(set.mode gfx)@io.term",
        "(set.res.gfx fhd)@io.term",
        "(set.res.txt (80 25))@io.term",
        "{set.res.gfx:(1 1)}@io.term",
    ] {
        let (out, printed) = on_term(text, &[]).await;
        let e = out.unwrap_err();
        assert_eq!(e.code(), "term.unsupported", "{text}");
        assert!(e.message().contains("cannot change"), "{e}");
        assert_eq!(printed, "");
    }
}

#[tokio::test]
async fn images_go_to_the_terminal() {
    let (out, reqs) = scripted("{fill:#102030 size:(2 1)}@gfx.2d@io.term", vec![]).await;
    assert_eq!(out.unwrap(), None);
    assert_eq!(
        reqs,
        vec![TermRequest::Image {
            width: 2,
            height: 1,
            rgb: vec![0x10, 0x20, 0x30, 0x10, 0x20, 0x30]
        }]
    );
    for text in [
        "{img:[255 0] fmt:rgb size:(1 2)}@io.term",
        "(img {size:(1 2) img:[255 0]})@io.term",
        "{spr:center img:{size:(1 2) fmt:rgb img:[255 0]}}@io.term",
        "(spr {size:(1 2) img:[255 0]})@io.term",
        "{vid:[] img:{size:(1 2) fmt:rgb.rle img:[(1 255) (1 0)]} fps:30}@io.term",
        "(vid {img:{size:(1 2) img:[255 0]}})@io.term",
    ] {
        let (out, reqs) = scripted(text, vec![]).await;
        assert_eq!(out.unwrap(), None, "{text}");
        assert_eq!(
            reqs,
            vec![TermRequest::Image {
                width: 1,
                height: 2,
                rgb: vec![0, 0, 255, 0, 0, 0]
            }],
            "{text}"
        );
    }
    // The test terminal cannot show images.
    let (out, printed) = on_term("{fill:#102030 size:(2 1)}@gfx.2d@io.term", &[]).await;
    let e = out.unwrap_err();
    assert_eq!(e.code(), "term.unsupported");
    assert!(e.message().contains("cannot show images"), "{e}");
    assert_eq!(printed, "");
    // Malformed images and ones too large to send.
    for (text, code) in [
        ("{img:[1] size:(2 2)}@io.term", "arg.bad"),
        ("{img:[1] size:(1 1) fmt:rgba}@io.term", "arg.bad"),
        ("(img 5)@io.term", "arg.bad"),
        ("{fill:#000000 size:(8000 8000)}@gfx.2d@io.term", "limit"),
    ] {
        let (out, reqs) = scripted(text, vec![]).await;
        assert_eq!(out.unwrap_err().code(), code, "{text}");
        assert!(reqs.is_empty());
    }
}

#[tokio::test]
async fn output_too_large_for_a_frame_is_a_limit_error() {
    let (k, u) = kernel();
    let t = TestTerminal::new();
    let term: Arc<dyn Terminal> = t.clone();
    let cx = k.context(u.public(), [0; 32], Some(term), 0);
    let big = Unit::from("a".repeat(plexus_protocol::MAX_FRAME));
    let e = cx.send("io.term", None, big.clone()).await.unwrap_err();
    assert_eq!(e.code(), "limit");
    let e = cx
        .send(
            "io.term",
            None,
            Unit::pair(Unit::str("say.fmt"), Unit::List(vec![big])),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "limit");
    assert_eq!(t.output(), "");
}

#[tokio::test]
async fn session_scoped() {
    let svc = io_term::service();
    assert!(svc.session_scoped());
    assert_eq!(svc.help().name, "io.term");
    for c in [
        "get", "set", "cls", "nl", "inp.key", "inp", "img", "spr", "vid", "say", "say.fmt",
    ] {
        assert!(svc.help().man.iter().any(|m| m.name == c), "{c}");
    }
}

const WORDS: &[&str] = &[
    "say",
    "say.fmt",
    "nl",
    "shrt",
    "nice",
    "inp",
    "inp.key",
    "sct",
    "lim",
    "get",
    "get.res",
    "get.res.gfx",
    "get.mode",
    "set",
    "set.mode",
    "cls",
    "img",
    "spr",
    "vid",
    "fmt",
    "rgb",
    "rgb.rle",
    "size",
    "",
    "#102030",
    "center",
];

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        (-3i64..100).prop_map(Unit::int),
        any::<i64>().prop_map(Unit::int),
        arb_word(WORDS),
        ".*".prop_map(Unit::from),
    ];
    arb_message(leaf, WORDS, &["io.term"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_messages_never_panic(msg in arb_unit(), lines in prop::collection::vec(".{0,10}", 0..3)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (k, u) = kernel();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let t = TestTerminal::with_lines(&lines);
            t.push_keys(&["x"]);
            let term: Arc<dyn Terminal> = t;
            let cx = k.context(u.public(), [0; 32], Some(term), 0);
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                cx.send("io.term", None, msg.clone()),
            )
            .await;
            let cx = k.context(u.public(), [0; 32], None, 0);
            let _ = cx.send("io.term", None, msg).await;
        });
    }
}
