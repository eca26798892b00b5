package loadtest_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/loadtest"
)

const loadSecret = "loadtest-secret-0123456789abcdef0123"

// Against a server with -auth-secret, a run with -secret (a token minted
// for each user) and one with -token (the publisher's) and -secret (the
// viewers') connect every viewer and end cleanly; a run without a token is
// refused.
func TestRunsWithTokens(t *testing.T) {
	checkGoroutines(t)
	url, a := startServer(t, func(c *config.Config) { c.AuthKeys = [][]byte{[]byte(loadSecret)} })
	pubTok, err := auth.Mint([]byte(loadSecret), auth.Claims{Subject: "encoder@example.com", Grants: []string{"publish"},
		Room: "tok-2", ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	const viewers = 3
	for _, c := range []struct {
		name string
		args []string
	}{
		{"secret-ws", []string{"-protocol", "ws", "-publish", "ws", "-room", "tok-1", "-secret", loadSecret}},
		{"token-whip-whep", []string{"-protocol", "whep", "-publish", "whip", "-room", "tok-2", "-token", pubTok, "-secret", loadSecret}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-url", url, "-viewers", "3", "-rate", "50", "-duration", "1s", "-progress", "0",
				"-codec", "vp8", "-bitrate", "500k"}, c.args...)
			s, _, table := runLoad(t, args...)
			t.Logf("\n%s", table)
			if got := num(t, s, "viewersConnected"); got != viewers {
				t.Errorf("viewers connected: %v, want %d (failures: %v)", got, viewers, s["failures"])
			}
			if got := num(t, s, "leaveErrors"); got != 0 {
				t.Errorf("leave errors: %v", got)
			}
			if s["endError"] != nil {
				t.Errorf("ending the broadcast: %v", s["endError"])
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := loadtest.Main([]string{"-url", url, "-viewers", "1", "-progress", "0", "-join-timeout", "5s"}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String()+errOut.String(), "401") {
		t.Errorf("a run without a token: exit %d, output %s %s; want 1 and the 401", code, out.String(), errOut.String())
	}
	if rooms, err := a.Service().Rooms(t.Context()); err != nil || len(rooms) != 0 {
		t.Errorf("rooms left after the runs: %v %v", rooms, err)
	}
}
