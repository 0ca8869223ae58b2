//! `io.term`: the terminal of the session that sent the message.
//!
//! `io.term` is session-scoped: it always acts on the caller's own terminal (the λ shell or
//! `plx send` on the user's machine), wherever the message is evaluated. A call without a
//! terminal fails with `term.none`.
//!
//! Commands, tried in this order (as in vnix):
//!
//! | command | forms | result |
//! |---|---|---|
//! | get | `get`, `get.mode`, `get.res`, `get.res.txt`, `get.res.gfx` | the matching part of `{mode:txt res:{txt:(cols rows) gfx:(w h)}}`, from the terminal's real size; `gfx` is `-` when the terminal does not report its size in pixels |
//! | set | `set…` in any form | error `term.unsupported`: the display belongs to the client |
//! | cls | `cls` | clears the screen |
//! | nl | `nl` | prints a line break |
//! | inp.key | `inp.key` | waits for a key: its name (`UP` `DOWN` `LEFT` `RIGHT` `ESC` `ENTER` `BACKSPACE` `TAB` `UNKNOWN`) or the character, as a Str |
//! | inp | `inp`, `(inp prompt)`, `{inp:prompt sct:bool lim:uint nl:bool}` | prints the prompt, reads a line → the typed Str (an empty line gives the empty Str); `sct:t` hides what is typed, `lim:n` keeps at most n characters. The terminal ends the line itself when Enter is pressed, so `nl` is accepted (for vnix programs) and has no effect. End of input is the error `term.failed` with `eof:t` |
//! | img, spr, vid | `{img:… fmt size}`, `(img <image>)`, `{spr:pos img:<image>}`, `{vid:… img:<first frame>}` | shows an image (see `gfx.2d`); `spr` ignores the position and `vid` shows the first frame. A terminal that cannot show images gives `term.unsupported` |
//! | say | `(say u)`, `{say:u nl:bool shrt:n nice:n}`, `(say.fmt [u…])`, `{say.fmt:[u…] nl shrt nice}`, and **any other message** | prints u: a top-level Str as it is, anything else in canonical text; `shrt:n` prints the short form, `nice:n` the indented form with steps of n spaces; `nl:t` adds a line break. `say.fmt` prints its elements back to back. Saying none prints nothing (not even the line break) |

use std::sync::{Arc, LazyLock};

use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Entry, Error, Example, Help, Outcome, Service, Table, Terminal,
};
use plexus_protocol::{TermRequest, TermResponse};
use plexus_units::{Map, Unit};

use crate::forms;

/// The `io.term` service.
pub fn service() -> Arc<dyn Service> {
    Arc::new(IoTerm)
}

/// Error code of what the client's terminal cannot do (show images, change its size).
pub const UNSUPPORTED: &str = "term.unsupported";

/// Largest text or image sent to the terminal in one request, so it fits a protocol frame.
const MAX_OUTPUT: usize = plexus_protocol::MAX_FRAME - (64 << 10);

/// Largest `nice` indentation step.
const MAX_NICE: usize = 64;

struct IoTerm;

/// What a command does. Maps choose by their keys, wherever they are (below); anything that is
/// no command is printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Term {
    Get,
    Set,
    Cls,
    Nl,
    InpKey,
    Inp,
    /// `img` and `spr`.
    Img,
    Vid,
    Say,
    SayFmt,
}

impl Service for IoTerm {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn session_scoped(&self) -> bool {
        true
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let term = cx.terminal()?.clone();
            handle(&*term, msg).await
        })
    }
}

/// How a unit is printed.
#[derive(Clone, Copy)]
enum Style {
    /// A top-level Str as it is, anything else canonical.
    Plain,
    /// `to_short(u, n)`.
    Short(usize),
    /// `to_pretty(u, step)`.
    Nice(usize),
}

fn render(u: &Unit, style: Style) -> String {
    match style {
        Style::Plain => match u {
            Unit::Str(s) => s.to_string(),
            other => plexus_units::to_text(other),
        },
        Style::Short(n) => plexus_units::to_short(u, n),
        Style::Nice(step) => plexus_units::to_pretty(u, step),
    }
}

