package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/onair-live/onair/internal/live"
)

// errorBody is the protocol's error shape.
type errorBody struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// status maps a domain error to its HTTP status: the one place that does.
func status(e *live.Error) int {
	switch e.Kind {
	case live.KindBadRequest:
		return http.StatusBadRequest
	case live.KindConflict:
		return http.StatusConflict
	case live.KindUnavailable:
		return http.StatusServiceUnavailable
	case live.KindUnauthorized:
		return http.StatusUnauthorized
	case live.KindForbidden:
		return http.StatusForbidden
	case live.KindTooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// writeError renders err in the protocol's shape. The protocol's message
// comes first, then what exactly was wrong, so that existing clients that
// match the message by prefix still work and people can see the cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *live.Error
	if !errors.As(err, &e) {
		e = live.ErrInternal.Wrap(err)
	}
	body := errorBody{Name: e.Name, Code: e.Code, Message: e.Message}
	if e.Detail != "" {
		body.Message += " " + e.Detail
	}
	code := status(e)
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
		"status", code, "error", e.Name, "detail", e.Detail, "err", e.Err)
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
