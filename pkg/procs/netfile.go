package procs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Socket is a listening TCP socket or a bound, unconnected UDP socket.
type Socket struct {
	Proto string `json:"proto"` // "tcp", "tcp6", "udp" or "udp6"
	Addr  string `json:"addr"`  // local IP, "0.0.0.0" or "::" for any
	Port  int    `json:"port"`
	Inode uint64 `json:"inode"`
}

// Kernel socket states as printed in /proc/net/{tcp,udp}*.
const (
	stateTCPListen = 0x0A
	stateUDPClose  = 0x07 // an unconnected UDP socket
)

// ErrMalformedNetLine is returned (wrapped) for a line of a /proc/net table
// that cannot be decoded.
var ErrMalformedNetLine = errors.New("malformed net table line")

// netProtos lists the tables Listeners reads, with their address sizes.
var netProtos = []struct {
	name string
	size int // bytes of the address
}{{"tcp", 4}, {"tcp6", 16}, {"udp", 4}, {"udp6", 16}}

func addrSize(proto string) int {
	for _, p := range netProtos {
		if p.name == proto {
			return p.size
		}
	}
	return 0
}

// ParseNetFile decodes a /proc/net/tcp, tcp6, udp or udp6 table (proto names
// which) and returns its listening sockets: TCP sockets in state LISTEN and UDP
// sockets bound to a port with no remote address. Other rows are dropped.
// Addresses are decoded in the host's byte order, as the kernel prints them.
func ParseNetFile(r io.Reader, proto string) ([]Socket, error) {
	size := addrSize(proto)
	if size == 0 {
		return nil, fmt.Errorf("parsing net table: unknown protocol %q", proto)
	}
	var out []Socket
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "sl" {
			continue
		}
		s, ok, err := parseNetLine(f, proto, size)
		if err != nil {
			return nil, fmt.Errorf("parsing %s line %d: %w", proto, n, err)
		}
		if ok {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s table: %w", proto, err)
	}
	return out, nil
}

// parseNetLine decodes one row split into fields; ok reports whether the row
// is a listening socket.
func parseNetLine(f []string, proto string, size int) (s Socket, ok bool, err error) {
	if len(f) < 10 {
		return Socket{}, false, fmt.Errorf("%w: %d fields", ErrMalformedNetLine, len(f))
	}
	local, port, err := parseEndpoint(f[1], size)
	if err != nil {
		return Socket{}, false, fmt.Errorf("local address: %w", err)
	}
	remote, rport, err := parseEndpoint(f[2], size)
	if err != nil {
		return Socket{}, false, fmt.Errorf("remote address: %w", err)
	}
	state, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, false, fmt.Errorf("%w: state %q", ErrMalformedNetLine, f[3])
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return Socket{}, false, fmt.Errorf("%w: inode %q", ErrMalformedNetLine, f[9])
	}
	if strings.HasPrefix(proto, "tcp") {
		ok = state == stateTCPListen
	} else {
		ok = state == stateUDPClose && remote.IsUnspecified() && rport == 0
	}
	if !ok || port == 0 {
		return Socket{}, false, nil
	}
	return Socket{Proto: proto, Addr: local.String(), Port: port, Inode: inode}, true, nil
}

// parseEndpoint decodes "ADDR:PORT" where ADDR is size bytes printed as
// 32-bit words in host byte order and PORT is 16-bit hex.
func parseEndpoint(s string, size int) (netip.Addr, int, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 2*size || len(p) != 4 {
		return netip.Addr{}, 0, fmt.Errorf("%w: endpoint %q", ErrMalformedNetLine, s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: port %q", ErrMalformedNetLine, p)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: address %q", ErrMalformedNetLine, a)
	}
	var b [16]byte
	for i := 0; i < size; i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	if size == 4 {
		return netip.AddrFrom4([4]byte(b[:4])), int(port), nil
	}
	return netip.AddrFrom16(b), int(port), nil
}

// Listeners maps socket inodes to the listening sockets of every network
// namespace that a process under procDir lives in. Each distinct namespace
// (readlink of PID/ns/net) is read once, through one of its processes'
// PID/net tables; when no namespace can be told, procDir/net is read.
func Listeners(procDir string) (map[uint64]Socket, error) {
	pids, err := listPIDs(procDir)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Socket)
	seen := make(map[string]bool)
	for _, pid := range pids {
		dir := filepath.Join(procDir, strconv.Itoa(pid))
		ns, err := os.Readlink(filepath.Join(dir, "ns", "net"))
		if err != nil || seen[ns] {
			continue
		}
		switch err := readNetTables(filepath.Join(dir, "net"), out); {
		case err == nil:
			seen[ns] = true
		case isGone(err) || errors.Is(err, fs.ErrPermission):
			// Try the namespace again through another of its processes.
		default:
			return nil, err
		}
	}
	if len(seen) == 0 {
		if err := readNetTables(filepath.Join(procDir, "net"), out); err != nil && !isGone(err) {
			return nil, err
		}
	}
	return out, nil
}

// readNetTables adds the listening sockets of the tables in netDir to m. A
// missing table (no IPv6 in the kernel) is skipped; a missing tcp table
// means the process is gone.
func readNetTables(netDir string, m map[uint64]Socket) error {
	for _, p := range netProtos {
		socks, err := readNetTable(filepath.Join(netDir, p.name), p.name)
		if errors.Is(err, fs.ErrNotExist) && p.name != "tcp" {
			continue
		}
		if err != nil {
			return err
		}
		for _, s := range socks {
			if s.Inode != 0 {
				m[s.Inode] = s
			}
		}
	}
	return nil
}

func readNetTable(path, proto string) ([]Socket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading net table: %w", err)
	}
	defer f.Close()
	socks, err := ParseNetFile(f, proto)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return socks, nil
}
