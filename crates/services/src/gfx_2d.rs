//! `gfx.2d`: 2-D images as units.
//!
//! An **image unit** is a map `{size:(w h) fmt:<format> img:<pixels>}`:
//!
//! | `fmt` | `img` |
//! |---|---|
//! | `rgb` (the default) | a list of `w·h` colours, row by row; or a byte string of `w·h·3` bytes |
//! | `rgb.rle` | a list of `(count colour)` pairs whose counts add up to `w·h` |
//!
//! A colour is the int `0xRRGGBB` (0 to 16777215). Instead of a list, `img` may also be a
//! zipped list: the Str that `zip@dat.proc` makes (base64 of the gzipped binary form).
//! Formats with alpha (`rgba`) are refused with a clear error: terminals and PNG export here
//! show opaque RGB only.
//!
//! The service makes solid fills: `#rrggbb`, `(fill #rrggbb)`, `{fill:#rrggbb size:(w h)}` →
//! `{size:(w h) fmt:rgb.rle img:[(w·h colour)]}`. Without a size, the fill covers the
//! session's terminal when it reports its size in pixels, else [`DEFAULT_SIZE`] (320×200).
//! Images hold at most [`MAX_PIXELS`] pixels.
//!
//! [`decode_image`] and [`image_to_png`] are used by `io.term` (to show images) and
//! `plx img export`.

use std::io::Read;
use std::sync::{Arc, LazyLock};

use plexus_kernel::{Arg, BoxFuture, Cx, Entry, Error, Example, Help, Outcome, Service, Table};
use plexus_protocol::{TermRequest, TermResponse};
use plexus_units::{Int, Map, Unit};

/// The size of a fill when none is given and the terminal does not report its pixel size.
pub const DEFAULT_SIZE: (u32, u32) = (320, 200);

/// The most pixels an image may have (64 Mi).
pub const MAX_PIXELS: u64 = 1 << 26;

/// The largest colour, `0xffffff`.
const MAX_COLOUR: i64 = 0xff_ffff;

/// The `gfx.2d` service.
pub fn service() -> Arc<dyn Service> {
    Arc::new(Gfx2d)
}

struct Gfx2d;

impl Service for Gfx2d {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (colour, size) = match &msg {
                Unit::Str(s) if s.starts_with('#') => (colour(&msg)?, None),
                Unit::Pair(p) if TABLE.find(&msg).is_some() => (colour(&p.1)?, None),
                Unit::Map(m) => match m.get_str("fill") {
                    Some(c) => (colour(c)?, m.get_str("size").map(size).transpose()?),
                    None => return Err(Error::unknown_command("gfx.2d", &msg)),
                },
                _ => return Err(Error::unknown_command("gfx.2d", &msg)),
            };
            let (w, h) = match size {
                Some(s) => s,
                None => default_size(cx).await,
            };
            Ok(Some(fill(w, h, colour)))
        })
    }
}

/// The terminal's size in pixels when it reports one, else [`DEFAULT_SIZE`].
async fn default_size(cx: &Cx) -> (u32, u32) {
    let Ok(term) = cx.terminal() else {
        return DEFAULT_SIZE;
    };
    match term.request(TermRequest::Size).await {
        Ok(TermResponse::Size {
            width_px,
            height_px,
            ..
        }) if width_px > 0
            && height_px > 0
            && u64::from(width_px) * u64::from(height_px) <= MAX_PIXELS =>
        {
            (width_px, height_px)
        }
        _ => DEFAULT_SIZE,
    }
}

/// The image unit of a `w×h` fill with `colour`.
fn fill(w: u32, h: u32, colour: u32) -> Unit {
    let mut m = Map::new();
    m.insert(
        Unit::str("size"),
        Unit::pair(Unit::int(i64::from(w)), Unit::int(i64::from(h))),
    );
    m.insert(Unit::str("fmt"), Unit::str("rgb.rle"));
    let count = i64::from(w) * i64::from(h);
    m.insert(
        Unit::str("img"),
        Unit::List(vec![Unit::pair(
            Unit::int(count),
            Unit::int(i64::from(colour)),
        )]),
    );
    Unit::Map(m)
}

