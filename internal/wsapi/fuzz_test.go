package wsapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

// fakeBroadcasts is the domain as the WebSocket sees it, made of function
// fields; by default it refuses offers and has no session for candidates.
type fakeBroadcasts struct {
	present, view func(live.Session, auth.Principal, live.Offer) (string, error)
}

func (f fakeBroadcasts) Present(_ context.Context, s live.Session, who auth.Principal, o live.Offer) (string, error) {
	return f.present(s, who, o)
}

func (f fakeBroadcasts) View(_ context.Context, s live.Session, who auth.Principal, o live.Offer) (string, error) {
	return f.view(s, who, o)
}

func (fakeBroadcasts) AddCandidate(id string, _ media.Candidate) error {
	return live.ErrNoSession.With("session %s has sent no offer", id)
}

func (fakeBroadcasts) SessionClosed(string)          {}
func (fakeBroadcasts) SetLayer(string, string) error { return nil }

var messageSeeds = []string{
	`{"id":"presenter","roomId":"r","email":"a@x","sdpOffer":"v=0"}`,
	`{"id":"viewer","roomId":"r","email":"b@x","sdpOffer":"v=0"}`,
	`{"id":"onIceCandidate","roomId":"r","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
	`{"id":"onIceCandidate","roomId":"r","candidate":null}`,
	`{"id":"onIceCandidate","candidate":{"sdpMLineIndex":70000}}`,
	`{"id":"presenter","roomId":1}`,
	`{"id":"dance"}`,
	`{"id":`,
	`[]`,
	`null`,
	"\x00\xff",
	`{"id":"viewer","roomId":"r","email":"b@x","sdpOffer":"v=0","extra":{"deep":[[[[]]]]}}`,
}

// FuzzDecode: no message makes the decoder panic, and whatever it accepts
// is a JSON object.
func FuzzDecode(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q as %+v", data, m)
		}
	})
}

// FuzzHandle: no message makes a connection panic, in either mode; it is
// answered with a few messages at most, each a JSON object with an id; and
// with tokens on, the domain is never asked to act for another user than
// the token's, nor, once bound, for another user or room.
func FuzzHandle(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s), []byte(`{"id":"viewer","roomId":"q","email":"c@x","sdpOffer":"v=0"}`))
	}
	v, err := auth.NewVerifier([][]byte{[]byte(strings.Repeat("k", 32))})
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		for _, authn := range []*auth.Authenticator{auth.NewAuthenticator(nil), auth.NewAuthenticator(v)} {
			var boundUser, boundRoom string
			accept := func(s live.Session, who auth.Principal, o live.Offer) (string, error) {
				if !authn.Open() && (o.Email != "a@x" || who.Subject != "a@x") {
					t.Fatalf("the domain was asked to act for %q as %q with a token for a@x", o.Email, who.Subject)
				}
				if boundUser != "" && (o.Email != boundUser || o.RoomID != boundRoom) {
					t.Fatalf("a socket bound to %s in %s offered for %s in %s", boundUser, boundRoom, o.Email, o.RoomID)
				}
				if o.Email == "" || o.RoomID == "" || o.SDP == "" {
					return "", live.ErrMissingField // as the domain does
				}
				boundUser, boundRoom = o.Email, o.RoomID
				return "v=0 answer", nil
			}
			srv := NewServer(fakeBroadcasts{present: accept, view: accept},
				Config{Logger: log, Auth: authn, OfferTimeout: time.Second})
			sess := newSession(srv, nil, "fuzz", "127.0.0.1:1", auth.Principal{Subject: "a@x", Grants: auth.GrantView}, newHeard())
			for _, data := range [][]byte{first, second} {
				sess.handle(context.Background(), data)
				if n := len(sess.out); n > 3 {
					t.Fatalf("%d answers to one message", n)
				}
				for len(sess.out) > 0 {
					b := <-sess.out
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil || m["id"] == nil {
						t.Fatalf("answer %q is not a message with an id", b)
					}
				}
			}
		}
	})
}
