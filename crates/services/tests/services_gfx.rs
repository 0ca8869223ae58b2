//! gfx.2d: fills, sizes, colours, image decoding and PNG export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::Arc;

use plexus_identity::Keypair;
use plexus_kernel::{BoxFuture, Error, Kernel, Policy, Terminal};
use plexus_protocol::{TermRequest, TermResponse};
use plexus_services::gfx_2d::{self, decode_image, image_size, image_to_png};
use plexus_services::testing::{bare_kernel, check_examples, eval_text, TestTerminal};
use plexus_units::testing::arb_message;
use plexus_units::{parse, Unit};
use proptest::prelude::*;

fn kernel() -> (Kernel, Keypair) {
    let (k, admin) = bare_kernel();
    k.register(gfx_2d::service(), None, Policy::Anyone).unwrap();
    (k, admin)
}

async fn run(k: &Kernel, u: &Keypair, text: &str) -> Result<Option<Unit>, Error> {
    eval_text(k, u, None, text).await
}

fn p(text: &str) -> Unit {
    parse(text).unwrap()
}

/// A terminal that reports a size in pixels.
struct PixelTerminal(u32, u32);

impl Terminal for PixelTerminal {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>> {
        Box::pin(async move {
            Ok(match request {
                TermRequest::Size => TermResponse::Size {
                    cols: 100,
                    rows: 30,
                    width_px: self.0,
                    height_px: self.1,
                },
                _ => TermResponse::Done,
            })
        })
    }
}

#[tokio::test]
async fn help_examples_hold() {
    let (k, u) = kernel();
    assert_eq!(check_examples(&k, &u, "gfx.2d").await, Vec::<String>::new());
}

#[tokio::test]
async fn fills_in_every_form() {
    let (k, u) = kernel();
    assert_eq!(
        run(&k, &u, "{fill:#102030 size:(4 2)}@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(4 2) fmt:rgb.rle img:[(8 1056816)]}"))
    );
    assert_eq!(
        run(&k, &u, "(fill #FFffFF)@gfx.2d").await.unwrap(),
        Some(p("{size:(320 200) fmt:rgb.rle img:[(64000 16777215)]}"))
    );
    assert_eq!(
        run(&k, &u, "#000000@gfx.2d").await.unwrap(),
        Some(p("{size:(320 200) fmt:rgb.rle img:[(64000 0)]}"))
    );
    assert_eq!(
        run(&k, &u, "{size:(1 3) fill:16777215}@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(1 3) fmt:rgb.rle img:[(3 16777215)]}"))
    );
    // Largest allowed image.
    assert_eq!(
        run(&k, &u, "{fill:#010203 size:(8192 8192)}@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(8192 8192) fmt:rgb.rle img:[(67108864 66051)]}"))
    );
}

#[tokio::test]
async fn default_size_is_the_terminals_in_pixels() {
    let (k, u) = kernel();
    let term: Arc<dyn Terminal> = Arc::new(PixelTerminal(640, 480));
    assert_eq!(
        eval_text(&k, &u, Some(term), "#ff0000@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(640 480) fmt:rgb.rle img:[(307200 16711680)]}"))
    );
    // A terminal without a pixel size, or none at all: 320×200.
    let term: Arc<dyn Terminal> = TestTerminal::new();
    assert_eq!(
        eval_text(&k, &u, Some(term), "#ff0000@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(320 200) fmt:rgb.rle img:[(64000 16711680)]}"))
    );
    let term: Arc<dyn Terminal> = Arc::new(PixelTerminal(0, 480));
    assert_eq!(
        eval_text(&k, &u, Some(term), "#ff0000@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(320 200) fmt:rgb.rle img:[(64000 16711680)]}"))
    );
    // A given size wins.
    let term: Arc<dyn Terminal> = Arc::new(PixelTerminal(640, 480));
    assert_eq!(
        eval_text(&k, &u, Some(term), "{fill:#ff0000 size:(1 1)}@gfx.2d")
            .await
            .unwrap(),
        Some(p("{size:(1 1) fmt:rgb.rle img:[(1 16711680)]}"))
    );
}

