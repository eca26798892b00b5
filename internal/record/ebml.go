package record

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// EBML (RFC 8794) encoding: just what the Matroska writer (mkv.go) and the
// header reader below need. Element ids are given with their length marker
// bits, as the Matroska specification lists them.

// Element ids used by the writer and the reader.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285

	idSegment      = 0x18538067
	idSeekHead     = 0x114D9B74
	idSeek         = 0x4DBB
	idSeekID       = 0x53AB
	idSeekPosition = 0x53AC
	idVoid         = 0xEC

	idInfo           = 0x1549A966
	idTimestampScale = 0x2AD7B1
	idDuration       = 0x4489
	idDateUTC        = 0x4461
	idMuxingApp      = 0x4D80
	idWritingApp     = 0x5741
	idTitle          = 0x7BA9

	idTracks            = 0x1654AE6B
	idTrackEntry        = 0xAE
	idTrackNumber       = 0xD7
	idTrackUID          = 0x73C5
	idTrackType         = 0x83
	idFlagLacing        = 0x9C
	idLanguage          = 0x22B59C
	idCodecID           = 0x86
	idCodecPrivate      = 0x63A2
	idCodecDelay        = 0x56AA
	idSeekPreRoll       = 0x56BB
	idVideo             = 0xE0
	idPixelWidth        = 0xB0
	idPixelHeight       = 0xBA
	idAudio             = 0xE1
	idSamplingFrequency = 0xB5
	idChannels          = 0x9F

	idCluster     = 0x1F43B675
	idTimestamp   = 0xE7
	idSimpleBlock = 0xA3

	idCues               = 0x1C53BB6B
	idCuePoint           = 0xBB
	idCueTime            = 0xB3
	idCueTrackPositions  = 0xB7
	idCueTrack           = 0xF7
	idCueClusterPosition = 0xF1
)

// unknownSize is the 8-byte "size unknown" vint, left in place of the
// Segment's size until the file is finalized, so that a file cut short by a
// crash still plays up to its last whole cluster.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends n as the shortest vint that is not all ones.
func appendSize(b []byte, n uint64) []byte {
	l := 1
	for l < 8 && n >= 1<<(7*l)-1 {
		l++
	}
	return appendSizeLen(b, n, l)
}

// appendSizeLen appends n as a vint of exactly l bytes.
func appendSizeLen(b []byte, n uint64, l int) []byte {
	v := n | 1<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendElement(b []byte, id uint32, data []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(data)))
	return append(b, data...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendUint8 appends an unsigned integer in a fixed 8 bytes, so that it
// can be rewritten in place.
func appendUint8(b []byte, id uint32, v uint64) []byte {
	b = appendID(b, id)
	b = appendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, v)
}

func appendInt8(b []byte, id uint32, v int64) []byte {
	return appendUint8(b, id, uint64(v))
}

func appendFloat(b []byte, id uint32, f float64) []byte {
	b = appendID(b, id)
	b = appendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

func appendString(b []byte, id uint32, s string) []byte {
	return appendElement(b, id, []byte(s))
}

// appendVoid appends a Void element of exactly n bytes (n >= 2).
func appendVoid(b []byte, n int) []byte {
	b = append(b, idVoid)
	if n-2 < 127 {
		b = appendSizeLen(b, uint64(n-2), 1)
		return append(b, make([]byte, n-2)...)
	}
	b = appendSizeLen(b, uint64(n-9), 8)
	return append(b, make([]byte, n-9)...)
}

var errBadEBML = errors.New("record: not a Matroska file")

// readVint reads a vint at b[0:]: its value (marker removed, unless keep),
// its length, and whether it is the reserved "unknown" value.
func readVint(b []byte, keep bool) (v uint64, n int, unknown bool, err error) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false, errBadEBML
	}
	n = 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if len(b) < n {
		return 0, 0, false, io.ErrUnexpectedEOF
	}
	for i := 0; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	if keep {
		return v, n, false, nil
	}
	v &^= 1 << (7 * n)
	return v, n, v == 1<<(7*n)-1, nil
}

// header is what readHeader learns from the start of a Matroska file.
type header struct {
	docType  string
	duration float64 // in timestamp units, 0 if absent
	scale    uint64  // nanoseconds per timestamp unit
	dateUTC  int64   // nanoseconds since 2001-01-01, 0 if absent
}

// readHeader reads the EBML header and the Segment's Info from the first
// bytes of a Matroska file.
func readHeader(b []byte) (header, error) {
	h := header{scale: 1_000_000}
	haveInfo := false
	for len(b) > 0 && !haveInfo {
		id, n, _, err := readVint(b, true)
		if err != nil {
			return h, err
		}
		size, m, unknown, err := readVint(b[n:], false)
		if err != nil {
			return h, err
		}
		b = b[n+m:]
		switch id {
		case idSegment:
			continue // descend
		case idEBML, idInfo:
		default:
			if unknown || size > uint64(len(b)) {
				return h, errBadEBML
			}
			b = b[size:]
			continue
		}
		if unknown || size > uint64(len(b)) {
			return h, io.ErrUnexpectedEOF
		}
		body := b[:size]
		b = b[size:]
		if id == idInfo {
			haveInfo = true
		}
		for len(body) > 0 {
			cid, n, _, err := readVint(body, true)
			if err != nil {
				return h, err
			}
			csize, m, _, err := readVint(body[n:], false)
			if err != nil || csize > uint64(len(body)-n-m) {
				return h, errBadEBML
			}
			data := body[n+m : n+m+int(csize)]
			body = body[n+m+int(csize):]
			switch cid {
			case idDocType:
				h.docType = string(data)
			case idTimestampScale:
				h.scale = beUint(data)
			case idDateUTC:
				h.dateUTC = int64(beUint(data))
			case idDuration:
				switch len(data) {
				case 4:
					h.duration = float64(math.Float32frombits(binary.BigEndian.Uint32(data)))
				case 8:
					h.duration = math.Float64frombits(binary.BigEndian.Uint64(data))
				}
			}
		}
	}
	if h.docType == "" || !haveInfo {
		return h, errBadEBML
	}
	return h, nil
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
