//! Arbitrary bytes as a `.osh` script: parsing, evaluating and planning never panic; an
//! error points inside the input and renders; every instance prints back to a script that
//! evaluates to the same instance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_osh::{plan, run, Effect};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match run(src) {
        Ok(effects) => {
            for effect in effects {
                let (Effect::Spawn(instance) | Effect::TestSpawn(instance)) = effect else {
                    continue;
                };
                let p = plan(&instance, 3);
                for pipe in &p.pipes {
                    assert!(p.processes.iter().any(|q| q.id == pipe.from));
                    assert!(p.processes.iter().any(|q| q.id == pipe.to));
                }
                let text = instance.to_osh();
                match run(&text) {
                    Ok(back) => assert_eq!(back, vec![Effect::Spawn(instance)], "{text}"),
                    Err(e) => panic!("{}\n{text}", e.render("printed.osh", &text)),
                }
            }
        }
        Err(e) => {
            assert!(e.span.start <= e.span.end && e.span.end <= src.len());
            let line_count = src.split('\n').count();
            assert!(e.span.line >= 1 && e.span.line <= line_count, "{e:?}");
            assert!(e.span.column >= 1);
            let rendered = e.render("f.osh", src);
            assert!(rendered.starts_with(&format!("f.osh:{e}")));
        }
    }
});
