package testpeer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// The synthetic media. A video frame is what a VP8 decoder would be given:
// its first byte is a VP8 frame tag whose bit 0 (the inverse keyframe flag P)
// is 0 on a keyframe, then the magic "OA", the frame number, and bytes that
// are a function of the frame number and their position. Every byte of a
// frame can thus be checked by whoever receives it, knowing only the frame's
// first bytes. Audio packets are the same with a packet number.
const (
	// FrameRate is the video frame rate.
	FrameRate = 30
	// VideoClockRate is VP8's RTP clock rate.
	VideoClockRate = 90000
	// frameTicks is the RTP timestamp step between frames.
	frameTicks = VideoClockRate / FrameRate
	// AudioRate is the Opus packet rate (20 ms packets).
	AudioRate = 50
	// audioTicks is the RTP timestamp step between Opus packets (48 kHz).
	audioTicks = 48000 / AudioRate
	// maxVP8Chunk is the most frame bytes one RTP packet carries, after its
	// one-byte VP8 payload descriptor.
	maxVP8Chunk = 1000

	frameHeaderLen = 7 // tag, "OA", frame number
	audioHeaderLen = 4 // packet number
)

const (
	// vp8DescStart is a VP8 payload descriptor with S (start of partition)
	// set and partition index 0: the first packet of a frame.
	vp8DescStart = 0x10
	// vp8DescCont is the descriptor of the frame's other packets.
	vp8DescCont = 0x00
)

// FrameSize is the size of frame n: keyframes are 3–6 KB (several RTP
// packets), other frames 0.2–2.2 KB (one to three packets).
func FrameSize(n uint32, key bool) int {
	if key {
		return 3000 + int(n%8)*400
	}
	return 200 + int((n*37)%2000)
}

// FrameBytes returns frame n exactly as the publisher sends it.
func FrameBytes(n uint32, key bool) []byte {
	b := make([]byte, FrameSize(n, key))
	b[0] = 0x11 // an inter frame: P = 1
	if key {
		b[0] = 0x10
	}
	b[1], b[2] = 'O', 'A'
	binary.BigEndian.PutUint32(b[3:], n)
	for i := frameHeaderLen; i < len(b); i++ {
		b[i] = byte(uint32(i)*131 + n*29 + uint32(i>>8)*7)
	}
	return b
}

// CheckFrame checks that b is a whole frame as FrameBytes makes it and
// returns its number and whether it is a keyframe.
func CheckFrame(b []byte) (n uint32, key bool, err error) {
	if len(b) < frameHeaderLen || b[1] != 'O' || b[2] != 'A' {
		return 0, false, fmt.Errorf("not a test frame: % x", b[:min(len(b), 16)])
	}
	n = binary.BigEndian.Uint32(b[3:])
	key = b[0]&0x01 == 0
	want := FrameBytes(n, key)
	if !bytes.Equal(b, want) {
		return n, key, fmt.Errorf("frame %d (key %v): %s", n, key, diff(b, want))
	}
	return n, key, nil
}

// AudioBytes returns audio packet k's payload.
func AudioBytes(k uint32) []byte {
	b := make([]byte, 60+int(k%40))
	binary.BigEndian.PutUint32(b, k)
	for i := audioHeaderLen; i < len(b); i++ {
		b[i] = byte(uint32(i)*17 + k*3)
	}
	return b
}

// CheckAudio checks that b is an audio payload as AudioBytes makes it.
func CheckAudio(b []byte) (k uint32, err error) {
	if len(b) < audioHeaderLen {
		return 0, fmt.Errorf("audio payload of %d bytes", len(b))
	}
	k = binary.BigEndian.Uint32(b)
	if want := AudioBytes(k); !bytes.Equal(b, want) {
		return k, fmt.Errorf("audio packet %d: %s", k, diff(b, want))
	}
	return k, nil
}

func diff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("byte %d is %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return "equal"
}

// packetize splits a frame into VP8 RTP payloads (descriptor + chunk).
func packetize(frame []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(frame); i += maxVP8Chunk {
		end := min(i+maxVP8Chunk, len(frame))
		desc := byte(vp8DescCont)
		if i == 0 {
			desc = vp8DescStart
		}
		p := make([]byte, 0, 1+end-i)
		p = append(p, desc)
		p = append(p, frame[i:end]...)
		out = append(out, p)
	}
	return out
}

// since is time.Since rounded for reports.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
