package loadtest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"

	"github.com/onair-live/onair/internal/codec"
)

func TestH264Packetization(t *testing.T) {
	st := stamp{sentNanos: 1_700_000_000_123_456_789, frame: 42}
	for _, tc := range []struct {
		name string
		size int
		key  bool
	}{
		{"small keyframe", 300, true},
		{"large keyframe", 20_000, true},
		{"small inter frame", 300, false},
		{"large inter frame", 5_000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := h264Frame(tc.size, tc.key, st)
			for i, p := range pkts {
				if len(p) > maxPayload {
					t.Errorf("packet %d: %d bytes, over %d", i, len(p), maxPayload)
				}
			}
			slice := pkts
			if tc.key {
				// STAP-A with SPS then PPS, before the IDR slice.
				stap := pkts[0]
				if stap[0]&0x1f != nalSTAPA {
					t.Fatalf("first packet of a keyframe is NAL type %d, want STAP-A", stap[0]&0x1f)
				}
				n := int(binary.BigEndian.Uint16(stap[1:]))
				if !bytes.Equal(stap[3:3+n], h264SPS) {
					t.Errorf("STAP-A does not start with the SPS")
				}
				if !bytes.Equal(stap[3+n+2:], h264PPS) {
					t.Errorf("STAP-A does not end with the PPS")
				}
				if !codec.IsKeyframe(codec.H264, stap) {
					t.Errorf("the server would not see the STAP-A as a keyframe")
				}
				slice = pkts[1:]
			}
			if got := codec.IsKeyframe(codec.H264, slice[0]); got != tc.key {
				t.Errorf("IsKeyframe(first slice packet) = %v, want %v", got, tc.key)
			}
			for i, p := range slice[1:] {
				if codec.IsKeyframe(codec.H264, p) {
					t.Errorf("slice packet %d is seen as a keyframe start", i+1)
				}
			}
			// Reassemble the slice: single NAL unit or FU-As.
			var nal []byte
			if len(slice) == 1 {
				nal = slice[0]
			} else {
				for i, p := range slice {
					if p[0]&0x1f != nalFUA {
						t.Fatalf("packet %d: NAL type %d, want FU-A", i, p[0]&0x1f)
					}
					start, end := p[1]&fuStart != 0, p[1]&fuEnd != 0
					if start != (i == 0) || end != (i == len(slice)-1) {
						t.Errorf("packet %d: start %v end %v", i, start, end)
					}
					if i == 0 {
						nal = append(nal, p[0]&0xe0|p[1]&0x1f)
					}
					nal = append(nal, p[2:]...)
				}
			}
			wantType := byte(nalSlice)
			if tc.key {
				wantType = nalIDR
			}
			if nal[0]&0x1f != wantType || len(nal) != tc.size {
				t.Errorf("slice is NAL type %d of %d bytes, want %d of %d", nal[0]&0x1f, len(nal), wantType, tc.size)
			}
			// Only the first packet of the slice carries the stamp.
			got, ok := frameStamp(codec.H264, slice[0])
			if !ok || got != st {
				t.Errorf("frameStamp = %+v %v, want %+v", got, ok, st)
			}
			others := append(append([][]byte{}, pkts[:len(pkts)-len(slice)]...), slice[1:]...)
			for _, p := range others {
				if _, ok := frameStamp(codec.H264, p); ok {
					t.Errorf("a packet other than the slice's first has a stamp")
				}
			}
		})
	}
}

func TestVP8Packetization(t *testing.T) {
	st := stamp{sentNanos: 123, frame: 7}
	for _, tc := range []struct {
		name string
		size int
		key  bool
	}{
		{"small keyframe", 200, true},
		{"large keyframe", 10_000, true},
		{"small inter frame", 200, false},
		{"large inter frame", 4_000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := vp8Frame(tc.size, tc.key, st, 0x1234)
			total := 0
			for i, p := range pkts {
				if len(p) > maxPayload {
					t.Errorf("packet %d: %d bytes, over %d", i, len(p), maxPayload)
				}
				if s := p[0]&vp8SBit != 0; s != (i == 0) || p[0]&0x07 != 0 {
					t.Errorf("packet %d: S=%v PID=%d", i, s, p[0]&0x07)
				}
				if pid := uint16(p[2]&0x7f)<<8 | uint16(p[3]); p[2]&vp8MBit == 0 || pid != 0x1234 {
					t.Errorf("packet %d: picture id %#x", i, pid)
				}
				total += len(p) - vp8PidLen
				if want := tc.key && i == 0; codec.IsKeyframe(codec.VP8, p) != want {
					t.Errorf("packet %d: IsKeyframe = %v, want %v", i, !want, want)
				}
				if _, ok := frameStamp(codec.VP8, p); ok != (i == 0) {
					t.Errorf("packet %d: has a stamp: %v", i, ok)
				}
			}
			if total != tc.size {
				t.Errorf("frame of %d bytes, want %d", total, tc.size)
			}
			if got, _ := frameStamp(codec.VP8, pkts[0]); got != st {
				t.Errorf("frameStamp = %+v, want %+v", got, st)
			}
		})
	}
}

func TestOpusStamp(t *testing.T) {
	st := stamp{sentNanos: 99, frame: 3}
	p := opusFrame(st)
	if got, ok := frameStamp(codec.Opus, p); !ok || got != st {
		t.Errorf("frameStamp = %+v %v", got, ok)
	}
	if _, ok := frameStamp(codec.Opus, []byte{0xfc, 1, 2, 3}); ok {
		t.Error("a foreign Opus packet has a stamp")
	}
}

func TestFrameSizesMakeTheBitrate(t *testing.T) {
	for _, tc := range []struct {
		bitrate int
		fps     float64
		gop     int
	}{{2_000_000, 30, 60}, {500_000, 15, 30}, {1_000_000, 30, 1}} {
		key, inter := frameSizes(tc.bitrate, tc.fps, tc.gop)
		perGOP := float64(key + (tc.gop-1)*inter)
		got := perGOP * 8 * tc.fps / float64(tc.gop)
		if got < 0.98*float64(tc.bitrate) || got > 1.01*float64(tc.bitrate) {
			t.Errorf("%+v: key %d inter %d make %.0f bit/s", tc, key, inter, got)
		}
	}
}

func TestParseRTP(t *testing.T) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 65535, Timestamp: 1, SSRC: 2, CSRC: []uint32{9}},
		Payload: []byte{1, 2, 3, 4, 5}}
	if err := p.SetExtension(3, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	p.Padding, p.PaddingSize = true, 4
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	seq, payload, ok := parseRTP(b)
	if !ok || seq != 65535 || !bytes.Equal(payload, p.Payload) {
		t.Errorf("parseRTP = %d %v %v", seq, payload, ok)
	}
	for _, bad := range [][]byte{nil, make([]byte, 11), append([]byte{0x40}, make([]byte, 11)...)} {
		if _, _, ok := parseRTP(bad); ok {
			t.Errorf("parseRTP(%x) accepted", bad)
		}
	}
}