#[tokio::test]
async fn bad_colours_sizes_and_commands_are_errors() {
    let (k, u) = kernel();
    for bad in [
        "#12345@gfx.2d",
        "#1234567@gfx.2d",
        "#gg0000@gfx.2d",
        "(fill red)@gfx.2d",
        "(fill 16777216)@gfx.2d",
        "(fill -1)@gfx.2d",
        "(fill [1 2])@gfx.2d",
        "{fill:#-12345 size:(1 1)}@gfx.2d",
        "{fill:#000000 size:(0 1)}@gfx.2d",
        "{fill:#000000 size:(1 -1)}@gfx.2d",
        "{fill:#000000 size:[1 1]}@gfx.2d",
        "{fill:#000000 size:(1 a)}@gfx.2d",
        "{fill:#000000 size:(4294967296 1)}@gfx.2d",
    ] {
        let e = run(&k, &u, bad).await.unwrap_err();
        assert_eq!(e.code(), "arg.bad", "{bad}: {e}");
    }
    let e = run(&k, &u, "{fill:#000000 size:(8193 8192)}@gfx.2d")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "limit", "{e}");
    for bad in [
        "fill@gfx.2d",
        "red@gfx.2d",
        "[1 2]@gfx.2d",
        "{size:(1 1)}@gfx.2d",
        "(fil #000000)@gfx.2d",
    ] {
        let e = run(&k, &u, bad).await.unwrap_err();
        assert_eq!(e.code(), "cmd.unknown", "{bad}: {e}");
    }
}

#[test]
fn decodes_rgb_lists_runs_and_bytes() {
    let (w, h, rgb) = decode_image(&p("{size:(4 2) fmt:rgb.rle img:[(8 1056816)]}")).unwrap();
    assert_eq!((w, h), (4, 2));
    assert_eq!(rgb, [0x10, 0x20, 0x30].repeat(8));

    let (w, h, rgb) = decode_image(&p(
        "{size:(2 2) fmt:rgb.rle img:[(1 16711680) (0 5) (3 255)]}",
    ))
    .unwrap();
    assert_eq!((w, h), (2, 2));
    assert_eq!(rgb, vec![255, 0, 0, 0, 0, 255, 0, 0, 255, 0, 0, 255]);

    let (w, h, rgb) = decode_image(&p("{size:(3 1) fmt:rgb img:[0 65280 16777215]}")).unwrap();
    assert_eq!((w, h), (3, 1));
    assert_eq!(rgb, vec![0, 0, 0, 0, 255, 0, 255, 255, 255]);

    // fmt defaults to rgb.
    let (_, _, rgb) = decode_image(&p("{size:(1 1) img:[1]}")).unwrap();
    assert_eq!(rgb, vec![0, 0, 1]);

    let (w, h, rgb) = decode_image(&p("{size:(2 1) fmt:rgb img:x\"0102030a0b0c\"}")).unwrap();
    assert_eq!((w, h, rgb), (2, 1, vec![1, 2, 3, 10, 11, 12]));
    assert_eq!(image_size(&p("{size:(5 7) img:[]}")).unwrap(), (5, 7));
}

#[test]
fn decodes_zipped_lists() {
    use base64::Engine;
    let list = p("[(2 16711680) (2 255)]");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plexus_units::encode(&list)).unwrap();
    let zipped = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let mut m = plexus_units::Map::new();
    m.insert(Unit::str("size"), p("(2 2)"));
    m.insert(Unit::str("fmt"), Unit::str("rgb.rle"));
    m.insert(Unit::str("img"), Unit::from(zipped));
    let (w, h, rgb) = decode_image(&Unit::Map(m)).unwrap();
    assert_eq!((w, h), (2, 2));
    assert_eq!(rgb, vec![255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255]);
    let e = decode_image(&p("{size:(1 1) img:`not base64!`}")).unwrap_err();
    assert_eq!(e.code(), "arg.bad");
    let e = decode_image(&p("{size:(1 1) img:`aGVsbG8=`}")).unwrap_err();
    assert_eq!(e.code(), "arg.bad");
}

