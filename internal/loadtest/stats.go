package loadtest

import (
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Dist is a distribution summarized by percentiles (nearest rank).
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// summarize returns the percentiles of values (in any unit); it sorts values.
func summarize(values []float64) Dist {
	if len(values) == 0 {
		return Dist{}
	}
	slices.Sort(values)
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	return Dist{N: len(values), Mean: sum / float64(len(values)),
		P50: percentile(values, 50), P95: percentile(values, 95), P99: percentile(values, 99),
		Max: values[len(values)-1]}
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// histogram counts durations in microseconds in log-linear buckets (32 per
// power of two, so a percentile is within about 3%), without locks: every
// viewer's reader adds to one shared histogram, so the memory it takes does
// not grow with viewers or samples.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds
	max    atomic.Uint64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = histSub * (64 - histSubBits + 1)
)

func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	top := v >> shift // in [histSub, 2*histSub)
	return histSub + shift*histSub + int(top-histSub)
}

// histValue is the middle of a bucket.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i - histSub) / histSub
	top := uint64(histSub + (i-histSub)%histSub)
	return top<<shift + (uint64(1)<<shift)/2
}

// add records one duration; negative ones (clock steps) count as zero.
func (h *histogram) add(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.counts[histBucket(us)].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// dist summarizes the histogram in milliseconds.
func (h *histogram) dist() Dist {
	n := h.n.Load()
	if n == 0 {
		return Dist{}
	}
	var counts [histBuckets]uint64
	total := uint64(0)
	for i := range counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	maxUS := h.max.Load()
	quantile := func(p float64) float64 {
		rank := uint64(math.Ceil(p / 100 * float64(total)))
		seen := uint64(0)
		for i, c := range counts {
			seen += c
			if c > 0 && seen >= rank {
				return float64(min(histValue(i), maxUS)) / 1000
			}
		}
		return float64(maxUS) / 1000
	}
	return Dist{N: int(total), Mean: float64(h.sum.Load()) / float64(n) / 1000,
		P50: quantile(50), P95: quantile(95), P99: quantile(99), Max: float64(maxUS) / 1000}
}

// seqCounter counts one RTP stream's packets and, from its sequence numbers,
// how many were sent: expected minus received is what was lost (viewers send
// no NACKs, so nothing is recovered). Any goroutine may add and read: a
// header-only viewer's shared socket takes over from its track reader.
type seqCounter struct {
	mu      sync.Mutex
	started bool
	base    uint64 // extended sequence number of the earliest packet
	highest uint64 // extended sequence number of the newest packet

	received atomic.Uint64
	expected atomic.Uint64
	bytes    atomic.Uint64
}

// add counts a packet of size bytes with sequence number seq.
func (c *seqCounter) add(seq uint16, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received.Add(1)
	c.bytes.Add(uint64(size))
	if !c.started {
		// Start one cycle up, so that a reordered earlier packet stays positive.
		c.started, c.base, c.highest = true, uint64(seq)+1<<16, uint64(seq)+1<<16
		c.expected.Store(1)
		return
	}
	switch diff := int16(seq - uint16(c.highest)); {
	case diff > 0:
		c.highest += uint64(diff)
	case uint64(-int(diff)) <= c.highest-c.base:
		return // reordered, within what was counted
	default:
		c.base = c.highest - uint64(-int(diff))
	}
	c.expected.Store(c.highest - c.base + 1)
}

// lossCounts returns received and lost packets so far.
func (c *seqCounter) lossCounts() (received, lost uint64) {
	r, e := c.received.Load(), c.expected.Load()
	if e > r {
		return r, e - r
	}
	return r, 0
}

// lossPercent is the share of lost packets among those expected.
func lossPercent(received, lost uint64) float64 {
	if received+lost == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(received+lost)
}
