//! What an upstream sends back, as a hostile or broken upstream may send it: reading usage from
//! an answer or a stream never panics, never reports negative counts, and a stream reads the
//! same however it is cut into chunks.
#![no_main]

use clawloops_wire::usage::{SseScanner, answer_usage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((prompt, completion))) = answer_usage(data) {
        assert!(prompt >= 0 && completion >= 0);
    }
    let mut whole = SseScanner::default();
    whole.feed(data);
    whole.finish();
    // Cut where the first bytes say (as a network may).
    let mut pieces = SseScanner::default();
    let mut rest = data;
    let mut step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(step.min(rest.len()));
        pieces.feed(chunk);
        rest = tail;
        step = step * 7 % 61 + 1;
    }
    pieces.finish();
    assert_eq!(
        (whole.usage, whole.events, whole.saw_done),
        (pieces.usage, pieces.events, pieces.saw_done)
    );
    if let Some((prompt, completion)) = whole.usage {
        assert!(prompt >= 0 && completion >= 0);
    }
});