#[test]
fn malformed_images_are_errors() {
    for (bad, code) in [
        ("5", "arg.bad"),
        ("{img:[1]}", "arg.bad"),
        ("{size:(1 1)}", "arg.bad"),
        ("{size:(1 1) fmt:5 img:[1]}", "arg.bad"),
        ("{size:(2 1) fmt:rgb img:[1]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:[1 2]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:[16777216]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:[-1]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:[a]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:x\"0102\"}", "arg.bad"),
        ("{size:(2 1) fmt:rgb.rle img:[(1 0)]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb.rle img:[(2 0)]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb.rle img:[(-1 0) (2 0)]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb.rle img:[1]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb.rle img:x\"000000\"}", "arg.bad"),
        ("{size:(1 1) fmt:rgba img:[1]}", "arg.bad"),
        ("{size:(1 1) fmt:rgba.rle img:[(1 1)]}", "arg.bad"),
        ("{size:(1 1) fmt:cmyk img:[1]}", "arg.bad"),
        ("{size:(1 1) fmt:rgb img:{a:1}}", "arg.bad"),
        ("{size:(0 1) fmt:rgb img:[]}", "arg.bad"),
        ("{size:(100000 100000) fmt:rgb img:[]}", "limit"),
    ] {
        let e = decode_image(&p(bad)).unwrap_err();
        assert_eq!(e.code(), code, "{bad}: {e}");
    }
    let e = decode_image(&p("{size:(1 1) fmt:rgba img:[1]}")).unwrap_err();
    assert!(e.message().contains("rgba"), "{e}");
    // Huge run counts do not allocate or overflow.
    let e = decode_image(&p(
        "{size:(1 1) fmt:rgb.rle img:[(9223372036854775807 0) (9223372036854775807 0)]}",
    ))
    .unwrap_err();
    assert_eq!(e.code(), "arg.bad");
}

#[test]
fn exports_png() {
    let png_bytes = image_to_png(&p("{size:(2 2) fmt:rgb img:[16711680 65280 255 0]}")).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(png_bytes.as_slice());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (2, 2));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(
        &buf[..info.buffer_size()],
        &[255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0]
    );
    assert_eq!(
        image_to_png(&p("{size:(1 1) img:[]}")).unwrap_err().code(),
        "arg.bad"
    );
}

#[tokio::test]
async fn fills_decode_to_their_colour() {
    let (k, u) = kernel();
    let img = run(&k, &u, "{fill:#abcdef size:(3 2)}@gfx.2d")
        .await
        .unwrap()
        .unwrap();
    let (w, h, rgb) = decode_image(&img).unwrap();
    assert_eq!((w, h), (3, 2));
    assert_eq!(rgb, [0xab, 0xcd, 0xef].repeat(6));
}

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<i64>().prop_map(Unit::int),
        (0i64..20).prop_map(Unit::int),
        prop::sample::select(vec![
            "fill", "size", "fmt", "img", "rgb", "rgb.rle", "rgba", "#102030", "#fff", "#", "",
            "#zzzzzz", "aGVsbG8=",
        ])
        .prop_map(Unit::str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Unit::Bytes(b.into())),
    ];
    arb_message(leaf, &[], &[])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_messages_never_panic(msg in arb_unit()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (k, u) = kernel();
            let cx = k.context(u.public(), [0; 32], None, 0);
            let _ = cx.send("gfx.2d", None, msg.clone()).await;
            let _ = decode_image(&msg);
            let _ = image_to_png(&msg);
        });
    }

    #[test]
    fn random_images_never_panic(
        w in 0i64..5, h in 0i64..5,
        fmt in prop::sample::select(vec!["rgb", "rgb.rle", "rgba", "x"]),
        img in arb_unit(),
    ) {
        let mut m = plexus_units::Map::new();
        m.insert(Unit::str("size"), Unit::pair(Unit::int(w), Unit::int(h)));
        m.insert(Unit::str("fmt"), Unit::str(fmt));
        m.insert(Unit::str("img"), img);
        let u = Unit::Map(m);
        if let Ok((w, h, rgb)) = decode_image(&u) {
            prop_assert_eq!(rgb.len() as u64, u64::from(w) * u64::from(h) * 3);
            prop_assert!(image_to_png(&u).is_ok());
        }
    }
}
