package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
)

// Limits bound what one client, one room and the whole server may take,
// so that no client can exhaust the server (0: no limit). The largest
// message and body are Config.MaxMessageBytes.
type Limits struct {
	// MaxMessagesPerSecond per WebSocket (bursts of twice as many).
	MaxMessagesPerSecond float64
	// MaxSessionsPerSecond per client address: POST /room/live and
	// /room/view, WebSocket upgrades, WHIP and WHEP POSTs (bursts of
	// twice as many).
	MaxSessionsPerSecond float64
	// SessionsLimitExempt are the client networks MaxSessionsPerSecond does
	// not apply to: by default loopback (tools on this machine, or a
	// reverse proxy on it, behind which every client shares its address).
	SessionsLimitExempt []netip.Prefix
	MaxViewersPerRoom   int
	MaxRooms            int
	// MaxCandidates is the ICE candidates one session may send in all.
	MaxCandidates int
}

func (l *Limits) register(fs *flag.FlagSet) *string {
	fs.Float64Var(&l.MaxMessagesPerSecond, "max-messages-per-second", 50, "WebSocket messages a second per connection, in bursts of twice as many; a connection that keeps over it is closed (0: no limit)")
	fs.Float64Var(&l.MaxSessionsPerSecond, "max-sessions-per-second", 20, "new sessions (go live, join, WebSocket, WHIP, WHEP) a second per client address, in bursts of twice as many (0: no limit)")
	fs.IntVar(&l.MaxViewersPerRoom, "max-viewers-per-room", 10000, "viewers of one room (0: no limit)")
	fs.IntVar(&l.MaxRooms, "max-rooms", 1000, "live rooms in this process (0: no limit)")
	fs.IntVar(&l.MaxCandidates, "max-candidates", 256, "ICE candidates one session may send in all (0: no limit)")
	return fs.String("sessions-limit-exempt", "127.0.0.0/8,::1", "comma-separated client IPs or prefixes that -max-sessions-per-second does not limit (a local reverse proxy, your own tools); empty: none")
}

// load parses the exempt networks and rejects what cannot work.
func (l *Limits) load(exempt string) error {
	l.SessionsLimitExempt = nil
	for _, s := range splitList(exempt) {
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("-sessions-limit-exempt: %w", err)
		}
		l.SessionsLimitExempt = append(l.SessionsLimitExempt, p.Masked())
	}
	return l.check()
}

func (l Limits) check() error {
	if l.MaxMessagesPerSecond < 0 || l.MaxSessionsPerSecond < 0 || l.MaxViewersPerRoom < 0 ||
		l.MaxRooms < 0 || l.MaxCandidates < 0 {
		return errors.New("-max-messages-per-second, -max-sessions-per-second, -max-viewers-per-room, -max-rooms and -max-candidates must not be negative (0: no limit)")
	}
	return nil
}
