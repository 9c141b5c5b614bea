use super::*;
use proptest::prelude::*;
use serde_json::json;

const PRICED: ModelBounds = ModelBounds {
    context_window: None,
    price_in_micro: 2_500_000,
    price_out_micro: 10_000_000,
};

fn planned(endpoint: Endpoint, body: &Value, bounds: ModelBounds) -> (Parsed, Planned) {
    let bytes = serde_json::to_vec(body).expect("json");
    let parsed = parse(endpoint, &bytes).expect("parses");
    let plan = plan(&parsed, "up", bounds);
    (parsed, plan)
}

#[test]
fn a_huge_max_tokens_is_clamped_and_never_wraps() {
    for max in [json!(i64::MAX), json!(u64::MAX), json!(i64::MAX - 1)] {
        let body = json!({"model": "m", "messages": [], "max_tokens": max, "n": 128});
        let (_, p) = planned(Endpoint::Chat, &body, PRICED);
        assert_eq!(p.max_output, Some(MAX_OUTPUT_CEILING));
        assert_eq!(p.body["max_tokens"], json!(MAX_OUTPUT_CEILING));
        assert!(p.worst.tokens > 128 * MAX_OUTPUT_CEILING, "{:?}", p.worst);
        assert!(p.worst.cost_nano > 0);
        let windowed = ModelBounds {
            context_window: Some(8192),
            ..PRICED
        };
        let (_, p) = planned(Endpoint::Chat, &body, windowed);
        assert_eq!(p.body["max_tokens"], json!(8192));
        assert_eq!(p.worst.tokens, 128 * 8192);
    }
}

#[test]
fn answers_multiply_output_and_best_of_counts_every_candidate() {
    let (one_parsed, one) = planned(
        Endpoint::Chat,
        &json!({"model": "m", "messages": [], "max_tokens": 100}),
        PRICED,
    );
    let (four_parsed, four) = planned(
        Endpoint::Chat,
        &json!({"model": "m", "messages": [], "max_tokens": 100, "n": 4}),
        PRICED,
    );
    let longer = i64::try_from(four_parsed.bytes - one_parsed.bytes).expect("small");
    assert_eq!(four.worst.tokens - one.worst.tokens, 300 + longer);
    let (parsed, _) = planned(
        Endpoint::Completions,
        &json!({"model": "m", "prompt": "x", "max_tokens": 10, "n": 2, "best_of": 5}),
        PRICED,
    );
    assert_eq!(parsed.answers, 5);
    let best_of_in_chat = json!({"model": "m", "messages": [], "best_of": 5});
    let (parsed, plan) = planned(Endpoint::Chat, &best_of_in_chat, PRICED);
    assert_eq!(parsed.answers, 1);
    assert!(!plan.body.contains_key("best_of"));
}

#[test]
fn a_null_limit_is_no_limit_and_the_default_is_written() {
    let (parsed, p) = planned(
        Endpoint::Chat,
        &json!({"model": "m", "messages": [], "max_completion_tokens": null, "max_tokens": 9999}),
        PRICED,
    );
    assert_eq!(parsed.max_output, Some((9999, OutputField::MaxTokens)));
    assert_eq!(p.body["max_tokens"], json!(9999));
    assert!(!p.body.contains_key("max_completion_tokens"));
    let (_, p) = planned(
        Endpoint::Chat,
        &json!({"model": "m", "messages": []}),
        PRICED,
    );
    assert_eq!(p.body["max_tokens"], json!(DEFAULT_MAX_OUTPUT));
    // Both names given: the newer one wins and both say the same.
    let (_, p) = planned(
        Endpoint::Chat,
        &json!({"model": "m", "messages": [], "max_completion_tokens": 10, "max_tokens": 5000}),
        PRICED,
    );
    assert_eq!(
        (&p.body["max_completion_tokens"], &p.body["max_tokens"]),
        (&json!(10), &json!(10))
    );
}

#[test]
fn only_the_endpoints_fields_go_on() {
    let body = json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "fallbacks": ["other-model"], "api_base": "http://169.254.169.254", "metadata": {"tags": ["x"]},
        "mock_response": "free", "service_tier": "priority", "temperature": 0.2,
        "stream": true, "stream_options": {"include_usage": false, "extra": 1}
    });
    let (parsed, p) = planned(Endpoint::Chat, &body, PRICED);
    let mut dropped = parsed.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        [
            "api_base",
            "fallbacks",
            "metadata",
            "mock_response",
            "service_tier"
        ]
    );
    assert_eq!(p.body["model"], "up");
    assert_eq!(p.body["temperature"], json!(0.2));
    assert_eq!(p.body["stream_options"], json!({"include_usage": true}));
    let (_, p) = planned(
        Endpoint::Embeddings,
        &json!({"model": "m", "input": "x", "max_tokens": 5, "n": 3}),
        PRICED,
    );
    assert_eq!(p.body.keys().collect::<Vec<_>>(), ["input", "model"]);
    assert_eq!(p.max_output, None);
}

#[test]
fn bad_accounting_fields_are_400s() {
    for body in [
        json!({"model": "m", "max_tokens": -1}),
        json!({"model": "m", "max_tokens": 0}),
        json!({"model": "m", "max_tokens": 1.5}),
        json!({"model": "m", "max_tokens": "10"}),
        json!({"model": "m", "max_completion_tokens": i64::MIN}),
        json!({"model": "m", "n": 0}),
        json!({"model": "m", "n": 129}),
        json!({"model": "m", "stream": "yes"}),
    ] {
        let bytes = serde_json::to_vec(&body).expect("json");
        let err = parse(Endpoint::Chat, &bytes).expect_err(&body.to_string());
        assert!(!err.0.is_empty(), "{body}");
    }
    let bytes = br#"{"model":"m","prompt":"x","n":4,"best_of":2}"#;
    assert!(parse(Endpoint::Completions, bytes).is_err());
}

