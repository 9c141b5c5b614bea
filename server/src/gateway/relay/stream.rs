//! A streamed answer passed through chunk by chunk, with the ticket that settles and logs the
//! request however the stream ends (finished, cut by the upstream, or dropped by the client).

use super::*;

/// Passes an SSE stream through chunk by chunk, reading the usage as it goes by.
pub(super) fn stream_through(
    gw: &Arc<Gateway>,
    response: reqwest::Response,
    mut ticket: Ticket,
) -> Response {
    ticket.streaming = true;
    struct State {
        upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        ticket: Ticket,
        idle: Duration,
        closing: tokio::sync::watch::Receiver<bool>,
        done: bool,
    }
    let state = State {
        upstream: response.bytes_stream().boxed(),
        ticket,
        idle: gw.config.idle_timeout,
        closing: gw.closing.subscribe(),
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let next = tokio::select! {
            next = tokio::time::timeout(st.idle, st.upstream.next()) => next,
            () = closed(&mut st.closing) => {
                st.done = true;
                st.ticket.scanner.finish();
                st.ticket.ended = true;
                st.ticket.status = 503;
                st.ticket.error_code = Some("server_shutting_down".into());
                let err = ApiError::shutting_down(
                    "This server is restarting and could not finish the answer; ask again.",
                );
                let event = format!("\n\ndata: {}\n\ndata: [DONE]\n\n", err.body());
                return Some((Ok(Bytes::from(event)), st));
            }
        };
        match next {
            Ok(Some(Ok(chunk))) => {
                st.ticket.scanner.feed(&chunk);
                Some((Ok::<Bytes, std::convert::Infallible>(chunk), st))
            }
            Ok(None) => {
                st.ticket.stream_ended();
                None
            }
            Ok(Some(Err(_))) | Err(_) => {
                st.done = true;
                st.ticket.scanner.finish();
                st.ticket.ended = true;
                st.ticket.status = 502;
                st.ticket.error_code = Some("upstream_interrupted".into());
                let err =
                    ApiError::upstream("The upstream stream broke off; the answer is incomplete.");
                let event = format!("\n\ndata: {}\n\ndata: [DONE]\n\n", err.body());
                Some((Ok(Bytes::from(event)), st))
            }
        }
    });
    // A client that leaves early drops the state, and with it the upstream request and the
    // ticket (settled with what the scanner saw so far).
    let mut out = Response::new(Body::from_stream(body));
    let headers = out.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    out
}

/// Resolves once the gateway closes its streams (never, if it is gone without closing).
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|closing| *closing).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One request's accounting: settled and logged when dropped, however the request ended.
pub(super) struct Ticket {
    /// The key's place among its requests in flight, freed with the ticket.
    pub(super) _in_flight: crate::gateway::keys::InFlight,
    pub(super) gw: Arc<Gateway>,
    pub(super) caller: Arc<Caller>,
    pub(super) model: Arc<Model>,
    pub(super) endpoint: Endpoint,
    pub(super) stream: bool,
    pub(super) started: Instant,
    pub(super) first_byte: Option<Duration>,
    pub(super) reservation: Option<Reservation>,
    pub(super) prompt_estimate: i64,
    /// What the upstream said it used.
    pub(super) reported: Option<(i64, i64)>,
    /// Completion tokens counted here when the upstream says nothing.
    pub(super) counted_output: i64,
    /// A stream's usage and event count.
    pub(super) scanner: SseScanner,
    /// The answer went out whole (or the stream reached its end).
    pub(super) ended: bool,
    /// The answer is an SSE stream passed through.
    pub(super) streaming: bool,
    pub(super) status: u16,
    pub(super) error_code: Option<String>,
    /// The request's near-identity, for the runaway-agent breaker.
    pub(super) fingerprint: u64,
}

impl Ticket {
    /// The upstream's stream ended; without `[DONE]` it broke off.
    pub(super) fn stream_ended(&mut self) {
        self.scanner.finish();
        self.ended = true;
        if !self.scanner.saw_done {
            self.status = 502;
            self.error_code = Some("upstream_incomplete".into());
        }
    }

    /// Marks the request failed with `err` (nothing was used) and hands the error back.
    pub(super) fn fail(&mut self, err: ApiError) -> ApiError {
        self.status = err.status.as_u16();
        self.error_code = Some(err.code.to_owned());
        self.prompt_estimate = 0;
        err
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.streaming {
            self.reported = self.scanner.usage;
            self.counted_output = self.scanner.events;
            if !self.ended && self.status < 400 {
                // The client left before the end: what was used so far still counts.
                self.status = 499;
                self.error_code = Some("client_closed".into());
            }
        }
        let (prompt, completion, estimated) = match self.reported {
            Some((p, c)) => (p, c, false),
            None if self.status >= 400 && self.status != 499 && self.counted_output == 0 => {
                (0, 0, false)
            }
            None => (self.prompt_estimate, self.counted_output, true),
        };
        let cost = cost_nano(
            prompt,
            completion,
            self.model.price_in_micro,
            self.model.price_out_micro,
        );
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(Amount {
                tokens: prompt.saturating_add(completion),
                cost_nano: cost,
            });
        }
        let failed = self.status >= 400 && self.status != 499;
        self.gw
            .breaker_saw(&self.caller, cost, failed, self.fingerprint);
        let metrics = &self.gw.metrics;
        metrics.used(&self.model.alias, prompt, completion, self.first_byte);
        if self.streaming {
            let outcome = match self.status {
                499 => "client_closed",
                400.. => "broken",
                _ => "done",
            };
            metrics.stream_ended(&self.model.alias, outcome);
        }
        let elapsed = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.gw.usage.record(Record {
            at: time::OffsetDateTime::now_utc(),
            user_id: self.caller.user_id,
            username: self.caller.username.clone(),
            key_id: self.caller.key_id,
            runtime_key: self.caller.runtime_key,
            model_alias: self.model.alias.clone(),
            endpoint: self.endpoint.label(),
            stream: self.stream,
            status: self.status,
            error_code: self.error_code.take(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            estimated,
            cost_nano: cost,
            latency_ms: elapsed(self.started.elapsed()),
            ttfb_ms: self.first_byte.map(elapsed),
        });
    }
}
