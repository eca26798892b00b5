// Package ratelimit bounds how often each client may do something: a token
// bucket per client address (golang.org/x/time/rate), forgotten once the
// client has been quiet long enough for its bucket to be full again. It
// owns nothing else, and knows nothing of HTTP beyond reading an address.
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxKeys bounds the clients remembered at once. Past it, those whose
// buckets are full again are forgotten; if all are busy (a flood from very
// many addresses), the table is cleared: the limit is lifted for a moment
// rather than memory allowed to grow.
const maxKeys = 1 << 16

// PerAddress is a token bucket per client address. Its zero value and nil
// allow everything. It is safe for concurrent use.
type PerAddress struct {
	limit  rate.Limit
	burst  int
	exempt []netip.Prefix
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewPerAddress allows each address perSecond events a second, in bursts of
// up to burst, but for addresses in exempt, which are not limited.
// perSecond <= 0 returns nil: no limit.
func NewPerAddress(perSecond float64, burst int, exempt []netip.Prefix) *PerAddress {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	return &PerAddress{limit: rate.Limit(perSecond), burst: burst, exempt: exempt, now: time.Now,
		buckets: map[string]*bucket{}}
}

// Allow takes one token from addr's bucket. When there is none it says how
// long until there is one.
func (p *PerAddress) Allow(addr string) (bool, time.Duration) {
	if p == nil || p.exempted(addr) {
		return true, 0
	}
	key := Key(addr)
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep(now)
	b := p.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(p.limit, p.burst)}
		p.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (p *PerAddress) exempted(addr string) bool { return Exempted(addr, p.exempt) }

// Exempted reports whether addr ("host:port" or a bare IP) is in one of
// the networks exempt.
func Exempted(addr string, exempt []netip.Prefix) bool {
	if len(exempt) == 0 {
		return false
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = ap.Addr().String()
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, n := range exempt {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Len is the number of addresses remembered.
func (p *PerAddress) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buckets)
}

// refill is how long an idle bucket takes to be full again, after which
// forgetting it changes nothing.
func (p *PerAddress) refill() time.Duration {
	return time.Duration(float64(p.burst) / float64(p.limit) * float64(time.Second))
}

// sweep forgets the addresses whose buckets are full again, at most once a
// refill period, or at once when the table is full. The caller holds mu.
func (p *PerAddress) sweep(now time.Time) {
	idle := p.refill()
	if len(p.buckets) < maxKeys && now.Sub(p.lastSweep) < max(idle, time.Second) {
		return
	}
	p.lastSweep = now
	for k, b := range p.buckets {
		if now.Sub(b.seen) >= idle {
			delete(p.buckets, k)
		}
	}
	if len(p.buckets) >= maxKeys {
		clear(p.buckets)
	}
}

// Key is the client an address stands for: the IP of "host:port" or of a
// bare IP, and for IPv6 its /64 network (one host commonly has a whole /64
// to pick addresses from). What is not an IP is its own key.
func Key(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
