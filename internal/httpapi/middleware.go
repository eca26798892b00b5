package httpapi

import (
	"net/http"
	"runtime/debug"

	"github.com/onair-live/onair/internal/live"
)

// cors lets browser pages and players on the allowed origins (any, by
// default, so that a page served from anywhere works) call the API and read the
// WHIP/WHEP response headers. A request from another origin is refused
// with 403, the WebSocket's upgrade included.
func (a *api) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			if !a.origins.allowed(r) {
				a.rejected(RejectOrigin)
				writeError(w, r, a.log, live.ErrForbidden.With("origin %q is not allowed", origin))
				return
			}
			h := w.Header()
			if a.origins.any {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
			h.Set("Access-Control-Allow-Headers", "Content-Type, email, Authorization, If-Match")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
			h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Post, Retry-After, WWW-Authenticate")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler's panic into a 500 with the protocol's error body
// and a log line with the stack, so one bad request never takes the server down.
func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path,
					"panic", v, "stack", string(debug.Stack()))
				writeJSON(w, http.StatusInternalServerError, errorBody{Name: "INTERNAL", Code: 5000, Message: "Internal Server Error."})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
