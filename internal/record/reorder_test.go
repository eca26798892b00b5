package record

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// released is what a reorder buffer handed out: "seq" or "seq(lost N)".
type released []string

func (r *released) out(p media.Packet, lost int) {
	s := fmt.Sprint(p.SequenceNumber)
	if lost > 0 {
		s += fmt.Sprintf("(lost %d)", lost)
	}
	*r = append(*r, s)
}

func pkt(seq uint16, at time.Duration) media.Packet {
	return media.Packet{SequenceNumber: seq, Arrival: time.Unix(0, 0).Add(at)}
}

func TestReorderBuffer(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		seqs []uint16
		at   []time.Duration // arrival of each; default i ms
		want []string        // after a final flush
	}{
		{name: "in order", seqs: []uint16{10, 11, 12}, want: []string{"10", "11", "12"}},
		{name: "swapped", seqs: []uint16{10, 12, 11, 13}, want: []string{"10", "11", "12", "13"}},
		{name: "duplicate and late", seqs: []uint16{10, 11, 11, 12, 10}, want: []string{"10", "11", "12"}},
		{name: "wraps", seqs: []uint16{65534, 0, 65535, 1}, want: []string{"65534", "65535", "0", "1"}},
		{
			name: "gap given up after the delay",
			seqs: []uint16{10, 12, 13, 14},
			at:   []time.Duration{0, 1 * ms, 2 * ms, 200 * ms},
			want: []string{"10", "12(lost 1)", "13", "14"},
		},
		{
			name: "gap filled in time",
			seqs: []uint16{10, 12, 11, 13},
			at:   []time.Duration{0, 1 * ms, 150 * ms, 151 * ms},
			want: []string{"10", "11", "12", "13"},
		},
		{
			name: "gap given up when half the buffer waits",
			seqs: []uint16{1, 3, 4, 5, 6, 7, 8, 9, 10},
			want: []string{"1", "3(lost 1)", "4", "5", "6", "7", "8", "9", "10"},
		},
		{name: "flush at the end", seqs: []uint16{1, 3, 5}, want: []string{"1", "3(lost 1)", "5(lost 1)"}},
		{name: "first two swapped", seqs: []uint16{11, 10, 12}, want: []string{"10", "11", "12"}},
		{
			name: "late after the start",
			seqs: []uint16{10, 11, 12, 9},
			at:   []time.Duration{0, 1 * ms, 150 * ms, 151 * ms},
			want: []string{"10", "11", "12"},
		},
		{name: "jump past the window", seqs: []uint16{1, 2, 30000, 30001}, want: []string{"1", "2", "30000", "30001"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newReorderBuffer(16, 100*ms)
			var got released
			for i, s := range c.seqs {
				at := time.Duration(i) * ms
				if c.at != nil {
					at = c.at[i]
				}
				b.push(pkt(s, at), got.out)
			}
			b.flush(got.out)
			if !reflect.DeepEqual([]string(got), c.want) {
				t.Errorf("released %q, want %q", got, c.want)
			}
		})
	}
}

// The assembler drops a frame that lost a packet, lost its first packet or
// its marker, and keeps the others whole.
func TestAssemblerLoss(t *testing.T) {
	// VP8 payloads: a one-byte descriptor (0x10: start of partition 0) and
	// the frame's bytes; the first frame byte's bit 0 clear is a keyframe.
	vp8 := func(seq uint16, ts uint32, start, marker bool, b ...byte) media.Packet {
		d := byte(0x00)
		if start {
			d = 0x10
		}
		return media.Packet{SequenceNumber: seq, Timestamp: ts, Marker: marker, Payload: append([]byte{d}, b...)}
	}
	type in struct {
		p    media.Packet
		lost int
	}
	cases := []struct {
		name string
		in   []in
		want []string // frames out: "ts:bytes"
	}{
		{"whole frames", []in{
			{vp8(1, 100, true, false, 0x10, 1), 0}, {vp8(2, 100, false, true, 2), 0},
			{vp8(3, 200, true, true, 0x11, 3), 0},
		}, []string{"100:[16 1 2] key", "200:[17 3]"}},
		{"lost middle packet", []in{
			{vp8(1, 100, true, false, 0x10), 0}, {vp8(3, 100, false, true, 3), 1},
			{vp8(4, 200, true, true, 0x11), 0},
		}, []string{"200:[17]"}},
		{"lost first packet", []in{
			{vp8(2, 100, false, true, 2), 1},
			{vp8(3, 200, true, true, 0x11), 0},
		}, []string{"200:[17]"}},
		{"lost marker packet", []in{
			{vp8(1, 100, true, false, 0x10), 0},
			{vp8(3, 200, true, true, 0x11), 1},
		}, []string{"200:[17]"}},
		{"no marker, no loss reported", []in{
			{vp8(1, 100, true, false, 0x10), 0},
			{vp8(2, 200, true, true, 0x11), 0},
		}, []string{"200:[17]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &assembler{mime: "video/VP8"}
			var got []string
			for _, x := range c.in {
				if f, ok := a.push(x.p, x.lost); ok {
					s := fmt.Sprintf("%d:%v", f.ts, f.data)
					if f.key {
						s += " key"
					}
					got = append(got, s)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("frames %q, want %q", got, c.want)
			}
		})
	}
}

// Packets are released as soon as the buffer has waited out its delay since
// the first one, not only at the end.
func TestReorderBufferReleasesOnceWarm(t *testing.T) {
	b := newReorderBuffer(16, 100*time.Millisecond)
	var got released
	b.push(pkt(11, 0), got.out)
	b.push(pkt(10, time.Millisecond), got.out)
	if len(got) != 0 {
		t.Fatalf("released %q before the delay", got)
	}
	b.push(pkt(12, 150*time.Millisecond), got.out)
	if want := []string{"10", "11", "12"}; !reflect.DeepEqual([]string(got), want) {
		t.Fatalf("released %q, want %q", got, want)
	}
	b.push(pkt(13, 151*time.Millisecond), got.out)
	if len(got) != 4 {
		t.Fatalf("released %q: a packet in order waits", got)
	}
}
