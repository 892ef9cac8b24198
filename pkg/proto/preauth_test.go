package proto

import (
	"net"
	"testing"
)

// addrConn is a connection from a given address that records being closed.
type addrConn struct {
	net.Conn
	addr   net.Addr
	closed bool
}

func (c *addrConn) RemoteAddr() net.Addr { return c.addr }
func (c *addrConn) Close() error         { c.closed = true; return nil }

func from(ip string) *addrConn {
	return &addrConn{addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}}
}

// TestPreauthEviction: a flood from several addresses evicts its own connections, never the lone
// connection of another address; a flood of one connection per address evicts the oldest, so a
// newcomer survives PreAuthMax-1 later arrivals; a new connection is always admitted.
func TestPreauthEviction(t *testing.T) {
	p := newPreauth(16, 4)
	flood := func(n, addrs int) {
		for i := range n {
			p.add(from(net.IPv4(127, 0, 0, byte(2+i%addrs)).String()))
		}
	}
	flood(300, 6)
	legit := from("127.0.0.1")
	p.add(legit)
	flood(3000, 6)
	if legit.closed {
		t.Fatal("the lone connection was evicted by a flood from 6 addresses")
	}
	if n := p.count(); n != 16 {
		t.Errorf("%d connections handshaking, want the cap of 16", n)
	}
	p.done(&pendingConn{}) // unknown: ignored

	p = newPreauth(16, 4)
	flood(300, 200)
	legit = from("127.0.0.1")
	p.add(legit)
	flood(15, 200)
	if legit.closed {
		t.Fatal("the newest connection was evicted before 15 others arrived")
	}
	flood(1, 200)
	if !legit.closed {
		t.Error("oldest-first: the 16th arrival should evict it")
	}
	// Per address: the fifth connection from one address evicts that address's oldest.
	q := newPreauth(100, 4)
	var same []*addrConn
	for range 5 {
		c := from("127.0.0.9")
		same = append(same, c)
		q.add(c)
	}
	if !same[0].closed || same[1].closed || q.count() != 4 {
		t.Errorf("per-address eviction: closed %v %v, count %d", same[0].closed, same[1].closed, q.count())
	}
	// done after eviction reports it; done on a live one frees its place.
	pc, _, _ := q.add(from("127.0.0.10"))
	if !q.done(pc) || q.done(pc) {
		t.Error("done should succeed once")
	}
}

// TestPreauthProgressProtects: on one shared address, a connection that keeps sending outlives
// any number of newer connections that send nothing.
func TestPreauthProgressProtects(t *testing.T) {
	p := newPreauth(128, 8)
	legit := from("127.0.0.1")
	legit.Conn = &byteConn{}
	_, conn, _ := p.add(legit)
	for i := range 1000 {
		p.add(from("127.0.0.1"))
		if i%4 == 0 {
			conn.Read(make([]byte, 1)) // the client's next message arrives
		}
		if legit.closed {
			t.Fatalf("evicted after %d idle connections from its address", i+1)
		}
	}
}

// byteConn always has a byte to read.
type byteConn struct{ net.Conn }

func (byteConn) Read(b []byte) (int, error) { return copy(b, "x"), nil }
