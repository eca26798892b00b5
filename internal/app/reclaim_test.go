package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// A broadcast and a seat made over REST whose offer never comes are ended
// after -connect-timeout as if their clients had dropped: webhooks say so,
// and the room's place under -max-rooms and the viewer count are freed.
// Members whose offers come in time are untouched.
func TestOfferlessSeatsReclaimed(t *testing.T) {
	hr := newHookReceiver(t, false)
	srv := testpeer.StartServer(t, func(c *config.Config) {
		hr.configure(c)
		c.ConnectTimeout = 5 * time.Second // also the media's: generous for a loaded machine
		c.MaxRooms = 1
	})
	wantStatus(t, srv.REST.CreateRoom("ann@example.com", "ann", "t", "p"), http.StatusCreated)
	waitNoRooms(t, srv) // reclaimed, with no WebSocket ever opened

	const room = "bob@example.com"
	testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{}) // the one place under -max-rooms is free again
	v := testpeer.MustViewer(t, srv, "val@example.com", room, testpeer.ViewerOptions{})
	wantStatus(t, srv.REST.Join("vic@example.com", room), http.StatusCreated)
	waitRoomCount(t, srv, room, "2")
	waitRoomCount(t, srv, room, "1") // vic's seat is reclaimed; val, who offered, stays
	wantMoreMedia(t, v, 10)
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	wantStatus(t, srv.REST.EndRoom(room), http.StatusNoContent)

	got := hr.waitEvents(t, 8)
	// Webhooks keep each room's order, not one across rooms.
	byRoom := map[string][]string{}
	for _, e := range got {
		room := strings.Fields(e)[1]
		byRoom[room] = append(byRoom[room], e)
	}
	want := map[string][]string{
		"ann": {"room.started ann", "room.finished ann dropped"},
		room: {
			"room.started " + room,
			"viewer.joined " + room + " val@example.com",
			"viewer.joined " + room + " vic@example.com",
			"viewer.left " + room + " vic@example.com dropped",
			"viewer.left " + room + " val@example.com ended",
			"room.finished " + room + " ended",
		},
	}
	for r, w := range want {
		if fmt.Sprint(byRoom[r]) != fmt.Sprint(w) {
			t.Errorf("webhooks of room %s:\n got %q\nwant %q", r, byRoom[r], w)
		}
	}
}