#[test]
fn media_parts_count_their_allowance() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    ]}], "max_tokens": 10});
    let (parsed, p) = planned(Endpoint::Chat, &body, PRICED);
    assert_eq!(parsed.media, 1);
    assert!(p.worst.tokens >= MEDIA_ALLOWANCE + 10);
}

/// A JSON request with arbitrary accounting fields.
fn request() -> impl Strategy<Value = (Endpoint, Value)> {
    let endpoint = prop_oneof![
        Just(Endpoint::Chat),
        Just(Endpoint::Completions),
        Just(Endpoint::Embeddings)
    ];
    // Mostly valid values (small and huge), some invalid ones.
    let number = prop_oneof![
        1 => Just(Value::Null),
        4 => (1i64..=128).prop_map(Value::from),
        2 => (1i64..=i64::MAX).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
    ];
    (
        endpoint,
        "[a-z ]{0,400}",
        proptest::option::of(number.clone()),
        proptest::option::of(number.clone()),
        proptest::option::of(number.clone()),
        proptest::option::of(number),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(endpoint, text, max, max_c, n, best_of, images, stream)| {
            let mut parts = vec![json!({"type": "text", "text": text})];
            parts.extend(
                (0..images).map(|_| json!({"type": "image_url", "image_url": {"url": "u"}})),
            );
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": parts}],
                                  "prompt": text, "input": text, "stream": stream});
            for (name, value) in [
                ("max_tokens", max),
                ("max_completion_tokens", max_c),
                ("n", n),
                ("best_of", best_of),
            ] {
                if let Some(v) = value {
                    body[name] = v;
                }
            }
            (endpoint, body)
        })
}

fn bounds() -> impl Strategy<Value = ModelBounds> {
    (
        proptest::option::of(prop_oneof![1i64..300_000, Just(i64::from(i32::MAX))]),
        prop_oneof![0i64..100_000_000, Just(i64::MAX / 1000)],
        prop_oneof![0i64..100_000_000, Just(i64::MAX / 1000)],
    )
        .prop_map(
            |(context_window, price_in_micro, price_out_micro)| ModelBounds {
                context_window,
                price_in_micro,
                price_out_micro,
            },
        )
}

/// The most an upstream that obeys the forwarded body can use: a prompt of at most one
/// token a byte (plus the media allowance), within the window, and per answer at most the
/// written limit, within what the window leaves.
fn most_spent(parsed: &Parsed, plan: &Planned, bounds: ModelBounds, prompt: i64) -> Amount {
    let window = bounds.context_window;
    let room = window.map_or(i64::MAX, |w| (w - prompt).max(0));
    let each = plan.max_output.unwrap_or(i64::MAX).min(room);
    let each = if parsed.answers == 0 { 0 } else { each };
    let output = parsed.answers.saturating_mul(each);
    Amount {
        tokens: prompt.saturating_add(output),
        cost_nano: cost_nano(
            prompt,
            output,
            bounds.price_in_micro,
            bounds.price_out_micro,
        ),
    }
}

proptest! {
    #[test]
    fn the_reservation_covers_whatever_the_upstream_may_spend(
        (endpoint, body) in request(),
        bounds in bounds(),
        prompt_share in 0.0f64..=1.0,
    ) {
        let bytes = serde_json::to_vec(&body).expect("json");
        let Ok(parsed) = parse(endpoint, &bytes) else {
            return Ok(());
        };
        let plan = plan(&parsed, "up", bounds);
        prop_assert!(plan.worst.tokens >= 0 && plan.worst.cost_nano >= 0, "{:?}", plan.worst);
        // The upstream can't answer without a written or windowed limit.
        if parsed.answers > 0 {
            prop_assert!(plan.max_output.is_some() || bounds.context_window.is_some());
        }
        if let Some(m) = plan.max_output {
            prop_assert!(m >= 1);
            prop_assert_eq!(plan.body.get(if plan.body.contains_key("max_completion_tokens") { "max_completion_tokens" } else { "max_tokens" }), Some(&Value::from(m)));
        }
        // Any real prompt size up to the bound.
        let most_prompt = i64::try_from(bytes.len()).unwrap_or(i64::MAX)
            .saturating_add(parsed.media.saturating_mul(MEDIA_ALLOWANCE))
            .min(bounds.context_window.unwrap_or(i64::MAX));
        #[expect(clippy::cast_possible_truncation, reason = "a share of a bound, within range")]
        let prompt = ((most_prompt as f64) * prompt_share) as i64;
        let spent = most_spent(&parsed, &plan, bounds, prompt.clamp(0, most_prompt));
        prop_assert!(plan.worst.tokens >= spent.tokens, "{:?} < {:?}", plan.worst, spent);
        prop_assert!(plan.worst.cost_nano >= spent.cost_nano, "{:?} < {:?}", plan.worst, spent);
        for name in plan.body.keys() {
            prop_assert!(endpoint.fields().contains(&name.as_str()), "{name} forwarded");
        }
    }

    #[test]
    fn any_bytes_are_a_request_or_a_400(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for endpoint in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
            if let Err(err) = parse(endpoint, &bytes) {
                prop_assert!(!err.0.is_empty());
            }
        }
    }
}