/// A colour: `#rrggbb` or an int from 0 to `0xffffff`.
fn colour(u: &Unit) -> Result<u32, Error> {
    let bad = || {
        Error::bad_argument(format!(
            "a colour is #rrggbb (six hex digits) or an int from 0 to 16777215, not {}",
            plexus_units::to_short(u, 20)
        ))
    };
    match u {
        Unit::Str(s) => {
            let hex = s.strip_prefix('#').ok_or_else(bad)?;
            if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(hex, 16).map_err(|_| bad())
        }
        Unit::Int(i) => match i.to_i64() {
            Some(v @ 0..=MAX_COLOUR) => u32::try_from(v).map_err(|_| bad()),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A size `(w h)`: both at least 1, at most [`MAX_PIXELS`] in all.
fn size(u: &Unit) -> Result<(u32, u32), Error> {
    let bad = || {
        Error::bad_argument(format!(
            "a size is (w h) with two ints of at least 1, not {}",
            plexus_units::to_short(u, 20)
        ))
    };
    let Unit::Pair(p) = u else {
        return Err(bad());
    };
    let dim = |d: &Unit| {
        d.as_int()
            .and_then(Int::to_i64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v >= 1)
            .ok_or_else(bad)
    };
    let (w, h) = (dim(&p.0)?, dim(&p.1)?);
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::new(
            plexus_kernel::code::LIMIT,
            format!("an image of {w}×{h} exceeds the limit of {MAX_PIXELS} pixels"),
        ));
    }
    Ok((w, h))
}

/// The size `(w h)` of an image unit, checked against [`MAX_PIXELS`], without decoding its
/// pixels.
pub fn image_size(u: &Unit) -> Result<(u32, u32), Error> {
    let m = image_map(u)?;
    let s = m
        .get_str("size")
        .ok_or_else(|| Error::bad_argument("an image needs size:(w h)"))?;
    size(s)
}

fn image_map(u: &Unit) -> Result<&Map, Error> {
    u.as_map().ok_or_else(|| {
        Error::bad_argument(format!(
            "an image is a map {{size:(w h) fmt:rgb|rgb.rle img:[…]}}, not {}",
            plexus_units::to_short(u, 20)
        ))
    })
}

/// Decodes an image unit `{size:(w h) fmt:rgb|rgb.rle img:…}` into its width, height and
/// `w·h·3` RGB bytes, row by row. Every malformed image is an error: a wrong pixel count, a
/// colour out of range, an unknown or alpha format, more than [`MAX_PIXELS`] pixels.
pub fn decode_image(u: &Unit) -> Result<(u32, u32, Vec<u8>), Error> {
    let m = image_map(u)?;
    let (w, h) = image_size(u)?;
    let pixels = u64::from(w) * u64::from(h);
    let fmt = match m.get_str("fmt") {
        None => "rgb",
        Some(Unit::Str(s)) => s,
        Some(other) => {
            return Err(Error::bad_argument(format!(
                "an image's fmt is rgb or rgb.rle, not {}",
                plexus_units::to_short(other, 20)
            )))
        }
    };
    let img = m
        .get_str("img")
        .ok_or_else(|| Error::bad_argument("an image needs img:[…] (its pixels)"))?;
    let unzipped;
    let img = match img {
        Unit::Str(s) => {
            unzipped = unzip(s)?;
            &unzipped
        }
        other => other,
    };
    // `pixels` ≤ MAX_PIXELS, so this fits in memory bounds and usize.
    let len = usize::try_from(pixels * 3).map_err(|_| Error::internal("image too large"))?;
    let mut out = Vec::with_capacity(len);
    match (fmt, img) {
        ("rgb", Unit::Bytes(b)) => {
            if b.len() != len {
                return Err(Error::bad_argument(format!(
                    "an rgb image of {w}×{h} needs {len} bytes, not {}",
                    b.len()
                )));
            }
            out.extend_from_slice(b);
        }
        ("rgb", Unit::List(l)) => {
            if l.len() as u64 != pixels {
                return Err(Error::bad_argument(format!(
                    "an rgb image of {w}×{h} needs {pixels} colours, not {}",
                    l.len()
                )));
            }
            for c in l {
                push_rgb(&mut out, pixel(c)?);
            }
        }
        ("rgb.rle", Unit::List(l)) => {
            let mut total: u64 = 0;
            for run in l {
                let (count, c) = match run {
                    Unit::Pair(p) => (&p.0, &p.1),
                    other => {
                        return Err(Error::bad_argument(format!(
                            "an rgb.rle image is a list of (count colour) pairs, not {}",
                            plexus_units::to_short(other, 20)
                        )))
                    }
                };
                let n = count
                    .as_int()
                    .and_then(Int::to_i64)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| {
                        Error::bad_argument("a run's count must be a non-negative int")
                    })?;
                let c = pixel(c)?;
                total = total.saturating_add(n);
                if total > pixels {
                    return Err(Error::bad_argument(format!(
                        "the runs of an rgb.rle image of {w}×{h} cover more than its {pixels} pixels"
                    )));
                }
                for _ in 0..n {
                    push_rgb(&mut out, c);
                }
            }
            if total != pixels {
                return Err(Error::bad_argument(format!(
                    "the runs of an rgb.rle image of {w}×{h} cover {total} of its {pixels} pixels"
                )));
            }
        }
        (f, _) if f.starts_with("rgba") => {
            return Err(Error::bad_argument(format!(
                "image format {f} is not supported: images here are opaque (use rgb or rgb.rle)"
            )))
        }
        ("rgb" | "rgb.rle", other) => {
            return Err(Error::bad_argument(format!(
            "an image's img must be a list of pixels, a byte string (rgb) or a zipped list, not {}",
            other.kind()
        )))
        }
        (f, _) => {
            return Err(Error::bad_argument(format!(
                "unknown image format {f} (use rgb or rgb.rle)"
            )))
        }
    }
    Ok((w, h, out))
}

