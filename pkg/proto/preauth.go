package proto

import (
	"net"
	"sync"
)

// Pre-authentication defaults: connections that have not yet proved that they hold the token.
const (
	DefaultPreAuthMax     = 128
	DefaultPreAuthPerAddr = 8
)

// preauth tracks the connections still in their handshake, so that idle or slow ones cannot lock
// a legitimate client out. A new connection is always admitted: when its address already holds
// PreAuthPerAddr handshaking connections, the oldest of them is closed; when the server holds
// PreAuthMax, the oldest one of the address holding the most is closed. A legitimate client
// opens one connection at a time and finishes its handshake in milliseconds, so it is the last to
// be evicted, whatever number of source addresses (127.0.0.2, ...) an attacker uses.
type preauth struct {
	max, perAddr int

	mu     sync.Mutex
	byAddr map[string][]*pendingConn // oldest first
	total  int
	seq    uint64
}

type pendingConn struct {
	c    net.Conn
	addr string
	seq  uint64 // arrival order
}

func newPreauth(max, perAddr int) *preauth {
	return &preauth{max: max, perAddr: perAddr, byAddr: map[string][]*pendingConn{}}
}

// hostOf is the part of a remote address that limits count: the IP without the port.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// add admits c, evicting (closing) older handshaking connections as needed; it returns the
// evicted count.
func (p *preauth) add(c net.Conn) (*pendingConn, int) {
	pc := &pendingConn{c: c, addr: hostOf(c.RemoteAddr())}
	var evict []*pendingConn
	p.mu.Lock()
	p.seq++
	pc.seq = p.seq
	if l := p.byAddr[pc.addr]; len(l) >= p.perAddr {
		evict = append(evict, p.removeLocked(pc.addr))
	}
	for p.total >= p.max {
		evict = append(evict, p.removeLocked(p.busiestLocked()))
	}
	p.byAddr[pc.addr] = append(p.byAddr[pc.addr], pc)
	p.total++
	p.mu.Unlock()
	for _, e := range evict {
		e.c.Close()
	}
	return pc, len(evict)
}

// busiestLocked returns the address with the most handshaking connections; among equals, the
// one whose oldest connection is the oldest.
func (p *preauth) busiestLocked() string {
	best, n, seq := "", -1, uint64(0)
	for a, l := range p.byAddr {
		if len(l) > n || (len(l) == n && l[0].seq < seq) {
			best, n, seq = a, len(l), l[0].seq
		}
	}
	return best
}

// removeLocked drops and returns the oldest connection of addr.
func (p *preauth) removeLocked(addr string) *pendingConn {
	l := p.byAddr[addr]
	oldest := l[0]
	p.dropLocked(oldest)
	return oldest
}

func (p *preauth) dropLocked(pc *pendingConn) bool {
	l := p.byAddr[pc.addr]
	for i, x := range l {
		if x == pc {
			l = append(l[:i:i], l[i+1:]...)
			if len(l) == 0 {
				delete(p.byAddr, pc.addr)
			} else {
				p.byAddr[pc.addr] = l
			}
			p.total--
			return true
		}
	}
	return false
}

// done removes pc once its handshake has ended (either way); it reports false when pc had been
// evicted already.
func (p *preauth) done(pc *pendingConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropLocked(pc)
}

// count returns the handshaking connections.
func (p *preauth) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
