//! A gateway request body, as any client may send it: parsing never panics, and whatever is
//! accepted is planned within the invariants the quota layer relies on.
#![no_main]

use clawloops_wire::request::{self, Endpoint, ModelBounds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the endpoint and the model's bounds; the rest is the body.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let endpoint = match pick % 3 {
        0 => Endpoint::Chat,
        1 => Endpoint::Completions,
        _ => Endpoint::Embeddings,
    };
    let bounds = ModelBounds {
        context_window: (pick & 4 != 0).then_some(i64::from(pick) * 1000 + 1),
        price_in_micro: if pick & 8 != 0 { i64::MAX / 1000 } else { 2_500_000 },
        price_out_micro: if pick & 16 != 0 { i64::MAX } else { 10_000_000 },
    };
    let Ok(parsed) = request::parse(endpoint, body) else {
        return;
    };
    let plan = request::plan(&parsed, "upstream-model", bounds);
    assert!(plan.worst.tokens >= 0 && plan.worst.cost_nano >= 0, "{:?}", plan.worst);
    for name in plan.body.keys() {
        assert!(endpoint.fields().contains(&name.as_str()), "{name} forwarded");
    }
    if let Some(max) = plan.max_output {
        assert!(max >= 1);
        if let Some(window) = bounds.context_window {
            assert!(max <= window);
        }
    }
    if parsed.answers > 0 {
        // The upstream is bounded: by the written limit or by the model's window.
        assert!(plan.max_output.is_some() || bounds.context_window.is_some());
    }
    assert!(serde_json::to_vec(&plan.body).is_ok());
});
