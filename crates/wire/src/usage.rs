//! The usage an upstream reports: in a whole answer's `usage`, or in an SSE stream's last
//! `data:` event (the gateway asks for it with `stream_options.include_usage`); a stream
//! without one is counted by its events.

/// Reads `data:` lines of an SSE stream for the usage object (and counts events as a fallback).
#[derive(Default)]
pub struct SseScanner {
    line: Vec<u8>,
    pub usage: Option<(i64, i64)>,
    pub events: i64,
    pub saw_done: bool,
}

/// The longest line kept while looking for usage (longer lines are content, passed through).
const MAX_LINE: usize = 1024 * 1024;

impl SseScanner {
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.line.len() + end <= MAX_LINE {
                self.line.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.line);
                self.line(&line);
            } else {
                self.line.clear();
            }
            rest = &rest[end + 1..];
        }
        if self.line.len() + rest.len() <= MAX_LINE {
            self.line.extend_from_slice(rest);
        }
    }

    pub fn finish(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.line(&line);
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.saw_done = true;
            return;
        }
        self.events += 1;
        if mentions_usage(data)
            && let Ok(parsed) = serde_json::from_slice::<WithUsage>(data)
            && let Some(usage) = parsed.usage
        {
            self.usage = Some(usage.pair());
        }
    }
}

fn mentions_usage(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b"\"usage\":")
}

/// The `usage` of a whole (non-streamed) answer: `Ok(None)` when it has none, `Err` when the
/// answer is not a JSON object.
pub fn answer_usage(body: &[u8]) -> Result<Option<(i64, i64)>, serde_json::Error> {
    serde_json::from_slice::<WithUsage>(body).map(|parsed| parsed.usage.map(Usage::pair))
}

#[derive(serde::Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

/// Token counts as an upstream reports them (any JSON number: a hostile or broken upstream's
/// negative, fractional or huge counts are read as 0 or saturated, never as an error).
#[derive(serde::Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<serde_json::Number>,
    #[serde(default)]
    completion_tokens: Option<serde_json::Number>,
}

impl Usage {
    fn pair(self) -> (i64, i64) {
        (count(self.prompt_tokens), count(self.completion_tokens))
    }
}

fn count(n: Option<serde_json::Number>) -> i64 {
    let Some(n) = n else { return 0 };
    if let Some(i) = n.as_i64() {
        i.max(0)
    } else if n.is_u64() {
        i64::MAX
    } else {
        // A fraction or an exponent: whole tokens, within range (`as` saturates).
        #[expect(
            clippy::cast_possible_truncation,
            reason = "`as` saturates, which is what an absurd count should become"
        )]
        let whole = n.as_f64().map_or(0, |f| f.max(0.0).ceil() as i64);
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scanner_finds_usage_across_chunk_boundaries() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let mut s = SseScanner::default();
            s.feed(&stream[..split]);
            s.feed(&stream[split..]);
            s.finish();
            assert_eq!(s.usage, Some((7, 3)), "split at {split}");
            assert_eq!(s.events, 2);
            assert!(s.saw_done);
        }
    }

    #[test]
    fn scanner_counts_events_without_usage() {
        let mut s = SseScanner::default();
        s.feed(b"data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\n\n: comment\n\n");
        s.finish();
        assert_eq!((s.usage, s.events, s.saw_done), (None, 2, false));
    }

    #[test]
    fn odd_counts_are_read_not_refused() {
        let usage = |text: &str| answer_usage(text.as_bytes()).expect("json");
        assert_eq!(
            usage(r#"{"usage":{"prompt_tokens":-5,"completion_tokens":2.5}}"#),
            Some((0, 3))
        );
        assert_eq!(
            usage(r#"{"usage":{"prompt_tokens":18446744073709551615}}"#),
            Some((i64::MAX, 0))
        );
        assert_eq!(
            usage(r#"{"usage":{"prompt_tokens":1e300,"completion_tokens":null}}"#),
            Some((i64::MAX, 0))
        );
        assert_eq!(usage(r#"{"choices":[]}"#), None);
        assert!(answer_usage(b"not json").is_err());
    }

    proptest! {
        /// However a stream is cut into chunks, the scanner sees the same events and usage.
        #[test]
        fn chunking_does_not_change_what_is_read(
            events in proptest::collection::vec(("[a-z\\[\\]{}\":, ]{0,40}", any::<bool>()), 0..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut stream = String::new();
            for (text, usage) in &events {
                if *usage {
                    stream.push_str("data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n");
                } else {
                    stream.push_str("data: ");
                    stream.push_str(text);
                    stream.push_str("\n\n");
                }
            }
            let bytes = stream.as_bytes();
            let mut whole = SseScanner::default();
            whole.feed(bytes);
            whole.finish();
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = SseScanner::default();
            let mut from = 0;
            for cut in at {
                pieces.feed(&bytes[from..cut]);
                from = cut;
            }
            pieces.feed(&bytes[from..]);
            pieces.finish();
            prop_assert_eq!((whole.usage, whole.events, whole.saw_done), (pieces.usage, pieces.events, pieces.saw_done));
        }
    }
}
