// Package cookiejail is a Traefik middleware (a local plugin, run by Traefik's Go interpreter)
// for the workspace routers: it drops every Set-Cookie header of a runtime's response that has
// a Domain attribute.
//
// A workspace is served at <name>.<workspace domain>, below the domain the ClawLoops session
// cookie is scoped to. A page from a runtime could otherwise set cookies for that parent
// domain: swap in another session for the control plane, or fill the jar until every request
// to every workspace is refused as too large. A cookie without Domain stays on the
// workspace's own host, which is the runtime's business, and passes unchanged.
package cookiejail

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Config has no settings.
type Config struct{}

// CreateConfig is called by Traefik for the middleware's configuration.
func CreateConfig() *Config { return &Config{} }

type jail struct{ next http.Handler }

// New is called by Traefik for each router that uses the middleware.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &jail{next: next}, nil
}

func (j *jail) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	j.next.ServeHTTP(&writer{rw: rw}, req)
}

// writer filters the response's cookies once, just before its head is sent.
type writer struct {
	rw      http.ResponseWriter
	checked bool
}

func (w *writer) Header() http.Header { return w.rw.Header() }

func (w *writer) WriteHeader(code int) {
	w.check()
	w.rw.WriteHeader(code)
}

func (w *writer) Write(b []byte) (int, error) {
	w.check()
	return w.rw.Write(b)
}

// Flush passes streamed answers on as they come.
func (w *writer) Flush() {
	w.check()
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands WebSocket upgrades (the OpenClaw UI) to the proxy.
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.check()
	if h, ok := w.rw.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, fmt.Errorf("cookiejail: %T cannot be hijacked", w.rw)
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.rw }

func (w *writer) check() {
	if w.checked {
		return
	}
	w.checked = true
	header := w.rw.Header()
	cookies := header.Values("Set-Cookie")
	if len(cookies) == 0 {
		return
	}
	header.Del("Set-Cookie")
	for _, cookie := range cookies {
		if !namesDomain(cookie) {
			header.Add("Set-Cookie", cookie)
		}
	}
}

// namesDomain tells whether a Set-Cookie value has a Domain attribute, however it is spelled
// (browsers match attribute names without regard to case and around spaces).
func namesDomain(cookie string) bool {
	attributes := strings.Split(cookie, ";")
	for _, attribute := range attributes[1:] {
		name := attribute
		if i := strings.Index(name, "="); i >= 0 {
			name = name[:i]
		}
		if strings.EqualFold(strings.TrimSpace(name), "domain") {
			return true
		}
	}
	return false
}