async fn handle(term: &dyn Terminal, msg: Unit) -> Outcome {
    let command = TABLE.find(&msg).map(|(e, c)| (e.run, c.name));
    match &msg {
        Unit::Str(_) => match command {
            Some((Term::Get, name)) => get(term, name).await.map(Some),
            Some((Term::Set, _)) => Err(set_error()),
            Some((Term::Cls, _)) => done(term.request(TermRequest::Clear).await?),
            Some((Term::Nl, _)) => print(term, "\n".into()).await,
            Some((Term::InpKey, _)) => key(term).await.map(Some),
            Some((Term::Inp, _)) => read_line(term, String::new(), false, None).await.map(Some),
            _ => say(term, &msg, Style::Plain, false).await,
        },
        Unit::Pair(p) => match command {
            Some((Term::Set, _)) => Err(set_error()),
            Some((Term::Inp, _)) => {
                let prompt = render_prompt(&p.1);
                read_line(term, prompt, false, None).await.map(Some)
            }
            Some((Term::Img, _)) => show(term, &p.1).await,
            Some((Term::Vid, _)) => show(term, frame(&p.1)).await,
            Some((Term::Say, _)) => say(term, &p.1, Style::Plain, false).await,
            Some((Term::SayFmt, _)) => say_fmt(term, &p.1, Style::Plain, false).await,
            _ => say(term, &msg, Style::Plain, false).await,
        },
        Unit::Map(m) => {
            if command.is_some_and(|(run, _)| run == Term::Set) {
                return Err(set_error());
            }
            if let Some(prompt) = m.get_str("inp") {
                let opts = options(m);
                opts.opt_bool("nl", true)?;
                let secret = opts.opt_bool("sct", false)?;
                let limit = opts
                    .opt("lim")
                    .map(|l| forms::uint32(l, "lim"))
                    .transpose()?;
                let prompt = render_prompt(prompt);
                return read_line(term, prompt, secret, limit).await.map(Some);
            }
            if m.get_str("vid").is_some() {
                return show(term, frame(&msg)).await;
            }
            if m.get_str("spr").is_some() || m.get_str("img").is_some() {
                return show(term, frame(&msg)).await;
            }
            if let Some(list) = m.get_str("say.fmt") {
                let (style, nl) = say_options(m)?;
                return say_fmt(term, list, style, nl).await;
            }
            if let Some(u) = m.get_str("say") {
                let (style, nl) = say_options(m)?;
                return say(term, u, style, nl).await;
            }
            say(term, &msg, Style::Plain, false).await
        }
        _ => say(term, &msg, Style::Plain, false).await,
    }
}

fn set_error() -> Error {
    Error::new(
        UNSUPPORTED,
        "io.term cannot change the display: its mode and size belong to the client's terminal \
         (resize the window instead)",
    )
}

fn options(m: &Map) -> forms::Cmd<'_> {
    forms::Cmd {
        name: "",
        arg: None,
        opts: Some(m),
    }
}

/// `nl`, `shrt` and `nice` of a `say` map.
fn say_options(m: &Map) -> Result<(Style, bool), Error> {
    let opts = options(m);
    let nl = opts.opt_bool("nl", false)?;
    let shrt = opts.opt_count("shrt")?;
    let nice = opts.opt_count("nice")?;
    let style = match (shrt, nice) {
        (Some(_), Some(_)) => return Err(Error::bad_argument("say takes shrt or nice, not both")),
        (Some(n), None) => Style::Short(n),
        (None, Some(step)) if step > MAX_NICE => {
            return Err(Error::bad_argument(format!(
                "nice must be at most {MAX_NICE}"
            )))
        }
        (None, Some(step)) => Style::Nice(step),
        (None, None) => Style::Plain,
    };
    Ok((style, nl))
}

fn render_prompt(u: &Unit) -> String {
    match u {
        Unit::None => String::new(),
        other => render(other, Style::Plain),
    }
}

fn done(r: TermResponse) -> Outcome {
    match r {
        TermResponse::Done => Ok(None),
        other => Err(answer_error(other)),
    }
}

/// The error for an answer that is not the one expected.
fn answer_error(r: TermResponse) -> Error {
    match r {
        TermResponse::Failed(m) => Error::new(code::TERMINAL, m),
        TermResponse::Unsupported(m) => Error::new(UNSUPPORTED, m),
        TermResponse::Line(None) => eof(),
        other => Error::new(
            code::TERMINAL,
            format!("the terminal gave an unexpected answer: {other:?}"),
        ),
    }
}

fn eof() -> Error {
    Error::new(code::TERMINAL, "end of input").with("eof", Unit::Bool(true))
}

async fn print(term: &dyn Terminal, text: String) -> Outcome {
    if text.len() > MAX_OUTPUT {
        return Err(Error::new(
            code::LIMIT,
            format!(
                "{} bytes of text are too many to print at once (at most {MAX_OUTPUT})",
                text.len()
            ),
        ));
    }
    if text.is_empty() {
        return Ok(None);
    }
    done(term.request(TermRequest::Say { text }).await?)
}

