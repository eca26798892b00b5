package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/live"
)

// errorBody is the protocol's error shape.
type errorBody struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeError renders err in the protocol's shape, from the protocol's error
// table (apierr). The protocol's message comes first, then what exactly was
// wrong, so that existing clients that match the message by prefix still
// work and people can see the cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	en, e := apierr.Lookup(err)
	body := errorBody{Name: en.Name, Code: en.Code, Message: en.Message}
	if e.Detail != "" {
		body.Message += " " + e.Detail
	}
	code := en.Status
	if errors.Is(err, live.ErrNodeBusy) {
		// A cluster node that is draining or full: the client (or its load
		// balancer) retries, and reaches another node.
		w.Header().Set("Retry-After", "1")
	}
	lvl := slog.LevelInfo
	switch {
	case code >= 500:
		lvl = slog.LevelError
	case code == http.StatusTooManyRequests:
		lvl = slog.LevelDebug // a flood must not flood the log: metrics count them
	}
	log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", code, "error", en.Name, "detail", e.Detail, "err", e.Err)
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
