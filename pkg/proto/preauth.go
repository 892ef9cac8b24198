package proto

import (
	"net"
	"sync"
	"sync/atomic"
)

// Pre-authentication defaults: connections that have not yet proved that they hold the token.
const (
	DefaultPreAuthMax     = 128
	DefaultPreAuthPerAddr = 8
)

// preauth tracks the connections still in their handshake, so that idle or slow ones cannot lock
// a legitimate client out. A new connection is always admitted: when its address already holds
// PreAuthPerAddr handshaking connections, the stalest of them (the one whose last bytes, or whose
// arrival, came first) is closed; when the server holds PreAuthMax, the stalest one of the address
// holding the most is closed. A legitimate client opens one connection at a time and sends its
// next handshake message within a round trip of the last, so it is the last to be evicted,
// whatever number of source addresses (127.0.0.2, ...) an attacker uses; attackers sharing its
// address must open PreAuthPerAddr connections within one of its round trips to evict it.
type preauth struct {
	max, perAddr int
	clock        atomic.Uint64 // orders arrivals and reads

	mu     sync.Mutex
	byAddr map[string][]*pendingConn
	total  int
}

type pendingConn struct {
	c     net.Conn
	addr  string
	stamp atomic.Uint64 // clock at arrival, then at the last read that brought bytes
}

// progressConn stamps its pendingConn whenever a read brings bytes.
type progressConn struct {
	net.Conn
	pc    *pendingConn
	clock *atomic.Uint64
}

func (c *progressConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.pc.stamp.Store(c.clock.Add(1))
	}
	return n, err
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

// add admits c, evicting (closing) staler handshaking connections as needed; it returns the
// connection to read from (it stamps progress) and the evicted count.
func (p *preauth) add(c net.Conn) (*pendingConn, net.Conn, int) {
	pc := &pendingConn{c: c, addr: hostOf(c.RemoteAddr())}
	pc.stamp.Store(p.clock.Add(1))
	var evict []*pendingConn
	p.mu.Lock()
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
	return pc, &progressConn{Conn: c, pc: pc, clock: &p.clock}, len(evict)
}

// busiestLocked returns the address with the most handshaking connections; among equals, the
// one holding the stalest connection.
func (p *preauth) busiestLocked() string {
	best, n, stamp := "", -1, uint64(0)
	for a, l := range p.byAddr {
		s := stalest(l).stamp.Load()
		if len(l) > n || (len(l) == n && s < stamp) {
			best, n, stamp = a, len(l), s
		}
	}
	return best
}

func stalest(l []*pendingConn) *pendingConn {
	var old *pendingConn
	for _, pc := range l {
		if old == nil || pc.stamp.Load() < old.stamp.Load() {
			old = pc
		}
	}
	return old
}

// removeLocked drops and returns the stalest connection of addr.
func (p *preauth) removeLocked(addr string) *pendingConn {
	pc := stalest(p.byAddr[addr])
	p.dropLocked(pc)
	return pc
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