async fn say(term: &dyn Terminal, u: &Unit, style: Style, nl: bool) -> Outcome {
    if *u == Unit::None {
        return Ok(None);
    }
    let mut text = render(u, style);
    if nl {
        text.push('\n');
    }
    print(term, text).await
}

async fn say_fmt(term: &dyn Terminal, list: &Unit, style: Style, nl: bool) -> Outcome {
    let elems = forms::elements(list).ok_or_else(|| {
        Error::bad_argument(format!(
            "say.fmt takes a list [u…], not {}",
            plexus_units::to_short(list, 20)
        ))
    })?;
    let mut text = String::new();
    for e in elems {
        if *e != Unit::None {
            text.push_str(&render(e, style));
        }
        if text.len() > MAX_OUTPUT {
            break;
        }
    }
    if nl {
        text.push('\n');
    }
    print(term, text).await
}

async fn read_line(
    term: &dyn Terminal,
    prompt: String,
    secret: bool,
    limit: Option<u32>,
) -> Result<Unit, Error> {
    let r = term
        .request(TermRequest::ReadLine {
            prompt,
            secret,
            limit,
        })
        .await?;
    match r {
        TermResponse::Line(Some(line)) => {
            // Keep the limit even if the client did not.
            let line = match limit {
                Some(n) if line.chars().count() > n as usize => {
                    line.chars().take(n as usize).collect()
                }
                _ => line,
            };
            Ok(Unit::from(line))
        }
        other => Err(answer_error(other)),
    }
}

async fn key(term: &dyn Terminal) -> Result<Unit, Error> {
    match term.request(TermRequest::ReadKey).await? {
        TermResponse::Key(k) => Ok(Unit::from(k)),
        other => Err(answer_error(other)),
    }
}

async fn get(term: &dyn Terminal, what: &str) -> Result<Unit, Error> {
    let (cols, rows, w, h) = match term.request(TermRequest::Size).await? {
        TermResponse::Size {
            cols,
            rows,
            width_px,
            height_px,
        } => (cols, rows, width_px, height_px),
        other => return Err(answer_error(other)),
    };
    let int = |v: u32| Unit::int(i64::from(v));
    let txt = Unit::pair(int(cols), int(rows));
    let gfx = if w > 0 && h > 0 {
        Unit::pair(int(w), int(h))
    } else {
        Unit::None
    };
    let mode = Unit::str("txt");
    Ok(match what {
        "get.mode" => mode,
        "get.res.txt" => txt,
        "get.res.gfx" => gfx,
        _ => {
            let mut res = Map::new();
            res.insert(Unit::str("txt"), txt);
            res.insert(Unit::str("gfx"), gfx);
            if what == "get.res" {
                Unit::Map(res)
            } else {
                let mut all = Map::new();
                all.insert(Unit::str("mode"), mode);
                all.insert(Unit::str("res"), Unit::Map(res));
                Unit::Map(all)
            }
        }
    })
}

/// The image of a `spr`/`vid` map (its `img`, when that is an image unit) or the map itself.
fn frame(u: &Unit) -> &Unit {
    match u.as_map().and_then(|m| m.get_str("img")) {
        Some(inner @ Unit::Map(_)) => inner,
        _ => u,
    }
}

