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

// TestPreauthEviction: a flood from many addresses evicts its own connections, never the lone
// connection of another address, and a new connection is always admitted.
func TestPreauthEviction(t *testing.T) {
	p := newPreauth(16, 4)
	legit := from("127.0.0.1")
	p.add(legit)
	var flood []*addrConn
	for i := range 300 {
		c := from(net.IPv4(127, 0, 0, byte(2+i%40)).String())
		flood = append(flood, c)
		p.add(c)
		if legit.closed {
			t.Fatalf("the lone connection was evicted after %d flood connections", i+1)
		}
	}
	if n := p.count(); n != 16 {
		t.Errorf("%d connections handshaking, want the cap of 16", n)
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
	pc, _ := q.add(from("127.0.0.10"))
	if !q.done(pc) || q.done(pc) {
		t.Error("done should succeed once")
	}
}
