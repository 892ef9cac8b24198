package proto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(FrameRequest, 1, `{"op":"info"}`))
	f.Add(frameBytes(FrameEnd, 2, string(encodeStatus(ErrNotFound, []byte("t")))))
	f.Add(append(frameBytes(FrameData, 3, "abc"), frameBytes(FrameCancel, 3, "")...))
	f.Add(header(FrameData, 1, MaxPayload+1))
	f.Add(header(0, 1, 0))
	f.Add(header(FrameData, 1, 10)[:5])
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		buf := make([]byte, 16)
		for {
			start := len(in) - r.Len()
			fr, err := ReadFrame(r, buf)
			if err != nil {
				if errors.Is(err, io.EOF) && start != len(in) {
					t.Fatalf("clean EOF in the middle of a frame at %d of %d", start, len(in))
				}
				return
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, fr); err != nil {
				t.Fatalf("re-encoding a frame that decoded: %v", err)
			}
			if !bytes.Equal(out.Bytes(), in[start:len(in)-r.Len()]) {
				t.Fatal("re-encoded frame differs from its input")
			}
			if _, _, bad := decodeStatus(fr.Payload); bad == nil && len(fr.Payload) < 4 {
				t.Fatal("short status decoded")
			}
		}
	})
}

// FuzzHandshake feeds arbitrary bytes to the server side of a handshake: it must never panic
// and never authenticate.
func FuzzHandshake(f *testing.F) {
	hello := helloBytes(Magic, Version)
	f.Add([]byte{})
	f.Add(hello)
	f.Add(append(hello, frameBytes(FrameAuth, 0, string(make([]byte, proofSize)))...))
	f.Add(append(hello, header(FrameAuth, 0, 1<<30)...))
	f.Add(append(hello, frameBytes(FrameRequest, 1, `{"op":"info"}`)...))
	f.Add(helloBytes(Magic, 0xFFFF))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}
		if hs, err := serverHandshake(rw, testToken, nil); err == nil {
			t.Fatalf("authenticated %q: %+v", in, hs)
		}
		if out.Len() > 0 && !bytes.HasPrefix(out.Bytes(), []byte(Magic)) {
			t.Fatalf("server answered %q", out.Bytes())
		}
	})
}

// FuzzRing runs a sequence of operations against a ring and a simple model of it.
func FuzzRing(f *testing.F) {
	f.Add(uint8(8), []byte{0x13, 0x92, 0x05, 0x87, 0xFF, 0x41})
	f.Add(uint8(1), []byte{0x01, 0x81, 0x01, 0xC0, 0x81})
	f.Add(uint8(200), bytes.Repeat([]byte{0x7F, 0xFE}, 20))
	f.Add(uint8(3), []byte{0x05, 0xE0, 0x05})
	f.Fuzz(func(t *testing.T, size uint8, ops []byte) {
		m := &ringModel{t: t, capacity: int(size)%64 + 1}
		m.r = NewRing(m.capacity)
		for _, op := range ops {
			k := int(op & 0x3F)
			switch op >> 6 {
			case 0:
				m.write(k)
			case 1, 2:
				m.read(k + 1)
			case 3:
				if k%2 == 0 {
					m.r.CloseWithError(nil)
					m.wclosed = true
				} else {
					m.r.CloseRead(nil)
					m.rclosed, m.data = true, nil
				}
			}
			if l := m.r.Len(); l != len(m.data) || l > m.capacity {
				t.Fatalf("Len %d, model %d, capacity %d", l, len(m.data), m.capacity)
			}
		}
	})
}

// ringModel is what a ring should hold, driven without ever blocking.
type ringModel struct {
	t                testing.TB
	r                *Ring
	capacity         int
	data             []byte
	next             byte
	wclosed, rclosed bool
}

// write writes as much of k bytes as fits.
func (m *ringModel) write(k int) {
	k = min(k, m.capacity-len(m.data))
	p := make([]byte, k)
	for i := range p {
		p[i] = m.next
		m.next++
	}
	n, err := m.r.Write(p)
	switch {
	case m.rclosed || m.wclosed:
		if err == nil && k > 0 {
			m.t.Fatal("Write after close succeeded")
		}
	case err != nil || n != k:
		m.t.Fatalf("Write(%d): %d, %v", k, n, err)
	default:
		m.data = append(m.data, p...)
	}
}

// read reads up to k bytes, if that cannot block.
func (m *ringModel) read(k int) {
	if len(m.data) == 0 && !m.wclosed && !m.rclosed {
		return
	}
	p := make([]byte, k)
	n, err := m.r.Read(p)
	switch {
	case m.rclosed:
		if !errors.Is(err, ErrClosed) {
			m.t.Fatalf("Read after CloseRead: %v", err)
		}
	case len(m.data) == 0:
		if err != io.EOF || n != 0 {
			m.t.Fatalf("Read at the end: %d, %v", n, err)
		}
	default:
		if err != nil || !bytes.Equal(p[:n], m.data[:min(len(m.data), k)]) {
			m.t.Fatalf("Read: %d, %v", n, err)
		}
		m.data = m.data[n:]
	}
}

// FuzzClientStream lets an authenticated agent answer a call with arbitrary bytes: the client
// must return data or an error, never panic or hang.
func FuzzClientStream(f *testing.F) {
	f.Add(append(frameBytes(FrameData, 1, "hello"), frameBytes(FrameEnd, 1, string(encodeStatus(nil, nil)))...))
	f.Add(frameBytes(FrameEnd, 1, string(encodeStatus(ErrNotFound, []byte("x")))))
	f.Add(frameBytes(FrameEnd, 1, "\x00"))
	f.Add(frameBytes(FrameData, 2, "wrong call"))
	f.Add(frameBytes(FrameAuthOK, 1, ""))
	f.Add(header(FrameData, 1, 1<<30))
	f.Add(header(FrameData, 1, 100))
	f.Add([]byte{0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		cc, sc := net.Pipe()
		agent := make(chan struct{})
		go func() {
			defer close(agent)
			defer sc.Close()
			hs, err := serverHandshake(sc, testToken, nil)
			if err != nil || hs.accept(sc) != nil {
				return
			}
			if _, err := ReadFrame(sc, nil); err != nil {
				return
			}
			sc.Write(in)
		}()
		c, err := NewClient(context.Background(), cc, testToken, plain)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rc, err := c.Call(ctx, "fuzz", nil)
		if err == nil {
			_, err = io.ReadAll(rc)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("client hung")
			}
			rc.Close()
		}
		c.Close()
		<-agent
	})
}