async fn show(term: &dyn Terminal, image: &Unit) -> Outcome {
    let (w, h) = crate::gfx_2d::image_size(image)?;
    let bytes = u64::from(w) * u64::from(h) * 3;
    if bytes > MAX_OUTPUT as u64 {
        return Err(Error::new(
            code::LIMIT,
            format!(
                "an image of {w}×{h} is too large to send to the terminal (at most {} pixels)",
                MAX_OUTPUT / 3
            ),
        ));
    }
    let (width, height, rgb) = crate::gfx_2d::decode_image(image)?;
    match term
        .request(TermRequest::Image { width, height, rgb })
        .await?
    {
        TermResponse::Done => Ok(None),
        TermResponse::Unsupported(why) => Err(Error::new(
            UNSUPPORTED,
            format!("this terminal cannot show images ({why})"),
        )),
        other => Err(answer_error(other)),
    }
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Term>> = LazyLock::new(table);

fn table() -> Table<Term> {
    Table::new(
        "io.term",
        "The terminal of the session that sent the message (the λ shell or plx send): \
               print units, read lines and keys, report its size, show images",
        vec![
            Example {
                info: "Print a Str as it is (no value: the call is done for its effect)",
                com: "(say hi)@io.term",
                res: None,
            },
            Example {
                info: "Any message that is not a command is printed whole",
                com: "[1 2 3]@io.term",
                res: None,
            },
            Example {
                info: "Print indented with steps of 2 spaces, then a line break: [, x and { \
                       indented 2, k:v indented 4, } indented 2, ]",
                com: "{say:[x {k:v}] nice:2 nl:t}@io.term",
                res: None,
            },
            Example {
                info: "Print the short form: at most 3 characters of strings, 3 elements of lists",
                com: "{say:[abcdef 2 3 4 5] shrt:3 nl:t}@io.term",
                res: None,
            },
            Example {
                info: "Print elements back to back",
                com: "{say.fmt:[`a = ` 1 `, b = ` [2 3]] nl:t}@io.term",
                res: None,
            },
            Example {
                info: "The text mode (images are shown on terminals that support them)",
                com: "get.mode@io.term",
                res: Some("txt"),
            },
            Example {
                info: "The terminal's size in characters (here an 80×24 terminal)",
                com: "get.res.txt@io.term",
                res: Some("(80 24)"),
            },
            Example {
                info: "The size in pixels is - when the terminal does not report it",
                com: "get@io.term",
                res: Some("{mode:txt res:{txt:(80 24) gfx:-}}"),
            },
            Example {
                info: "A line break",
                com: "nl@io.term",
                res: None,
            },
        ],
        vec![
            Entry::new(
                "get",
                "The terminal's mode (always txt) and size: → {mode:txt res:{txt:(cols rows) \
                       gfx:(w h)}} or the part named; gfx is - when the terminal does not report \
                       its size in pixels",
                &["get", "get.mode", "get.res", "get.res.txt", "get.res.gfx"],
                Arg::None,
                Term::Get,
            )
            .also(&["get.mode", "get.res", "get.res.txt", "get.res.gfx"]),
            Entry::new(
                "set",
                "Not available: the terminal's mode and size belong to the client; every \
                       set… is the error term.unsupported",
                &[
                    "(set.mode txt|gfx)",
                    "(set.res.txt (w h))",
                    "(set.res.gfx (w h))",
                ],
                Arg::Optional,
                Term::Set,
            )
            .family(),
            Entry::new(
                "cls",
                "Clears the screen",
                &["cls"],
                Arg::Optional,
                Term::Cls,
            ),
            Entry::new(
                "nl",
                "Prints a line break",
                &["nl"],
                Arg::Optional,
                Term::Nl,
            ),
            Entry::new(
                "inp.key",
                "Waits for a key → its name (UP DOWN LEFT RIGHT ESC ENTER BACKSPACE TAB \
                       UNKNOWN) or the character typed, as a Str",
                &["inp.key"],
                Arg::Optional,
                Term::InpKey,
            ),
            Entry::new(
                "inp",
                "Prints the prompt and reads a line → the typed Str (an empty line gives \
                       the empty Str ``). sct:t hides what is typed, lim:n keeps at most n \
                       characters; the terminal ends the line itself, so nl has no effect. End \
                       of input (Ctrl-D) is the error term.failed with eof:t; an interrupted \
                       read is term.failed too",
                &["inp", "(inp prompt)", "{inp:prompt sct:f lim:uint nl:t}"],
                Arg::Optional,
                Term::Inp,
            ),
            Entry::new(
                "img",
                "Shows an image unit {size:(w h) fmt:rgb|rgb.rle img:[…]} (see \
                       help.man@gfx.2d); a terminal that cannot show images gives \
                       term.unsupported",
                &["{img:[…] fmt:rgb|rgb.rle size:(w h)}", "(img image)"],
                Arg::Optional,
                Term::Img,
            ),
            Entry::new(
                "spr",
                "Shows a sprite's image (the position is ignored: the client places it)",
                &["{spr:(x y)|center img:image}"],
                Arg::Optional,
                Term::Img,
            ),
            Entry::new(
                "vid",
                "Shows a video's first frame (the terminal protocol has no video)",
                &["{vid:[…] img:first-frame blk:{…} fps:n}"],
                Arg::Optional,
                Term::Vid,
            ),
            Entry::new(
                "say",
                "Prints a unit: a top-level Str as it is, anything else in canonical text; \
                       shrt:n prints the short form (strings and lists cut after n), nice:n the \
                       indented form with steps of n spaces (at most 64), nl:t adds a line break. \
                       Any message that is no other command is said whole. Saying none prints \
                       nothing, not even the line break",
                &["u", "(say u)", "{say:u nl:f shrt:n nice:n}"],
                Arg::Optional,
                Term::Say,
            ),
            Entry::new(
                "say.fmt",
                "Prints each element of a list back to back, no separator, with the \
                       options of say",
                &["(say.fmt [u…])", "{say.fmt:[u…] nl:f shrt:n nice:n}"],
                Arg::Optional,
                Term::SayFmt,
            ),
        ],
    )
}
