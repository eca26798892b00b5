package loadtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
)

// Floor is the least CPU that one outgoing media packet can cost on this
// machine at this moment: sealing a 1,200-byte payload with AES-128-GCM (what
// SRTP with an AEAD profile does) and sending it with one sendto(2) over
// loopback, to many receiving sockets in turn, timed on the sending thread
// alone. A server's CPU per outgoing packet divided by it is comparable from
// one machine, or one day, to another: these shared machines vary by 2×.
type Floor struct {
	Microseconds float64   // the median of the trials
	Trials       []float64 // µs per packet of each trial
}

// floorReceivers is how many sockets the floor's packets go to in turn, as a
// server's go to its viewers: a packet to a cold socket costs more than a
// packet to the same one over and over.
const floorReceivers = 200

// MeasureFloor runs trials of packets sends each and returns their median.
// It needs loopback only.
func MeasureFloor(trials, packets int) (Floor, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	out, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Floor{}, fmt.Errorf("floor: %w", err)
	}
	defer out.Close()
	_ = out.SetWriteBuffer(4 << 20)
	var (
		dests   []*net.UDPAddr
		ins     []*net.UDPConn
		readers sync.WaitGroup
	)
	defer func() { // the readers end when their sockets close
		for _, in := range ins {
			_ = in.Close()
		}
		readers.Wait()
	}()
	for range floorReceivers {
		in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return Floor{}, fmt.Errorf("floor: %w", err)
		}
		ins = append(ins, in)
		// Each receiver reads, as a viewer does: delivering a datagram to
		// a socket whose reader waits, and waking it, is part of what a
		// send over loopback costs the sender.
		_ = in.SetReadBuffer(4 << 20)
		readers.Go(func() {
			buf := make([]byte, 2048)
			for {
				if _, err := in.Read(buf); err != nil {
					return
				}
			}
		})
		dests = append(dests, in.LocalAddr().(*net.UDPAddr))
	}

	key := make([]byte, 16)
	nonce := make([]byte, 12)
	if _, err := rand.Read(key); err != nil {
		return Floor{}, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return Floor{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Floor{}, err
	}
	payload := make([]byte, 1200)
	header := make([]byte, 12)
	buf := make([]byte, 0, 12+1200+16)

	f := Floor{}
	for range trials {
		start, err := threadCPU()
		if err != nil {
			return Floor{}, err
		}
		for i := range packets {
			nonce[11] = byte(i)
			buf = append(buf[:0], header...)
			buf = aead.Seal(buf, nonce, payload, header)
			_, _ = out.WriteToUDP(buf, dests[i%len(dests)])
		}
		end, err := threadCPU()
		if err != nil {
			return Floor{}, err
		}
		f.Trials = append(f.Trials, (end-start)*1e6/float64(packets))
	}
	sorted := slices.Clone(f.Trials)
	slices.Sort(sorted)
	f.Microseconds = sorted[len(sorted)/2]
	return f, nil
}
