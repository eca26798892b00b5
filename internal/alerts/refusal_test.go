package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/alerts"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/whip"
)

// While the engine is over its hard limit, a new broadcast is refused with
// 503 and the protocol's error body (REST) or a 503 problem (WHIP); once it
// is back under, broadcasts start again. The API, the domain and the media
// engine are the real ones; only the usage reading is a fake.
func TestRefusedWhileOverloaded(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	engine, err := sfu.New(sfu.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	u := &usage{}
	mon := alerts.New(alerts.Config{Sustain: 1, CPUWarn: 80, CPUMax: 95, MemMax: 90, Logger: log}, u.engine())
	svc := live.New(store.NewMemory(), engine, live.Options{Logger: log, Admit: mon.Overloaded})
	srv := httptest.NewServer(httpapi.New(svc, httpapi.Config{BasePath: "/signal", Logger: log,
		WHIP: whip.New(svc, whip.Config{Logger: log})}))
	t.Cleanup(func() {
		srv.Close()
		svc.Shutdown(context.Background())
		_ = engine.Close()
	})

	post := func(path, contentType, body string, header ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	goLive := func(email, room string) (int, string) {
		return post("/signal/room/live", "application/json",
			`{"roomId":"`+room+`","title":"t","profileUrl":"https://example.com/p.png"}`, "email", email)
	}

	u.set(97, 10)
	mon.Sample()
	status, body := goLive("a@x", "r1")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("POST /room/live while overloaded: %d %s, want 503", status, body)
	}
	var e struct {
		Name    string `json:"name"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if e.Name != "UNAVAILABLE" || e.Code != 5030 ||
		!strings.HasPrefix(e.Message, "The server cannot take this request now.") || !strings.Contains(e.Message, "CPU at 97.0%") {
		t.Errorf("error body %s, want UNAVAILABLE 5030 naming the CPU", body)
	}
	status, body = post("/whip/r2", "application/sdp", "v=0\r\n")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "hard limit") {
		t.Errorf("WHIP POST while overloaded: %d %s, want 503", status, body)
	}
	if c := svc.Counts(); c != (live.Counts{}) {
		t.Errorf("a refused broadcast left %+v", c)
	}

	u.set(50, 10)
	mon.Sample()
	if status, body := goLive("a@x", "r1"); status != http.StatusCreated {
		t.Fatalf("POST /room/live after recovery: %d %s, want 201", status, body)
	}
	// Viewers are not refused: the limit is on new broadcasts.
	u.set(99, 10)
	mon.Sample()
	if status, body := post("/signal/room/view", "application/json", `{"roomId":"r1"}`, "email", "v@x"); status != http.StatusCreated {
		t.Errorf("POST /room/view while overloaded: %d %s, want 201", status, body)
	}
}
