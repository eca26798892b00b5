package httpapi

import (
	"net/http"
	"time"
)

// offerRouteTimeout is how long a WHIP or WHEP POST may take to answer:
// its offer is negotiated (a viewer's may wait for the presenter's) before
// the answer is written, which can outlast the server's write timeout.
const offerRouteTimeout = time.Minute

// Extend gives the requests of h d to be answered from when they start, in
// place of the server's write timeout (sized for quick requests). Routes
// that wait before answering use it: WHIP and WHEP offers, long-polling
// playlist reloads. A WebSocket needs none: its upgrade clears the
// connection's deadlines.
func Extend(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ExtendDeadlines(w, r, d)
		h.ServeHTTP(w, r)
	})
}

// ExtendDeadlines sets the write deadline of the connection serving w to d
// from now, for a handler that waits before it answers. A request without
// a body gets the same read deadline: the server watches such a connection
// for a hang-up while the handler runs, and would cancel the request when
// its read timeout passed. A body stays under the read timeout, so a slow
// sender is still cut off.
func ExtendDeadlines(w http.ResponseWriter, r *http.Request, d time.Duration) {
	rc := http.NewResponseController(w)
	until := time.Now().Add(d)
	// Errors mean a writer with no connection (a test recorder): nothing to extend.
	_ = rc.SetWriteDeadline(until)
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		_ = rc.SetReadDeadline(until)
	}
}
