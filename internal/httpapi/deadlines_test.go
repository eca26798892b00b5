package httpapi

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A route wrapped in Extend answers after the server's write and read
// timeouts have passed; the same handler unwrapped cannot.
func TestExtendOutlastsServerTimeouts(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second): // four times the server's timeouts
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "late")
	})
	mux := http.NewServeMux()
	mux.Handle("GET /extended", Extend(slow, 30*time.Second))
	mux.Handle("GET /plain", slow)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	get := func(path string) (string, error) {
		c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://" + l.Addr().String() + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get("/extended"); err != nil || body != "late" {
		t.Errorf("extended route: %q, %v; want its answer", body, err)
	}
	if body, err := get("/plain"); err == nil && body == "late" {
		t.Errorf("a route without Extend answered after the write timeout: the test proves nothing")
	}
}
