package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// Every error of the protocol's table that a client can provoke comes back
// with its status, name, code and message, and changes nothing.
func TestRESTErrors(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxMessageBytes = 4096 })
	c := srv.REST
	wantStatus(t, c.CreateRoom("ann@example.com", "room-a", "Ann live", "https://example.com/ann.png"), http.StatusCreated)
	wantStatus(t, c.Join("vic@example.com", "room-a"), http.StatusCreated)

	const (
		alreadyIn = "You already in streaming."
		noRoom    = "ROOM not exists."
		noUser    = "User not exists."
		invalid   = "The request is not valid."
	)
	room := func(roomID, title, profileURL string) map[string]string {
		return map[string]string{"roomId": roomID, "title": title, "profileUrl": profileURL}
	}
	tests := []struct {
		name    string
		do      func() testpeer.Response
		status  int
		errName string
		code    int
		message string
	}{
		// 409 ALREADY_IN.
		{"a presenter creating a second room", func() testpeer.Response {
			return c.CreateRoom("ann@example.com", "room-b", "t", "p")
		}, 409, "ALREADY_IN", 5103, alreadyIn},
		{"another presenter taking a live room's id", func() testpeer.Response {
			return c.CreateRoom("bob@example.com", "room-a", "t", "p")
		}, 409, "ALREADY_IN", 5103, alreadyIn},
		{"a viewer going live", func() testpeer.Response {
			return c.CreateRoom("vic@example.com", "room-v", "t", "p")
		}, 409, "ALREADY_IN", 5103, alreadyIn},
		{"a viewer joining twice", func() testpeer.Response {
			return c.Join("vic@example.com", "room-a")
		}, 409, "ALREADY_IN", 5103, alreadyIn},
		{"a presenter joining its own room", func() testpeer.Response {
			return c.Join("ann@example.com", "room-a")
		}, 409, "ALREADY_IN", 5103, alreadyIn},

		// 400 NO_ROOM.
		{"joining a room that does not exist", func() testpeer.Response {
			return c.Join("new@example.com", "no-such-room")
		}, 400, "NO_ROOM", 5102, noRoom},
		{"ending without a room", func() testpeer.Response {
			return c.EndRoom("nobody@example.com")
		}, 400, "NO_ROOM", 5102, noRoom},
		{"a viewer ending the room", func() testpeer.Response {
			return c.EndRoom("vic@example.com")
		}, 400, "NO_ROOM", 5102, noRoom},
		{"endpoints of someone not presenting", func() testpeer.Response {
			return c.Do(http.MethodGet, "/media/endpoints/nobody@example.com", "", nil)
		}, 400, "NO_ROOM", 5102, noRoom},
		{"endpoints of a viewer", func() testpeer.Response {
			return c.Do(http.MethodGet, "/media/endpoints/vic@example.com", "", nil)
		}, 400, "NO_ROOM", 5102, noRoom},

		// 400 NO_USER.
		{"leaving without having joined", func() testpeer.Response {
			return c.Leave("nobody@example.com")
		}, 400, "NO_USER", 5101, noUser},
		{"a presenter leaving as a viewer", func() testpeer.Response {
			return c.Leave("ann@example.com")
		}, 400, "NO_USER", 5101, noUser},

		// 400 on missing fields.
		{"going live without the email header", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "", room("room-x", "t", "p"))
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"going live without roomId", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", room("", "t", "p"))
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"going live without title", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", map[string]string{"roomId": "room-x", "profileUrl": "p"})
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"going live with a blank profileUrl", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", room("room-x", "t", "  "))
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"joining without roomId", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/view", "x@example.com", map[string]string{})
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"joining without the email header", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/view", "", map[string]string{"roomId": "room-a"})
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"leaving without the email header", func() testpeer.Response {
			return c.Do(http.MethodDelete, "/room/view", "", nil)
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"ending without the email header", func() testpeer.Response {
			return c.Do(http.MethodDelete, "/room/live", "", nil)
		}, 400, "BAD_REQUEST", 4000, invalid},

		// 400 on bodies that are not the JSON asked for.
		{"going live with malformed JSON", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", `{"roomId": "room-x", "title": `)
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"joining with malformed JSON", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/view", "x@example.com", `{roomId: room-a}`)
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"joining with a JSON array", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/view", "x@example.com", `["room-a"]`)
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"going live with an empty body", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", "")
		}, 400, "BAD_REQUEST", 4000, invalid},
		{"going live with a body over the size cap", func() testpeer.Response {
			return c.Do(http.MethodPost, "/room/live", "x@example.com", room("room-x", strings.Repeat("t", 5000), "p"))
		}, 400, "BAD_REQUEST", 4000, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAPIError(t, tt.do(), tt.status, tt.errName, tt.code, tt.message)
		})
	}

	// None of that changed anything.
	if rs := rooms(t, srv); len(rs) != 1 || rs[0].RoomID != "room-a" || rs[0].Count != "1" || rs[0].Title != "Ann live" {
		t.Errorf("/room/list is %+v, want room-a with count 1", rs)
	}
	if got, want := srv.Counts(), (live.Counts{Rooms: 1, Viewers: 1, Pipelines: 1, Endpoints: 2}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}

	// Leaving and ending work once, and only once.
	wantStatus(t, c.Leave("vic@example.com"), http.StatusNoContent)
	wantAPIError(t, c.Leave("vic@example.com"), 400, "NO_USER", 5101, noUser)
	waitRoomCount(t, srv, "room-a", "0")
	wantStatus(t, c.EndRoom("ann@example.com"), http.StatusNoContent)
	wantAPIError(t, c.EndRoom("ann@example.com"), 400, "NO_ROOM", 5102, noRoom)
	wantAPIError(t, c.Join("vic@example.com", "room-a"), 400, "NO_ROOM", 5102, noRoom)
	if rs := rooms(t, srv); len(rs) != 0 {
		t.Errorf("/room/list is %+v after the end, want []", rs)
	}
	srv.WaitCounts(t, timeout, live.Counts{})

	// The room id and the presenter are free again.
	wantStatus(t, c.CreateRoom("vic@example.com", "room-a", "Vic live", "https://example.com/vic.png"), http.StatusCreated)
	wantStatus(t, c.EndRoom("vic@example.com"), http.StatusNoContent)
}