fn push_rgb(out: &mut Vec<u8>, c: u32) {
    let [_, r, g, b] = c.to_be_bytes();
    out.extend_from_slice(&[r, g, b]);
}

/// One pixel colour: an int from 0 to `0xffffff`.
fn pixel(u: &Unit) -> Result<u32, Error> {
    match u.as_int().and_then(Int::to_i64) {
        Some(v @ 0..=MAX_COLOUR) => u32::try_from(v).map_err(|_| Error::internal("colour")),
        _ => Err(Error::bad_argument(format!(
            "a pixel is an int colour 0xRRGGBB from 0 to 16777215, not {}",
            plexus_units::to_short(u, 20)
        ))),
    }
}

/// A zipped list: base64 of the gzipped binary form of a unit.
fn unzip(s: &str) -> Result<Unit, Error> {
    use base64::Engine;
    let bad = |why: String| Error::bad_argument(format!("img is not a zipped unit: {why}"));
    let s = s.trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let gz = engines
        .iter()
        .find_map(|e| e.decode(s).ok())
        .ok_or_else(|| bad("not base64".into()))?;
    let limit = plexus_units::Limits::DEFAULT.max_size;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() > limit {
        return Err(Error::new(
            plexus_kernel::code::LIMIT,
            format!("a zipped image unpacks to more than {limit} bytes"),
        ));
    }
    plexus_units::decode(&bytes).map_err(|e| bad(e.to_string()))
}

/// Encodes an image unit as a PNG file (8-bit RGB).
pub fn image_to_png(u: &Unit) -> Result<Vec<u8>, Error> {
    let (w, h, rgb) = decode_image(u)?;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let fail = |e: png::EncodingError| Error::internal(format!("PNG encoding failed: {e}"));
    let mut writer = enc.write_header().map_err(fail)?;
    writer.write_image_data(&rgb).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// The one command; a colour alone and maps with a fill key anywhere are fills too.
static TABLE: LazyLock<Table<()>> = LazyLock::new(table);

fn table() -> Table<()> {
    Table::new(
        "gfx.2d",
        "2-D images: makes solid fills as image units {size:(w h) fmt:rgb.rle img:[(count colour)…]} \
               (colours are ints 0xRRGGBB) that io.term shows and plx img export saves as PNG",
        vec![
            Example {
                info: "A 4×2 fill of #102030 (0x102030 = 1056816): one run of 8 pixels",
                com: "{fill:#102030 size:(4 2)}@gfx.2d",
                res: Some("{size:(4 2) fmt:rgb.rle img:[(8 1056816)]}"),
            },
            Example {
                info: "Without a size, the terminal's size in pixels, or 320×200 when the terminal does not report one",
                com: "(fill #ff0000)@gfx.2d",
                res: Some("{size:(320 200) fmt:rgb.rle img:[(64000 16711680)]}"),
            },
            Example {
                info: "A bare colour is a fill",
                com: "#00ff00@gfx.2d",
                res: Some("{size:(320 200) fmt:rgb.rle img:[(64000 65280)]}"),
            },
            Example {
                info: "A colour may also be an int",
                com: "{fill:255 size:(1 1)}@gfx.2d",
                res: Some("{size:(1 1) fmt:rgb.rle img:[(1 255)]}"),
            },
        ],
        vec![Entry::new(
            "fill",
            "A solid image of one colour (#rrggbb, or an int 0 to 16777215). size:(w h) \
             defaults to the terminal's size in pixels if known, else (320 200); at most \
             67108864 pixels. The result is {size fmt:rgb.rle img:[(w·h colour)]}; image \
             units may also use fmt:rgb with img a list of w·h colours or w·h·3 bytes",
            &["#rrggbb", "(fill #rrggbb)", "{fill:#rrggbb size:(w h)}"],
            Arg::Required,
            (),
        )],
    )
}
