package app_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

var percentRE = regexp.MustCompile(`^[0-9]+\.[0-9]{2}%$`)

// usage returns GET /media/cpu or /media/memory, checked to be a JSON
// string such as "12.50%", as a number.
func usage(t testing.TB, srv *testpeer.Server, path string) float64 {
	t.Helper()
	r := srv.REST.Do(http.MethodGet, path, "", nil)
	wantStatus(t, r, http.StatusOK)
	var s string
	if err := r.Decode(&s); err != nil {
		t.Fatal(err)
	}
	if !percentRE.MatchString(s) {
		t.Fatalf("%s is %q, want a percentage such as \"12.50%%\"", path, s)
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 || v > 100 {
		t.Fatalf("%s is %q, want a percentage in [0, 100]", path, s)
	}
	return v
}

// The media server's CPU and memory are percentages; while a broadcast
// runs, the CPU figure becomes non-zero (it is measured, not made up).
func TestMediaUsage(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	r := srv.REST.Do(http.MethodGet, "/healthcheck/_check", "", nil)
	wantStatus(t, r, http.StatusOK)
	var health map[string]string
	if err := r.Decode(&health); err != nil || len(health) != 1 || health["status"] != "UP" {
		t.Errorf("/healthcheck/_check is %s, want {\"status\":\"UP\"}", r.Body)
	}

	usage(t, srv, "/media/memory")
	usage(t, srv, "/media/cpu")
	broadcast(t, srv, "ann@example.com", "v1@example.com")
	var cpu float64
	if !testpeer.Eventually(timeout, func() bool { cpu = usage(t, srv, "/media/cpu"); return cpu > 0 }) {
		t.Errorf("/media/cpu stays %.2f%% while a broadcast runs", cpu)
	}
	t.Logf("cpu %.2f%%, memory %.2f%%", cpu, usage(t, srv, "/media/memory"))
}

// Empty lists are [] (not null), as the protocol's clients expect.
func TestEmptyListsAreArrays(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	for _, path := range []string{"/room/list", "/media/pipelines", "/media/pipelines/exception"} {
		r := srv.REST.Do(http.MethodGet, path, "", nil)
		wantStatus(t, r, http.StatusOK)
		if got := strings.TrimSpace(string(r.Body)); got != "[]" {
			t.Errorf("%s is %s, want []", path, got)
		}
	}
}

// The orphan API finds nothing through a broadcast's whole life (every
// pipeline belongs to a room, even before its presenter connects), and
// reclaiming then touches nothing.
func TestOrphanAPIThroughALifecycle(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const ann = "ann@example.com"
	noOrphans := func(when string) {
		t.Helper()
		ps, err := srv.REST.Orphans()
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 0 {
			t.Errorf("%s: /media/pipelines/exception is %+v, want []", when, ps)
		}
		wantStatus(t, srv.REST.ReclaimOrphans(), http.StatusNoContent)
	}
	noOrphans("before any room")
	wantStatus(t, srv.REST.CreateRoom(ann, ann, "t", "p"), http.StatusCreated)
	wantStatus(t, srv.REST.Join("early@example.com", ann), http.StatusCreated)
	noOrphans("before the presenter connects")
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Pipelines: 1, Endpoints: 2})
	wantStatus(t, srv.REST.Leave("early@example.com"), http.StatusNoContent)

	ws := testpeer.MustWS(t, srv)
	p, err := srv.PresentOn(within(t), ws, ann, ann, testpeer.PresenterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	v := testpeer.MustViewer(t, srv, "v1@example.com", ann, testpeer.ViewerOptions{})
	wantMedia(t, v, 15)
	noOrphans("during the broadcast")
	// Reclaiming left the broadcast alone.
	wantMoreMedia(t, v, 15)
	if got, want := srv.Counts(), (live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2}); got != want {
		t.Errorf("after reclaiming: counts %+v, want %+v", got, want)
	}
	waitRoomCount(t, srv, ann, "1")

	wantStatus(t, srv.REST.EndRoom(ann), http.StatusNoContent)
	wantStop(t, v.WS, v.Email, "Presenter stopped streaming.")
	srv.WaitCounts(t, timeout, live.Counts{})
	noOrphans("after the end")
}
