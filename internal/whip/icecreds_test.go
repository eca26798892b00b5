package whip_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/testpeer"
)

// An ICE restart with credentials shorter than RFC 8445 allows (ufrag 4,
// pwd 22 characters at least), or with characters it does not allow, is
// refused with 400 saying which; the session is unharmed and a proper
// restart still works.
func TestICERestartBadCredentialsRefused(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	pub := testpeer.MustWHIPPublisher(t, srv, nil, "creds", testpeer.WHIPOptions{})
	pwd22 := strings.Repeat("p", 22)
	for _, c := range []struct{ ufrag, pwd, word string }{
		{"ab", "x", "ice-ufrag"},
		{"abc", pwd22, "ice-ufrag"},
		{"abcd", pwd22[:21], "ice-pwd"},
		{"ab-d", pwd22, "ice-ufrag"},
		{"abcd", pwd22[:21] + "!", "ice-pwd"},
		{strings.Repeat("u", 257), pwd22, "ice-ufrag"},
	} {
		frag := "a=ice-ufrag:" + c.ufrag + "\r\na=ice-pwd:" + c.pwd + "\r\n"
		wantRefused(t, pub.Session.Patch("*", frag), http.StatusBadRequest, c.word, "RFC 8445")
	}
	if _, err := pub.Session.RestartICE(within(t)); err != nil {
		t.Fatalf("a proper ICE restart after the refused ones: %v", err)
	}
	if err := pub.Peer.WaitConnected(within(t)); err != nil {
		t.Fatal(err)
	}
}
